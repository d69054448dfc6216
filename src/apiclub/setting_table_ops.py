"""The operations settings: backups, replication, metrics, logs and request limits.

The second half of `setting_table.SETTINGS` (kept apart so each module stays short); new
settings are appended at the end of `OPERATIONS`.
"""

from __future__ import annotations

from apiclub.setting_spec import SettingSpec, lower, path, text
from apiclub.setting_values import parse_duration, parse_int, parse_port, parse_seconds

OPERATIONS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "APICLUB_BACKUP_DIR",
        path,
        "where snapshots go (default backups/ beside data)",
        "where `apiclub backup` and scheduled snapshots go, see [Backups](#backups)",
        default="`backups/` beside the data directory",
    ),
    SettingSpec(
        "APICLUB_BACKUP_EVERY",
        parse_duration,
        "take a snapshot this often while serving (1h)",
        "the running server takes a verified snapshot this often (`90s`, `30m`, `1h`, `1d`)",
        default="off",
    ),
    SettingSpec(
        "APICLUB_BACKUP_KEEP",
        parse_int,
        "scheduled snapshots kept (default 24)",
        "scheduled snapshots kept; older ones are deleted",
    ),
    SettingSpec(
        "APICLUB_REPLICATE",
        text,
        "Litestream replica URL: file:///path, s3://bucket/path?endpoint=..., sftp://...",
        (
            "continuous replication of the SQLite file with Litestream: `file:///path`, "
            "`s3://bucket/path` (`?endpoint=http://host:port` for S3-compatible stores), "
            "`sftp://user@host[:port]/path?host-key-path=FILE&key-path=FILE` (the server's "
            "public key, required; the private key to log in with, or a password in "
            "`LITESTREAM_SFTP_PASSWORD`); credentials from the environment only "
            "(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `LITESTREAM_SFTP_PASSWORD`), a URL "
            "with a password is refused"
        ),
        default="off",
    ),
    SettingSpec(
        "APICLUB_REPLICATE_ENV_FILE",
        path,
        "NAME=value lines for Litestream's environment (S3 keys), never on the command line",
        (
            "a file of `NAME=value` lines (`AWS_ACCESS_KEY_ID=...`) added to Litestream's "
            "environment only, for `serve --replicate`, `restore --from` and `replication`; make "
            "it 0600; its content is never logged"
        ),
        default="—",
    ),
    SettingSpec(
        "APICLUB_ENV_FILE",
        path,
        "KEY=VALUE settings file, read again at each reload",
        (
            "a file of `KEY=VALUE` settings (systemd's and Docker's format) read at every worker "
            "start, so `apiclub reload` picks up what changed in it; its values win over the "
            "environment's, flags win over both"
        ),
        default="unset",
    ),
    SettingSpec(
        "APICLUB_METRICS_PORT",
        parse_port,
        "/metrics, /livez, /readyz port (default 0: off)",
        (
            "the admin listener: Prometheus `/metrics`, `/livez`, `/readyz` in plain HTTP, see "
            "[Monitoring](#monitoring)"
        ),
        default="0 (off; the image: 9464)",
    ),
    SettingSpec(
        "APICLUB_METRICS_HOST",
        text,
        "admin listener address (default 127.0.0.1)",
        "address of the admin listener; keep it on loopback or a private network",
        default="127.0.0.1",
    ),
    SettingSpec(
        "APICLUB_LOG_FORMAT",
        lower,
        "text or json (one JSON object per line)",
        "`json`: one JSON object per line (access and application log) with Caddy's field names",
        default="text",
    ),
    SettingSpec(
        "APICLUB_METRICS_TOKEN_FILE",
        path,
        "file holding the bearer token /metrics asks for (needed off loopback)",
        (
            "a file holding a bearer token that `/metrics` then asks for; required when "
            "`APICLUB_METRICS_HOST` is not loopback (Prometheus: `authorization: "
            "{credentials_file: ...}`)"
        ),
        default="unset",
    ),
    SettingSpec(
        "APICLUB_REQUEST_TIMEOUT",
        parse_seconds,
        "seconds for a request to arrive (30)",
        (
            "seconds a request's head and body get to arrive, from its first byte, on both ports;"
            " past its deadline the connection is closed"
        ),
    ),
    SettingSpec(
        "APICLUB_REQUEST_MIN_RATE",
        parse_int,
        "bytes/s extending it (default 1024)",
        (
            "bytes per second a slow upload must keep: each byte received adds 1/rate seconds to "
            "the deadline (Apache's `MinRate`)"
        ),
    ),
    SettingSpec(
        "APICLUB_REQUEST_MAX_TIME",
        parse_seconds,
        "seconds at most, any rate (120)",
        "seconds a request may take to arrive at any rate (a 1 MiB body needs ~9 KB/s)",
    ),
    SettingSpec(
        "APICLUB_MAX_CONNECTIONS",
        parse_int,
        "open connections per process (0: auto)",
        (
            "open client connections per process over both ports; at the cap the connection that "
            "has been sending its request the longest is cut to make room, else the new one is "
            "closed at once; one warning a minute says so. Raise the open-file limit "
            "(`LimitNOFILE=` in the unit, `ulimits` in compose.yaml: both 65536) rather than this"
        ),
        default="`0` (the open-file limit less 64, at most 10,000)",
    ),
    SettingSpec(
        "APICLUB_DATABASE_URL_FILE",
        path,
        "a file holding the database URL",
        (
            "a file (e.g. 0600, a container secret or systemd `LoadCredential=`) whose first line"
            " is the database URL; not together with `APICLUB_DATABASE_URL`"
        ),
        default="unset",
    ),
    SettingSpec(
        "APICLUB_DB_BUSY_TIMEOUT",
        parse_seconds,
        "seconds an SQLite write waits for a lock (30)",
        (
            "SQLite: seconds a write waits for another process's write lock (another worker, "
            '`apiclub migrate`, a backup) before the request answers 503 "the database is '
            'busy" with `Retry-After`; counted as '
            '`apiclub_db_unavailable_answers_total{reason="busy"}`'
        ),
    ),
)
