"""`apiclub ca path|trust|untrust`: the local CA's root, and the stores that trust it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from apiclub.settings import Settings

if TYPE_CHECKING:
    from apiclub.tls.trust_result import StoreResult


def add_ca_commands(
    commands: Any, common: argparse.ArgumentParser, add_command: Callable[..., Any]
) -> None:
    """The `ca` group; `add_command` is the CLI's helper that gives each the setting flags."""
    ca = commands.add_parser("ca", help="the local certificate authority")
    ca_commands = ca.add_subparsers(title="ca commands", required=True, metavar="COMMAND")
    add_command(ca_commands, common, "path", _ca_path, "print the root certificate's path")
    for name, command, text in (
        ("trust", _ca_trust, "add the root to the system store (as root) and browsers' NSS files"),
        ("untrust", _ca_untrust, "remove the root from those stores again"),
    ):
        trust = add_command(ca_commands, common, name, command, text)
        trust.add_argument(
            "--store",
            action="append",
            choices=("system", "nss"),
            help="only this kind of store (repeatable; default: both, as mkcert's TRUST_STORES)",
        )


def _ca_path(settings: Settings, _: argparse.Namespace) -> int:
    from apiclub.tls import root_cert_path

    sys.stdout.write(f"{root_cert_path(settings)}\n")
    return 0


def _ca_trust(settings: Settings, args: argparse.Namespace) -> int:
    from apiclub.tls import root_cert_path, root_key_path, trust_root

    root, key = root_cert_path(settings), root_key_path(settings)
    return _report_trust(trust_root(root, key, kinds=_store_kinds(args)))


def _ca_untrust(settings: Settings, args: argparse.Namespace) -> int:
    from apiclub.tls import root_cert_path, untrust_root

    return _report_trust(untrust_root(root_cert_path(settings), kinds=_store_kinds(args)))


def _store_kinds(args: argparse.Namespace) -> frozenset[str]:
    from apiclub.tls.trust import STORE_KINDS

    return frozenset(args.store) if args.store else STORE_KINDS


def _report_trust(results: list[StoreResult]) -> int:
    """One line per store; exit 1 when a store failed or none could be changed."""
    for result in results:
        stream = sys.stdout if result.changed_or_fine else sys.stderr
        stream.write(f"{result.line()}\n")
    if any(r.outcome == "failed" for r in results) or not any(r.changed_or_fine for r in results):
        return 1
    return 0
