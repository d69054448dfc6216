"""Every setting, declared once: its variable, flag, parser, help and README row.

`Settings.from_env`, the `apiclub` flags and the README's configuration table are all made
from `SETTINGS` (`settings_env`, `cli`, `settings_doc`); the field itself, with its type,
default and docstring, stays in `Settings`. This module holds the listeners, certificates and
the API's own settings; the operations ones (backups, metrics, request limits) are in
`setting_table_ops`. A new setting goes at the end of `OPERATIONS` there, then run
`make settings-table`.
"""

from __future__ import annotations

from apiclub.setting_spec import SettingSpec, by_text, path, text, upper
from apiclub.setting_table_ops import OPERATIONS
from apiclub.setting_values import (
    parse_auth_mode,
    parse_bool,
    parse_domains,
    parse_hsts_mode,
    parse_int,
    parse_networks,
    parse_port,
    parse_rate_limit,
    parse_seconds,
    parse_tls_mode,
    read_secret_file,
)

SERVING: tuple[SettingSpec, ...] = (
    SettingSpec(
        "APICLUB_HOST",
        text,
        "address to bind (default 127.0.0.1; 0.0.0.0 or :: for all)",
        "address to bind; `0.0.0.0` or `::` to serve the world",
    ),
    SettingSpec(
        "APICLUB_HTTPS_PORT",
        parse_port,
        "HTTPS port (default 8443; 0 picks a free one)",
        "the HTTPS (API) listener",
    ),
    SettingSpec(
        "APICLUB_HTTP_PORT",
        parse_port,
        "HTTP redirect port (default 8080; 0 turns it off)",
        "the redirect listener; `0` turns it off",
    ),
    SettingSpec(
        "APICLUB_PUBLIC_HTTPS_PORT",
        parse_port,
        "HTTPS port named in redirects",
        "port named in redirects (443 for a container listening on 8443)",
        default="the HTTPS port",
    ),
    SettingSpec(
        "APICLUB_DOMAINS",
        by_text(parse_domains),
        "a name to serve; repeat or comma-separate",
        "names served and certified; other Hosts get 421",
        default="`localhost,127.0.0.1,::1`",
        flag="--domain",
        repeat=True,
    ),
    SettingSpec(
        "APICLUB_DATA_DIR",
        path,
        "database, CA and certificates (default ./data)",
        "database, local CA, certificates",
        default="`./data`",
    ),
    SettingSpec(
        "DB_FILE_PATH",
        path,
        "SQLite file (default <data dir>/api.db)",
        "the SQLite file (the tutorial's name)",
        default="`<data dir>/api.db`",
        attribute="db_file",
        flag="--db-file",
    ),
    SettingSpec(
        "APICLUB_TLS",
        by_text(parse_tls_mode),
        "auto, acme, internal, files or off (default auto)",
        "`auto`, `acme`, `internal` (local CA), `files`, `off` (plain HTTP behind a proxy)",
    ),
    SettingSpec(
        "APICLUB_CERT_FILE",
        path,
        "certificate chain (PEM) for --tls files",
        "certificate chain, leaf first (PEM), for `files`",
        default="—",
    ),
    SettingSpec(
        "APICLUB_KEY_FILE",
        path,
        "private key (PEM) for --tls files",
        "private key (PEM), for `files`",
        default="—",
    ),
    SettingSpec(
        "APICLUB_MAX_BODY_SIZE",
        parse_int,
        "largest request body in bytes (default 1 MiB)",
        "larger request bodies get 413",
    ),
    SettingSpec(
        "APICLUB_GRACE_PERIOD",
        parse_seconds,
        "seconds to finish requests on stop (default 10)",
        "seconds in-flight requests get on SIGTERM",
    ),
    SettingSpec(
        "APICLUB_LOG_LEVEL",
        upper,
        "DEBUG, INFO, WARNING or ERROR (default INFO)",
        "`DEBUG`, `INFO`, `WARNING`, `ERROR`",
    ),
    SettingSpec(
        "APICLUB_ACME_DIRECTORY",
        text,
        "ACME directory URL (default Let's Encrypt)",
        (
            "the ACME server; Let's Encrypt staging: "
            "`https://acme-staging-v02.api.letsencrypt.org/directory`; a comma-separated list is "
            "tried in order (a fallback CA), see [Real domain](#real-domain)"
        ),
    ),
    SettingSpec(
        "APICLUB_ACME_EMAIL",
        text,
        "contact e-mail of the ACME account",
        "contact address of the ACME account (expiry notices)",
        default="—",
    ),
    SettingSpec(
        "APICLUB_ACME_CA_BUNDLE",
        path,
        "CA file trusted for a private ACME server",
        "CA file (PEM) trusted for the ACME directory's HTTPS: private ACME servers, tests",
        default="system trust store",
    ),
    SettingSpec(
        "APICLUB_ACME_AGREE_TOS",
        parse_bool,
        "agree to the ACME server's terms of service",
        "agree to the ACME server's terms of service; needed before any account is registered",
        default="off",
        switch=True,
    ),
    SettingSpec(
        "APICLUB_MANAGE_CERTS",
        parse_bool,
        "with --tls off, keep certificates for a proxy",
        (
            "with `APICLUB_TLS=off` (behind nginx), still obtain and renew the certificates into "
            "`data/certs/live/` and answer ACME challenges forwarded by the proxy"
        ),
        default="off",
        switch=True,
    ),
    SettingSpec(
        "APICLUB_TRUSTED_PROXIES",
        by_text(parse_networks),
        "a proxy address or CIDR whose X-Forwarded-* headers count; repeat or comma-separate",
        (
            "addresses or CIDR networks whose `X-Forwarded-For`, `X-Forwarded-Proto` and "
            "`X-Real-IP` are believed; from anyone else they are ignored"
        ),
        default="none",
        flag="--trusted-proxy",
        repeat=True,
    ),
    SettingSpec(
        "APICLUB_WORKERS",
        parse_int,
        "server processes sharing the sockets (default 1)",
        (
            "worker processes sharing the ports (at most one per core), under a small parent "
            "process that holds the sockets and reloads them on SIGHUP; a worker that dies is "
            "replaced; at the first start one that cannot start stops the service (exit 1 with "
            "its reason), later a replacement that cannot start is retried after 1 s, doubling to"
            " 60 s (back to 1 s once a replacement has served 30 s), while the others serve; log "
            "lines then carry the pid. The memory figures in docs/performance.md are for 1"
        ),
        default="1",
    ),
    SettingSpec(
        "APICLUB_DATABASE_URL",
        text,
        (
            "postgresql://user:password@host:port/db instead of SQLite; a password here shows in "
            "`ps`: prefer the variable or --database-url-file"
        ),
        (
            "`postgresql://user:password@host:port/db` to use PostgreSQL instead, see [Scaling "
            "out](#scaling-out); the password is never logged. Give it in the environment or a "
            "file (below), not with the flag: a command line is visible to every local user in "
            "`ps`"
        ),
        default="unset (SQLite)",
    ),
    SettingSpec(
        "APICLUB_HSTS",
        by_text(parse_hsts_mode),
        "Strict-Transport-Security: auto (public ACME names), on, off",
        (
            "`Strict-Transport-Security` on HTTPS answers: `auto` for public names with ACME "
            "certificates only, `on` for every served name, `off`; never on the redirect port nor"
            " with `APICLUB_TLS=off`"
        ),
    ),
    SettingSpec(
        "APICLUB_HSTS_MAX_AGE",
        parse_int,
        "HSTS max-age in seconds (default a year)",
        "seconds browsers keep to HTTPS for the name; `0` withdraws the policy",
        default="`31536000` (a year)",
    ),
    SettingSpec(
        "APICLUB_RATE_LIMIT",
        by_text(parse_rate_limit),
        "requests per client address, e.g. 100/minute",
        (
            "at most `REQUESTS/UNIT` per client address (`UNIT`: second, minute, hour, day; e.g. "
            "`100/minute`); more get 429 with `Retry-After`; `/` and `/schema` are never limited"
        ),
        default="off",
    ),
    SettingSpec(
        "APICLUB_AUTH",
        by_text(parse_auth_mode),
        "bearer tokens for: auto (writes if a name is public), off, writes, all",
        (
            "which requests need `Authorization: Bearer <token>` (see [Who may "
            "write](#who-may-write-tokens)): `auto` is `off` while every name in "
            "`APICLUB_DOMAINS` is private (`localhost`, private and loopback IPs, `.localhost`, "
            "`.internal`, ...) and `writes` once a public name is served; `writes` (POST, PUT, "
            "DELETE), `all` (every request but `GET /` and `/schema`), `off`"
        ),
    ),
    SettingSpec(
        "APICLUB_ACME_PROFILE",
        text,
        "ACME certificate profile, e.g. shortlived",
        (
            "certificate profile to order, e.g. Let's Encrypt's `shortlived` (160 h) or "
            "`tlsserver`; checked against the directory at start (an unknown one fails the start,"
            " naming those offered); IP-address names get `shortlived` unless one is set"
        ),
        default="the CA's default",
    ),
    SettingSpec(
        "APICLUB_ACME_EAB_KID",
        text,
        "External Account Binding key id from the CA",
        (
            "External Account Binding key id, for CAs that require one (ZeroSSL, Google Trust "
            "Services, Sectigo); used once, when the account is registered, and only with a CA "
            "whose directory asks for it"
        ),
        default="—",
    ),
    SettingSpec(
        "APICLUB_ACME_EAB_HMAC_KEY",
        text,
        "",
        (
            "the EAB HMAC key (base64url); a secret: never logged, and no flag takes the key "
            "itself (command lines are visible to every user): give it here or in a file (below)"
        ),
        default="—",
        flag=None,
    ),
    SettingSpec(
        "APICLUB_ACME_EAB_HMAC_KEY_FILE",
        read_secret_file,
        "file holding the EAB HMAC key (a secret: never on the command line)",
        "a file whose first line is the EAB HMAC key; wins over `APICLUB_ACME_EAB_HMAC_KEY`",
        default="—",
        attribute="acme_eab_hmac_key",
    ),
)

SETTINGS: tuple[SettingSpec, ...] = (*SERVING, *OPERATIONS)
"""In the order of the README's table and of `apiclub serve --help`."""
