"""`apiclub tokens add|list|revoke`: the bodies of the token commands, kept out of `cli.py`.

`add` writes the token alone on stdout (so `TOKEN=$(apiclub tokens add ci)` works) and the
advice around it on stderr; the token is never an argument, so it never shows in `ps`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apiclub.settings import AuthMode, Settings

Command = Callable[[Settings, argparse.Namespace], int]
AddCommand = Callable[[Any, argparse.ArgumentParser, str, Command, str], argparse.ArgumentParser]


def add_tokens_commands(
    commands: Any, common: argparse.ArgumentParser, add_command: AddCommand
) -> None:
    """Register `tokens add|list|revoke` under `commands`, each taking the setting flags."""
    tokens = commands.add_parser("tokens", help="bearer tokens for writes (APICLUB_AUTH)")
    sub = tokens.add_subparsers(title="tokens commands", required=True, metavar="COMMAND")
    add = add_command(sub, common, "add", tokens_add, "create a token and print it, once")
    add.add_argument("name", metavar="NAME", help="who or what holds it, e.g. ci-deploy")
    add_command(sub, common, "list", tokens_list, "names, creation and last use (never tokens)")
    revoke = add_command(
        sub, common, "revoke", tokens_revoke, "delete a token; servers refuse it within ~1 s"
    )
    revoke.add_argument("name", metavar="NAME", help="the name given to tokens add")


def tokens_add(settings: Settings, args: argparse.Namespace) -> int:
    from apiclub.tokens import TokenStore

    store = TokenStore(settings.data_dir)
    token = store.add(args.name)
    sys.stdout.write(f"{token}\n")
    sys.stdout.flush()
    lines = [
        f"token {args.name!r} created: it is shown this once (only its hash is kept, in "
        f"{store.path}); send it as",
        '  curl -H "Authorization: Bearer $TOKEN" ...',
    ]
    if settings.auth_mode is AuthMode.OFF:
        why = "every name private" if settings.auth is AuthMode.AUTO else "set so"
        lines.append(
            f"note: with these settings (APICLUB_AUTH={settings.auth}, {why}) the server asks "
            "for no token; set APICLUB_AUTH=writes (--auth writes) to require it"
        )
    sys.stderr.write("\n".join(lines) + "\n")
    return 0


def tokens_list(settings: Settings, _: argparse.Namespace) -> int:
    from apiclub.tokens import TokenStore

    store = TokenStore(settings.data_dir)
    tokens = store.list_tokens()
    if not tokens:
        sys.stdout.write(f"no tokens in {store.path}: create one with apiclub tokens add NAME\n")
        return 0
    rows = [("NAME", "CREATED (UTC)", "LAST USED (UTC)")]
    for token in tokens:
        used = _utc(token.last_used_at) if token.last_used_at else "never"
        rows.append((token.name, _utc(token.created_at), used))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        sys.stdout.write("  ".join(cells).rstrip() + "\n")
    return 0


def tokens_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from apiclub.tokens import RELOAD_CHECK_INTERVAL, TokenStore

    TokenStore(settings.data_dir).revoke(args.name)
    sys.stdout.write(
        f"revoked {args.name!r}: running servers refuse it within {RELOAD_CHECK_INTERVAL:g} s\n"
    )
    return 0


def _utc(when: datetime) -> str:
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
