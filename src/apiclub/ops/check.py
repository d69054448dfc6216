"""`apiclub check`: the `nginx -t` of apiclub. Reads the settings `serve` reads, checks what a
start would need, serves nothing, and prints one line per finding.

A finding is `ok`, `warn` (worth knowing, does not stop a start: migrations that the start
will apply, a certificate that renewal will replace) or `fail` (the start would fail or serve
something wrong); any `fail` makes the exit status 1. The systemd unit runs it as
`ExecStartPre=`, so a bad configuration stops before the old process is gone.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sqlite3
import ssl
import stat
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from apiclub.names import is_local_name
from apiclub.settings import Settings, TlsMode
from apiclub.tls import keys
from apiclub.tls.certified import CertifiedKey
from apiclub.tls.pem import PemError
from apiclub.units import DAYS

WARN_DAYS = 7
"""A certificate with fewer days left, and under a third of its life, is reported (the shipped
alert's threshold: apiclub renews at a third left, so such a certificate failed to renew)."""
DB_TIMEOUT = 2.0


@dataclass(frozen=True)
class Finding:
    """One line of the report."""

    level: str
    """`ok`, `warn` or `fail`."""
    subject: str
    """What was checked: `settings`, `port 8443`, `data dir`, `database`, a name..."""
    detail: str

    def line(self) -> str:
        """One line, whatever the detail holds (SQLite's integrity report spans several)."""
        detail = " ".join(self.detail.split())
        return f"{self.level.upper():4} {self.subject}: {detail}"


def ok(subject: str, detail: str) -> Finding:
    return Finding("ok", subject, detail)


def warn(subject: str, detail: str) -> Finding:
    return Finding("warn", subject, detail)


def fail(subject: str, detail: str) -> Finding:
    return Finding("fail", subject, detail)


def run_checks(settings: Settings) -> list[Finding]:
    """Every check, in start-up order (settings, ports, data dir, database, certificates)."""
    findings = [ok("settings", "values valid")]
    findings += check_ports(settings)
    findings += check_data_dir(settings.data_dir)
    findings += check_database(settings)
    findings += check_certificates(settings)
    findings += check_acme_account(settings)
    findings += check_proxies(settings)
    return findings


def print_report(findings: list[Finding], *, as_json: bool) -> int:
    """Print the findings on stdout; return the exit status."""
    text, status = report(findings, as_json=as_json)
    sys.stdout.write(text + "\n")
    return status


def report(findings: list[Finding], *, as_json: bool) -> tuple[str, int]:
    """The text to print and the exit status (1 if any finding failed)."""
    status = 1 if any(f.level == "fail" for f in findings) else 0
    if as_json:
        return json.dumps({"ok": status == 0, "findings": [asdict(f) for f in findings]}), status
    return "\n".join(f.line() for f in findings), status


# Ports


def check_ports(settings: Settings) -> Iterator[Finding]:
    ports = [("--https-port", settings.https_port if settings.tls is not TlsMode.OFF else None)]
    ports.append(("--http-port", settings.http_port or None))
    ports.append(("--metrics-port", settings.metrics_port or None))
    ours = _https_is_ours(settings)
    for option, port in ports:
        if port is None:
            continue
        host = settings.metrics_host if option == "--metrics-port" else settings.host
        subject = f"port {port} ({option})"
        problem = _bind_problem(host, port)
        if problem is None:
            yield ok(subject, f"free on {host}")
        elif problem == "in use" and ours:
            yield ok(subject, "in use by the apiclub serving this data directory")
        elif problem == "in use":
            yield fail(subject, f"in use by another process on {host}: stop it or pick another")
        else:
            yield fail(subject, problem)


def _bind_problem(host: str, port: int) -> str | None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"address {host!r} is unknown ({exc.strerror})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "in use"
            if exc.errno == errno.EACCES:
                return (
                    f"binding {host}:{port} needs privileges: CAP_NET_BIND_SERVICE "
                    "or a port >= 1024"
                )
            return f"cannot bind {host}:{port}: {exc.strerror}"
    return None


def _https_is_ours(settings: Settings) -> bool:
    """Whether the HTTPS port serves the certificate this data directory's live files hold."""
    if settings.tls is TlsMode.OFF:
        return False
    live = settings.data_dir / keys.live_cert(settings.domains[0])
    try:
        expected = x509.load_pem_x509_certificate(live.read_bytes())
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # only compared with our own file below
        with (
            socket.create_connection((host, settings.https_port), timeout=DB_TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname=settings.domains[0]) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ValueError):
        return False
    return der is not None and x509.load_der_x509_certificate(der) == expected


# Data directory


def check_data_dir(path: Path) -> Iterator[Finding]:
    subject = f"data dir {path}"
    if path.is_symlink():
        yield warn(subject, f"is a symlink to {path.readlink()}")
    if not path.exists():
        parent = path.parent if str(path.parent) else Path()
        if _writable(parent):
            yield ok(subject, "absent: `apiclub serve` creates it (mode 0700)")
        else:
            yield fail(subject, f"absent, and {parent} is not writable: create it (mode 0700)")
        return
    if not path.is_dir():
        yield fail(subject, "is not a directory")
        return
    if not _writable(path):
        yield fail(subject, "not writable: give it to the user apiclub runs as")
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        yield fail(subject, f"mode {mode:04o} lets others in (keys, database): chmod 700 {path}")
    else:
        yield ok(subject, f"present, writable, mode {mode:04o}")


def _writable(folder: Path) -> bool:
    """Try it: `os.access` says yes to root even on a read-only or immutable directory."""
    probe = folder / f".apiclub-check-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError:
        return False
    return True


# Database


def check_database(settings: Settings) -> Iterator[Finding]:
    from apiclub.db.pending import migration_ids, migrations_folder

    folder = migrations_folder()
    known = migration_ids(folder) if folder is not None else None
    if settings.database_url is not None:
        yield from _check_postgres(settings, known)
        return
    path = settings.database_path
    subject = f"database {path}"
    if not path.exists():
        count = len(known) if known is not None else "all"
        yield ok(subject, f"absent: created at start, {count} migration(s) to apply")
        return
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=DB_TIMEOUT)
        try:
            result = connection.execute("PRAGMA quick_check").fetchall()
            ran = _ran_migrations(connection)
        finally:
            connection.close()
    except sqlite3.Error as exc:
        yield fail(subject, f"cannot be read ({exc}): restore it from a backup")
        return
    if result != [("ok",)]:
        problems = "; ".join(" ".join(str(row[0]).split()) for row in result[:3])
        yield fail(subject, f"integrity check failed ({problems}): restore it from a backup")
        return
    yield ok(subject, "opens, integrity ok")
    yield _migrations(subject, known, ran)


def _ran_migrations(connection: sqlite3.Connection) -> set[str] | None:
    try:
        rows = connection.execute("SELECT name FROM migration WHERE app_name = 'apiclub'")
    except sqlite3.OperationalError:
        return None  # no table: nothing applied yet
    return {str(row[0]) for row in rows}


def _migrations(subject: str, known: list[str] | None, ran: set[str] | None) -> Finding:
    if known is None:
        return warn(subject, "the migration files cannot be read: `apiclub migrate` will say why")
    pending = [m for m in known if ran is None or m not in ran]
    if pending:
        return warn(
            subject, f"{len(pending)} migration(s) pending, applied at start: {', '.join(pending)}"
        )
    return ok(subject, f"all {len(known)} migration(s) applied: {', '.join(known)}")


def _check_postgres(settings: Settings, known: list[str] | None) -> Iterator[Finding]:
    import asyncio

    import asyncpg  # type: ignore[import-untyped]

    subject = f"database {settings.database_label}"

    async def probe() -> set[str] | None:
        connection = await asyncpg.connect(settings.database_url, timeout=DB_TIMEOUT)
        try:
            await connection.fetchval("SELECT 1")
            try:
                rows = await connection.fetch(
                    "SELECT name FROM migration WHERE app_name = 'apiclub'"
                )
            except asyncpg.UndefinedTableError:
                return None
            return {str(row["name"]) for row in rows}
        finally:
            await connection.close()

    try:
        ran = asyncio.run(probe())
    except Exception as exc:  # asyncpg's errors name host and user, never the password
        yield fail(subject, f"does not answer: {type(exc).__name__}: {exc}")
        return
    yield ok(subject, "answers")
    yield _migrations(subject, known, ran)


# Certificates


def check_certificates(settings: Settings) -> Iterator[Finding]:
    if settings.tls is TlsMode.OFF and not settings.manage_certs:
        return
    now = datetime.now(UTC)
    if settings.tls is TlsMode.FILES:
        assert settings.cert_file is not None and settings.key_file is not None  # noqa: S101
        try:
            certified = CertifiedKey.from_files(settings.cert_file, settings.key_file)
        except PemError as exc:
            yield fail(f"certificate {settings.cert_file}", f"cannot be used: {exc}")
            return
        for name in settings.domains:
            yield _certificate(name, certified, now, settings.cert_file)
        return
    for name in settings.domains:
        chain = settings.data_dir / keys.live_cert(name)
        key = settings.data_dir / keys.live_private_key(name)
        if not chain.exists() or not key.exists():
            yield ok(f"certificate {name}", "none yet: obtained at start")
            continue
        try:
            certified = CertifiedKey.from_files(chain, key)
        except PemError as exc:
            yield warn(f"certificate {name}", f"{chain.parent} unusable ({exc}): replaced at start")
            continue
        yield _certificate(name, certified, now, chain)


def _certificate(name: str, certified: CertifiedKey, now: datetime, path: Path) -> Finding:
    subject = f"certificate {name}"
    days = (certified.not_after - now).total_seconds() / DAYS
    until = f"{certified.not_after:%Y-%m-%d %H:%M} UTC"
    if not certified.covers(name):
        return fail(
            subject, f"{path} does not cover {name} (it names {', '.join(certified.names)})"
        )
    if days <= 0:
        return fail(subject, f"{path} expired on {until}")
    third = certified.lifetime.total_seconds() / DAYS / 3
    if days < WARN_DAYS and days < third:  # renewal starts at a third left: it is overdue
        return warn(subject, f"{days:.1f} days left (until {until})")
    return ok(subject, f"covers it, {days:.1f} days left (until {until})")


def check_acme_account(settings: Settings) -> Iterator[Finding]:
    acme = settings.tls is TlsMode.ACME or (
        settings.tls in (TlsMode.AUTO, TlsMode.OFF)
        and settings.acme_agree_tos
        and any(not is_local_name(name) for name in settings.domains)
    )
    if not acme:
        return
    for directory in settings.acme_directories:  # a fallback CA has an account of its own
        account = settings.data_dir / keys.account_meta(directory)
        if account.is_file():
            yield ok("acme account", f"present for {directory}")
        else:
            yield warn("acme account", f"none yet for {directory}: registered at the first order")


def check_proxies(settings: Settings) -> Iterator[Finding]:
    for network in settings.trusted_proxies:
        if network.prefixlen == 0:
            yield fail(
                "trusted proxy",
                f"{network} trusts every client's X-Forwarded-For: name the proxy's address",
            )
        elif network.prefixlen < (8 if network.version == 4 else 32):
            yield warn("trusted proxy", f"{network} is very broad: is every address in it a proxy?")
        else:
            yield ok("trusted proxy", str(network))
