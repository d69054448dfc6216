"""`apiclub check` on the command line: its parser and its two entry points.

Kept apart from `ops.check` so that building the parser imports none of what the checks
need (TLS, the database): every other command starts as fast as before.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from apiclub.errors import ConfigError
from apiclub.settings import Settings

AddCommand = Callable[[str, Callable[[Settings, argparse.Namespace], int], str], Any]


def add_check_command(add: AddCommand) -> None:
    """Register `check` (with `--json`) through the CLI's `_add_command`."""
    parser = add("check", run_check, "check the settings, ports, data, certificates; serve nothing")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.set_defaults(on_config_error=report_config_error)


def run_check(settings: Settings, args: argparse.Namespace) -> int:
    from apiclub.ops.check import print_report, run_checks

    return print_report(run_checks(settings), as_json=args.json)


def report_config_error(exc: ConfigError, args: argparse.Namespace) -> int:
    """A bad value is a finding of `apiclub check`, printed like the others."""
    from apiclub.ops.check import fail, print_report

    return print_report([fail("settings", str(exc))], as_json=args.json)
