"""`apiclub`: the command line, the only module that wires settings, db, tls and server together.

Every flag has an environment variable; the flag wins. Errors are one line on stderr and a
non-zero exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apiclub.backup.commands import add_backup_commands
from apiclub.cli_ca import add_ca_commands
from apiclub.cli_serve import reload_command, serve_command
from apiclub.cli_tokens import add_tokens_commands
from apiclub.env_file import read_env_file
from apiclub.errors import ApiclubError, ConfigError
from apiclub.ops.check_command import add_check_command
from apiclub.setting_table import SETTINGS
from apiclub.settings import Settings

if TYPE_CHECKING:
    from apiclub.tls.certstore import StoredCert
    from apiclub.tls.challenges import ChallengeLookup
    from apiclub.tls.issuers import Http01Listener

# Each flag's value is handed to Settings.from_env under its variable's name, so flags and
# variables share one parser and one set of error messages; both come from `setting_table`.
FLAGGED = tuple(spec for spec in SETTINGS if spec.option is not None)

Command = Callable[[Settings, argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `apiclub` console script; returns the exit status."""
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(arguments)
    args.argv = arguments
    try:
        settings = Settings.from_env(environment(args))
        configure_logging(
            settings.log_level, with_pid=settings.workers > 1, json=settings.log_format == "json"
        )
        command: Command = args.command
        return command(settings, args)
    except ConfigError as exc:
        # `apiclub check` reports a bad setting as one of its findings.
        if getattr(args, "on_config_error", None) is not None:
            status: int = args.on_config_error(exc, args)
            return status
        return _fail(exc)
    except ApiclubError as exc:
        return _fail(exc)
    except KeyboardInterrupt:
        return 130


def _fail(exc: ApiclubError) -> int:
    from apiclub.server.inherited_sockets import report_failure

    # A worker tells its parent, which logs why and what it does next.
    if not report_failure(os.environ, str(exc)):
        sys.stderr.write(f"apiclub: error: {exc}\n")
    return 1


def build_parser() -> argparse.ArgumentParser:
    """The parser: `serve`, `migrate`, `ca path|trust`, `certs list|renew|issue`, `tokens`,
    `backup`, `check`."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("settings (each also read from its environment variable)")
    for spec in FLAGGED:
        env, flag = spec.env, str(spec.option)  # FLAGGED holds only specs with a flag
        if spec.switch:
            group.add_argument(
                flag,
                dest=env,
                help=f"{spec.help} [{env}=1]",
                action="store_const",
                const="1",
            )
            continue
        group.add_argument(
            flag,
            dest=env,
            metavar="VALUE",
            help=f"{spec.help} [{env}]",
            action="append" if spec.repeat else "store",
        )
    parser = argparse.ArgumentParser(
        prog="apiclub", description="A tasks API that serves itself over HTTPS."
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    _add_command(
        commands, common, "serve", serve_command, "serve the API (default ports 8443/8080)"
    )
    _add_command(commands, common, "migrate", _migrate, "apply database migrations and exit")
    _add_command(
        commands, common, "reload", reload_command, "reload the running `apiclub serve` (SIGHUP)"
    )
    add_ca_commands(commands, common, _add_command)
    _add_certs_commands(commands, common)
    add_tokens_commands(commands, common, _add_command)
    add_backup_commands(commands, functools.partial(_add_command, commands, common))
    add_check_command(functools.partial(_add_command, commands, common))
    return parser


def _add_command(
    commands: Any, common: argparse.ArgumentParser, name: str, command: Command, text: str
) -> argparse.ArgumentParser:
    """A subcommand that takes every setting flag and runs `command`."""
    parser: argparse.ArgumentParser = commands.add_parser(name, parents=[common], help=text)
    parser.set_defaults(command=command)
    return parser


def _add_certs_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    certs = commands.add_parser("certs", help="certificates in the data directory (ACME, local)")
    certs_commands = certs.add_subparsers(title="certs commands", required=True, metavar="COMMAND")
    _add_command(
        certs_commands,
        common,
        "list",
        _certs_list,
        "names, issuer, expiry and days left of stored certificates",
    )
    renew = _add_command(
        certs_commands,
        common,
        "renew",
        _certs_renew,
        "renew the ACME certificates that are due (or all)",
    )
    renew.add_argument("--force", action="store_true", help="renew even if not due")
    issue = _add_command(
        certs_commands,
        common,
        "issue",
        _certs_issue,
        "issue one certificate for the --domain names into --out DIR",
    )
    issue.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="writes fullchain.pem, privkey.pem"
    )


def environment(args: argparse.Namespace) -> dict[str, str]:
    """What settings are read from: the environment, then the env file, then the flags."""
    flags = flag_values(args)
    path = flags.get("APICLUB_ENV_FILE") or os.environ.get("APICLUB_ENV_FILE", "").strip()
    from_file = read_env_file(Path(path)) if path else {}
    return {**os.environ, **from_file, **flags}


def flag_values(args: argparse.Namespace) -> dict[str, str]:
    """The flags given on the command line, keyed by their environment variable."""
    values: dict[str, str] = {}
    for spec in FLAGGED:
        value = getattr(args, spec.env, None)
        if value is not None:
            values[spec.env] = ",".join(value) if isinstance(value, list) else value
    return values


def configure_logging(level: str, *, with_pid: bool = False, json: bool = False) -> None:
    """Log lines to stderr: time, level, [the process id, with several workers,] logger, message;
    or, with `json`, one JSON object per line (`ops.jsonlog`)."""
    if json:
        from apiclub.ops.jsonlog import JsonFormatter

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter(with_pid=with_pid))
        logging.basicConfig(level=level, handlers=[handler])
        return
    pid = "[%(process)d] " if with_pid else ""
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s {pid}%(name)s: %(message)s",
    )


def _migrate(settings: Settings, _: argparse.Namespace) -> int:
    from apiclub.db import migrate_database

    applied = asyncio.run(migrate_database(settings))
    sys.stdout.write(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none'}\n")
    return 0


def _certs_list(settings: Settings, _: argparse.Namespace) -> int:
    from apiclub.tls.certstore import list_paused, list_stored

    now = datetime.now(UTC)
    stored = list_stored(settings.data_dir)
    for name, url in list_paused(settings.data_dir):
        sys.stdout.write(
            f"PAUSED {name}: the ACME CA paused orders for it; unpause at {url}, then run "
            "`apiclub certs renew --force`\n"
        )
    if not stored:
        sys.stdout.write(f"no certificates in {settings.data_dir / 'certs'}\n")
        return 0
    rows = [("NAMES", "ISSUER", "EXPIRES (UTC)", "DAYS LEFT", "RENEWAL (UTC)", "FILE")]
    for cert in stored:
        rows.append(
            (
                ",".join(cert.names),
                f"{cert.issuer} ({cert.renewal.get('directory') or cert.path.parent.parent.name})",
                f"{cert.not_after:%Y-%m-%d %H:%M}",
                f"{cert.days_left(now):.1f}",
                _renewal_column(cert),
                str(cert.path),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        sys.stdout.write("  ".join([*cells, row[-1]]) + "\n")
    return 0


def _renewal_column(cert: StoredCert) -> str:
    """When the server means to renew `cert` and why, from its `renewal.json`, else from the
    lifetime rule; a paused name says so, with the CA's unpause link."""
    from apiclub.tls.ari import validity_schedule

    plan = cert.renewal
    if plan.get("paused"):
        return f"PAUSED by the CA: {plan['paused']}"
    if plan.get("serial") == f"{cert.serial:x}" and plan.get("renew_at"):
        at = datetime.fromisoformat(plan["renew_at"])
        return f"{at:%Y-%m-%d %H:%M} ({plan.get('reason', '')})"
    if cert.path.parent.parent.name == "live" or cert.path.parent.name == "local":
        return "-"
    schedule = validity_schedule(cert.not_before, cert.not_after)
    return f"{schedule.at:%Y-%m-%d %H:%M} ({schedule.reason})"


def _certs_renew(settings: Settings, args: argparse.Namespace) -> int:
    from apiclub.tls import CertManager

    manager = CertManager(settings, http01_listener=_http01_listener(settings))
    if not manager.acme_names:
        sys.stdout.write(
            f"no name of {', '.join(settings.domains)} uses ACME (local-CA certificates renew "
            "themselves in the running server)\n"
        )
        return 0
    renewed = manager.renew_acme(force=args.force)
    for name in manager.acme_names:
        cert = manager.certificate_for(name)
        state = "renewed" if name in renewed else "fresh, kept"
        sys.stdout.write(
            f"{name}: {state}, serial {cert.leaf.serial_number:x}, "
            f"valid until {cert.not_after:%Y-%m-%d %H:%M} UTC\n"
        )
    return 0


def _certs_issue(settings: Settings, args: argparse.Namespace) -> int:
    from apiclub.tls import CertManager, FileStorage

    manager = CertManager(settings, http01_listener=_http01_listener(settings))
    certified = manager.issue(settings.domains)
    out = FileStorage(args.out)
    out.write("privkey.pem", certified.key_pem, private=True)
    out.write("fullchain.pem", certified.chain_pem)
    sys.stdout.write(
        f"wrote {out.path('fullchain.pem')} and {out.path('privkey.pem')}: "
        f"{', '.join(certified.names)}, serial {certified.leaf.serial_number:x}, "
        f"valid until {certified.not_after:%Y-%m-%d %H:%M} UTC\n"
    )
    return 0


def _http01_listener(settings: Settings) -> Http01Listener:
    """Answer HTTP-01 on the HTTP port during each order, unless a server holds the port:
    then that server answers our tokens from the shared data directory."""

    @contextlib.contextmanager
    def listen(answers: ChallengeLookup) -> Iterator[None]:
        from apiclub.errors import ListenError
        from apiclub.server.sockets import bind_socket
        from apiclub.tls.http01 import serve_challenges

        if not settings.http_port:
            yield
            return
        try:
            sock = bind_socket(settings.host, settings.http_port, option="--http-port")
        except ListenError as exc:
            logging.getLogger("apiclub.tls.acme").info(
                "HTTP-01: not listening on port %d here, so the apiclub serving this data "
                "directory there answers the challenge from the store (%s)",
                settings.http_port,
                exc,
            )
            yield
            return
        with serve_challenges(sock, answers):
            yield

    return listen


if __name__ == "__main__":
    sys.exit(main())
