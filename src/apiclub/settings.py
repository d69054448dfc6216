"""One frozen settings object, built from environment variables (CLI flags are merged in first).

Nothing here reads the environment by itself: callers pass a mapping, so tests and the CLI
decide what counts. The values each setting takes, and their parsers, live in
`setting_values`; which variable and flag fill which field, with which parser and help, is
`setting_table`'s (the flags and the README's table are made from it); this module holds the
fields and checks how they fit together. A new setting: a field with a docstring naming its
variable here, a `SettingSpec` at the end of `setting_table_ops.OPERATIONS`, a check in
`__post_init__`, then `make settings-table`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from apiclub.errors import ConfigError
from apiclub.names import is_private_name
from apiclub.setting_checks import check_acme, check_backups
from apiclub.setting_values import (
    DEFAULT_DOMAINS,
    HSTS_MAX_AGE,
    LETS_ENCRYPT_DIRECTORY,
    LETS_ENCRYPT_STAGING_DIRECTORY,
    MAX_GRACE_PERIOD,
    MAX_REQUEST_SECONDS,
    MAX_WORKERS,
    AuthMode,
    HstsMode,
    ProxyNetwork,
    RateLimit,
    TlsMode,
    check_database_url,
    check_ops,
    normalize_name,
    parse_bool,
    parse_networks,
    redact_url,
)
from apiclub.settings_env import values_from_env
from apiclub.units import KIB, MIB, SECONDS

__all__ = [
    "DEFAULT_DOMAINS",
    "KIB",
    "LETS_ENCRYPT_DIRECTORY",
    "LETS_ENCRYPT_STAGING_DIRECTORY",
    "MIB",
    "AuthMode",
    "HstsMode",
    "ProxyNetwork",
    "RateLimit",
    "Settings",
    "TlsMode",
    "normalize_name",
    "parse_bool",
    "parse_networks",
    "redact_url",
]


@dataclass(frozen=True)
class Settings:
    """Everything apiclub needs to run; defaults serve `make dev` with no configuration."""

    host: str = "127.0.0.1"
    """Address the listeners bind (APICLUB_HOST); `0.0.0.0` or `::` to serve the world."""
    https_port: int = 8443
    """Port of the HTTPS listener (APICLUB_HTTPS_PORT); 0 picks a free one."""
    http_port: int = 8080
    """Port of the redirect listener (APICLUB_HTTP_PORT); 0 turns it off."""
    public_https_port: int | None = None
    """Port clients reach HTTPS on, named in redirects (APICLUB_PUBLIC_HTTPS_PORT).

    Defaults to `https_port`; set it to 443 in a container that listens on 8443."""
    domains: tuple[str, ...] = DEFAULT_DOMAINS
    """Names served and certified (APICLUB_DOMAINS, comma-separated): DNS names or IPs."""
    data_dir: Path = Path("data")
    """Database, local CA and certificates live here (APICLUB_DATA_DIR)."""
    db_file: Path | None = None
    """The SQLite file (DB_FILE_PATH); defaults to `<data_dir>/api.db`."""
    tls: TlsMode = TlsMode.AUTO
    """Certificate source (APICLUB_TLS): auto, acme, internal, files or off."""
    cert_file: Path | None = None
    """Certificate chain, leaf first, PEM, for `files` mode (APICLUB_CERT_FILE)."""
    key_file: Path | None = None
    """Private key, PEM, for `files` mode (APICLUB_KEY_FILE)."""
    max_body_size: int = 1 * MIB
    """Largest request body accepted, in bytes (APICLUB_MAX_BODY_SIZE); larger ones get 413."""
    grace_period: float = 10 * SECONDS
    """Seconds in-flight requests get to finish on SIGTERM (APICLUB_GRACE_PERIOD)."""
    log_level: str = "INFO"
    """Logging threshold (APICLUB_LOG_LEVEL): DEBUG, INFO, WARNING or ERROR."""
    manage_certs: bool = False
    """With APICLUB_TLS=off, still obtain and renew certificates for the domains into the store
    (APICLUB_MANAGE_CERTS), for a proxy that terminates TLS with them (the nginx profile)."""
    trusted_proxies: tuple[ProxyNetwork, ...] = ()
    """Peers whose X-Forwarded-For/-Proto and X-Real-IP count (APICLUB_TRUSTED_PROXIES,
    comma-separated addresses or CIDR networks); from anyone else they are ignored."""
    acme_directory: str = LETS_ENCRYPT_DIRECTORY
    """The ACME server's directory URL (APICLUB_ACME_DIRECTORY); Let's Encrypt production by
    default, `LETS_ENCRYPT_STAGING_DIRECTORY` to rehearse without its rate limits."""
    acme_email: str | None = None
    """Contact address of the ACME account (APICLUB_ACME_EMAIL), for expiry warnings."""
    acme_ca_bundle: Path | None = None
    """CA certificates (PEM) trusted for the ACME directory's HTTPS (APICLUB_ACME_CA_BUNDLE),
    for private ACME servers and tests; the system's trust store when unset."""
    acme_agree_tos: bool = False
    """Agree to the ACME server's terms of service (APICLUB_ACME_AGREE_TOS); without it no
    account is registered and public names get a local-CA certificate."""
    hsts: HstsMode = HstsMode.AUTO
    """Strict-Transport-Security on HTTPS answers (APICLUB_HSTS): auto, on or off."""
    hsts_max_age: int = HSTS_MAX_AGE
    """Seconds browsers keep to HTTPS after seeing the header (APICLUB_HSTS_MAX_AGE); 0 tells
    them to forget it (RFC 6797 6.1.1)."""
    rate_limit: RateLimit | None = None
    """Requests one client address may make per second, minute, hour or day
    (APICLUB_RATE_LIMIT, e.g. `100/minute`); no limit when unset."""
    workers: int = 1
    """Server processes sharing the listening sockets and the data directory
    (APICLUB_WORKERS); 1 serves everything from this process."""
    database_url: str | None = field(default=None, repr=False)
    """PostgreSQL to use instead of SQLite (APICLUB_DATABASE_URL,
    `postgresql://user:password@host:port/db`); SQLite at `database_path` when unset. Kept out
    of `repr` because it may hold a password: log `database_label` instead."""
    auth: AuthMode = AuthMode.AUTO
    """Which requests need a bearer token from `apiclub tokens add` (APICLUB_AUTH): auto, off,
    writes or all. `auto` is `off` while every name in `domains` is private (localhost, private
    IPs, `.internal` ...), so `make dev` and the tutorial's curls work, and `writes` as soon as
    a public name is served. Read the resolved mode from `auth_mode`."""
    acme_profile: str | None = None
    """The ACME certificate profile to order (APICLUB_ACME_PROFILE), e.g. Let's Encrypt's
    `shortlived` (160 hours) or `tlsserver`; the CA's default when unset. Checked against the
    directory's offered profiles at start."""
    acme_eab_kid: str | None = None
    """External Account Binding key id (APICLUB_ACME_EAB_KID), for CAs that require one
    (ZeroSSL, Google Trust Services, Sectigo); used once, when the account is registered."""
    acme_eab_hmac_key: str | None = field(default=None, repr=False)
    """The EAB HMAC key, base64url (APICLUB_ACME_EAB_HMAC_KEY, or a file named by
    APICLUB_ACME_EAB_HMAC_KEY_FILE). A secret: kept out of `repr` and never logged."""
    backup_dir: Path | None = None
    """Where `apiclub backup` and scheduled snapshots go (APICLUB_BACKUP_DIR); `backups/`
    beside the data directory by default (not inside it: a snapshot must outlive it)."""
    backup_every: float | None = None
    """Seconds between scheduled snapshots taken by the running server (APICLUB_BACKUP_EVERY,
    e.g. `1h`); none when unset."""
    backup_keep: int = 24
    """Scheduled snapshots kept (APICLUB_BACKUP_KEEP); older ones are deleted."""
    replicate: str | None = None
    """Litestream replica URL (APICLUB_REPLICATE): `file:///path`, `s3://bucket/path`
    (`?endpoint=http://host:port` for S3-compatible stores) or `sftp://user@host/path`;
    credentials come from the environment, never the URL. Off when unset."""
    replicate_env_file: Path | None = None
    """A file of `NAME=value` lines added to Litestream's environment
    (APICLUB_REPLICATE_ENV_FILE): its credentials, e.g. `AWS_SECRET_ACCESS_KEY`, kept out of
    apiclub's own environment; make it 0600."""
    env_file: Path | None = None
    """A file of KEY=VALUE settings (APICLUB_ENV_FILE), read at every start of a worker, so a
    reload (SIGHUP) picks up what changed in it; its values win over the environment's, flags
    win over both (`env_file.read_env_file`)."""
    metrics_port: int = 0
    """Port of the admin listener (APICLUB_METRICS_PORT): `/metrics`, `/livez`, `/readyz` in
    plain HTTP; 0 (the default) turns it off. The container image sets 9464."""
    metrics_host: str = "127.0.0.1"
    """Address the admin listener binds (APICLUB_METRICS_HOST); loopback by default, since
    metrics name the served domains and nothing on it asks for a password."""
    log_format: str = "text"
    """Log lines (APICLUB_LOG_FORMAT): `text` for people, `json` for one JSON object per line
    with Caddy's access-log field names, for log collectors."""
    metrics_token_file: Path | None = None
    """A file holding the bearer token /metrics then asks for (APICLUB_METRICS_TOKEN_FILE);
    required when APICLUB_METRICS_HOST is not a loopback address. A file, not a value, so the
    token is on no command line; Prometheus reads it with `authorization: credentials_file`."""
    request_timeout: float = 30 * SECONDS
    """Seconds a request's head and body get to arrive, on both listeners
    (APICLUB_REQUEST_TIMEOUT), from its first byte; `request_min_rate` extends it."""
    request_min_rate: int = 1024
    """Bytes per second a slow request must keep (APICLUB_REQUEST_MIN_RATE): each byte received
    adds 1/rate seconds to `request_timeout`, as Apache's mod_reqtimeout `MinRate`."""
    request_max_time: float = 120 * SECONDS
    """Seconds a request may take to arrive whatever its rate (APICLUB_REQUEST_MAX_TIME)."""
    max_connections: int = 0
    """Open client connections per process, both listeners together (APICLUB_MAX_CONNECTIONS);
    past it new ones are closed at once. 0: the open-file limit less a reserve."""
    database_url_file: Path | None = None
    """A file holding the PostgreSQL URL (APICLUB_DATABASE_URL_FILE), read into
    `database_url` at start: a password neither on a command line (`ps` shows it) nor in the
    environment (a container secret, systemd's `LoadCredential=`)."""
    db_busy_timeout: float = 30 * SECONDS
    """Seconds an SQLite write waits for another process's write lock (APICLUB_DB_BUSY_TIMEOUT:
    `--workers`, `apiclub migrate`, a backup) before the request answers 503 "busy"."""

    def __post_init__(self) -> None:
        ports = (("APICLUB_HTTPS_PORT", self.https_port), ("APICLUB_HTTP_PORT", self.http_port))
        for key, port in ports:
            if not 0 <= port <= 65535:
                raise ConfigError(f"{key}={port!r} is not a port (0-65535)")
        if self.public_https_port is not None and not 1 <= self.public_https_port <= 65535:
            raise ConfigError(
                f"APICLUB_PUBLIC_HTTPS_PORT={self.public_https_port!r} is not a port (1-65535)"
            )
        if not self.domains:
            raise ConfigError("APICLUB_DOMAINS is empty: name at least one domain, e.g. localhost")
        if self.tls is TlsMode.FILES and (self.cert_file is None or self.key_file is None):
            raise ConfigError(
                "APICLUB_TLS=files needs APICLUB_CERT_FILE and APICLUB_KEY_FILE "
                "(--cert-file and --key-file)"
            )
        if self.max_body_size < 1:
            raise ConfigError(f"APICLUB_MAX_BODY_SIZE={self.max_body_size!r} must be at least 1")
        if not 0 <= self.grace_period <= MAX_GRACE_PERIOD:  # also refuses nan
            raise ConfigError(
                f"APICLUB_GRACE_PERIOD={self.grace_period!r} is not a number of seconds from 0 "
                f"to {MAX_GRACE_PERIOD:.0f}"
            )
        if self.log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigError(
                f"APICLUB_LOG_LEVEL={self.log_level!r} is not one of DEBUG, INFO, WARNING, ERROR"
            )
        if self.hsts_max_age < 0:
            raise ConfigError(
                f"APICLUB_HSTS_MAX_AGE={self.hsts_max_age!r} must not be negative "
                f"(seconds; {HSTS_MAX_AGE} is a year, 0 tells browsers to forget)"
            )
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ConfigError(
                f"APICLUB_WORKERS={self.workers!r} is not a process count (1-{MAX_WORKERS}); "
                "one per CPU core is a good start"
            )
        if self.database_url is not None:
            check_database_url(self.database_url)
        check_ops(self.metrics_port, self.metrics_host, self.metrics_token_file, self.log_format)
        check_acme(self)
        check_backups(self)
        self._check_request_limits()

    def _check_request_limits(self) -> None:
        for key, seconds in (
            ("APICLUB_REQUEST_TIMEOUT", self.request_timeout),
            ("APICLUB_REQUEST_MAX_TIME", self.request_max_time),
        ):
            if not 0 < seconds <= MAX_REQUEST_SECONDS:  # also refuses nan
                raise ConfigError(
                    f"{key}={seconds!r} is not a number of seconds above 0 and at most "
                    f"{MAX_REQUEST_SECONDS:.0f}"
                )
        if self.request_max_time < self.request_timeout:
            raise ConfigError(
                f"APICLUB_REQUEST_MAX_TIME={self.request_max_time!r} is below "
                f"APICLUB_REQUEST_TIMEOUT={self.request_timeout!r}: give at least as much"
            )
        if self.request_min_rate < 1:
            raise ConfigError(
                f"APICLUB_REQUEST_MIN_RATE={self.request_min_rate!r} must be at least 1 "
                "(bytes per second)"
            )
        if self.max_connections < 0:
            raise ConfigError(
                f"APICLUB_MAX_CONNECTIONS={self.max_connections!r} must not be negative "
                "(0 derives it from the open-file limit)"
            )
        if not 0 < self.db_busy_timeout <= MAX_REQUEST_SECONDS:  # also refuses nan
            raise ConfigError(
                f"APICLUB_DB_BUSY_TIMEOUT={self.db_busy_timeout!r} is not a number of seconds "
                f"above 0 and at most {MAX_REQUEST_SECONDS:.0f}"
            )

    @property
    def acme_directories(self) -> tuple[str, ...]:
        """The ACME directories in the order tried (APICLUB_ACME_DIRECTORY, comma-separated):
        when an order fails at one CA, the next is tried."""
        return tuple(url.strip() for url in self.acme_directory.split(",") if url.strip())

    @property
    def acme_eab(self) -> tuple[str, str] | None:
        """(key id, HMAC key) for External Account Binding, or None."""
        if self.acme_eab_kid is None or self.acme_eab_hmac_key is None:
            return None
        return (self.acme_eab_kid, self.acme_eab_hmac_key)

    @property
    def database_label(self) -> str:
        """Where the data lives, safe to log: the SQLite path, or the PostgreSQL URL without
        its password."""
        if self.database_url is None:
            return str(self.database_path)
        return redact_url(self.database_url)

    @property
    def auth_mode(self) -> AuthMode:
        """`auth` with `auto` resolved: `off`, `writes` or `all`."""
        if self.auth is not AuthMode.AUTO:
            return self.auth
        if all(is_private_name(name) for name in self.domains):
            return AuthMode.OFF
        return AuthMode.WRITES

    @property
    def backup_directory(self) -> Path:
        """APICLUB_BACKUP_DIR, or `backups` beside the data directory."""
        if self.backup_dir is not None:
            return self.backup_dir
        return self.data_dir.absolute().parent / "backups"

    @property
    def database_path(self) -> Path:
        """The SQLite file: DB_FILE_PATH, or `api.db` in the data directory."""
        return self.db_file if self.db_file is not None else self.data_dir / "api.db"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from `environ`; unset or empty variables keep their defaults."""

        return cls(**values_from_env(environ))  # type: ignore[arg-type]
