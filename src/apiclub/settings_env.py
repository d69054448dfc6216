"""Reading settings from environment variables: one parser per variable, errors naming it.

`Settings.from_env` calls this; unset or empty variables are left out, so the defaults in
`Settings` apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from apiclub.errors import ConfigError
from apiclub.setting_values import (
    parse_auth_mode,
    parse_bool,
    parse_domains,
    parse_duration,
    parse_hsts_mode,
    parse_int,
    parse_networks,
    parse_port,
    parse_rate_limit,
    parse_seconds,
    parse_tls_mode,
    read_secret_file,
)


def values_from_env(environ: Mapping[str, str]) -> dict[str, object]:
    """The `Settings` fields `environ` sets, parsed; a bad value raises ConfigError."""

    def get(key: str) -> str | None:
        value = environ.get(key, "").strip()
        return value or None

    values: dict[str, object] = {}
    if (host := get("APICLUB_HOST")) is not None:
        values["host"] = host
    for key, name in (
        ("APICLUB_HTTPS_PORT", "https_port"),
        ("APICLUB_HTTP_PORT", "http_port"),
        ("APICLUB_PUBLIC_HTTPS_PORT", "public_https_port"),
    ):
        if (raw := get(key)) is not None:
            values[name] = parse_port(key, raw)
    if (raw := get("APICLUB_DOMAINS")) is not None:
        values["domains"] = parse_domains(raw)
    if (raw := get("APICLUB_DATA_DIR")) is not None:
        values["data_dir"] = Path(raw)
    if (raw := get("DB_FILE_PATH")) is not None:
        values["db_file"] = Path(raw)
    if (raw := get("APICLUB_TLS")) is not None:
        values["tls"] = parse_tls_mode(raw)
    if (raw := get("APICLUB_CERT_FILE")) is not None:
        values["cert_file"] = Path(raw)
    if (raw := get("APICLUB_KEY_FILE")) is not None:
        values["key_file"] = Path(raw)
    if (raw := get("APICLUB_MAX_BODY_SIZE")) is not None:
        values["max_body_size"] = parse_int("APICLUB_MAX_BODY_SIZE", raw)
    if (raw := get("APICLUB_GRACE_PERIOD")) is not None:
        values["grace_period"] = parse_seconds("APICLUB_GRACE_PERIOD", raw)
    if (raw := get("APICLUB_LOG_LEVEL")) is not None:
        values["log_level"] = raw.upper()
    if (raw := get("APICLUB_MANAGE_CERTS")) is not None:
        values["manage_certs"] = parse_bool("APICLUB_MANAGE_CERTS", raw)
    if (raw := get("APICLUB_TRUSTED_PROXIES")) is not None:
        values["trusted_proxies"] = parse_networks(raw)
    if (raw := get("APICLUB_ACME_DIRECTORY")) is not None:
        values["acme_directory"] = raw
    if (raw := get("APICLUB_ACME_EMAIL")) is not None:
        values["acme_email"] = raw
    if (raw := get("APICLUB_ACME_CA_BUNDLE")) is not None:
        values["acme_ca_bundle"] = Path(raw)
    if (raw := get("APICLUB_ACME_AGREE_TOS")) is not None:
        values["acme_agree_tos"] = parse_bool("APICLUB_ACME_AGREE_TOS", raw)
    if (raw := get("APICLUB_HSTS")) is not None:
        values["hsts"] = parse_hsts_mode(raw)
    if (raw := get("APICLUB_HSTS_MAX_AGE")) is not None:
        values["hsts_max_age"] = parse_int("APICLUB_HSTS_MAX_AGE", raw)
    if (raw := get("APICLUB_RATE_LIMIT")) is not None:
        values["rate_limit"] = parse_rate_limit(raw)
    if (raw := get("APICLUB_WORKERS")) is not None:
        values["workers"] = parse_int("APICLUB_WORKERS", raw)
    if (raw := get("APICLUB_DATABASE_URL")) is not None:
        values["database_url"] = raw
    if (raw := get("APICLUB_AUTH")) is not None:
        values["auth"] = parse_auth_mode(raw)
    if (raw := get("APICLUB_ACME_PROFILE")) is not None:
        values["acme_profile"] = raw.strip() or None
    if (raw := get("APICLUB_ACME_EAB_KID")) is not None:
        values["acme_eab_kid"] = raw.strip() or None
    if (raw := get("APICLUB_ACME_EAB_HMAC_KEY")) is not None:
        values["acme_eab_hmac_key"] = raw.strip() or None
    if (raw := get("APICLUB_ACME_EAB_HMAC_KEY_FILE")) is not None:
        values["acme_eab_hmac_key"] = read_secret_file("APICLUB_ACME_EAB_HMAC_KEY_FILE", raw)
    if (raw := get("APICLUB_BACKUP_DIR")) is not None:
        values["backup_dir"] = Path(raw)
    if (raw := get("APICLUB_BACKUP_EVERY")) is not None:
        values["backup_every"] = parse_duration("APICLUB_BACKUP_EVERY", raw)
    if (raw := get("APICLUB_BACKUP_KEEP")) is not None:
        values["backup_keep"] = parse_int("APICLUB_BACKUP_KEEP", raw)
    if (raw := get("APICLUB_REPLICATE")) is not None:
        values["replicate"] = raw
    if (raw := get("APICLUB_REPLICATE_ENV_FILE")) is not None:
        values["replicate_env_file"] = Path(raw)
    if (raw := get("APICLUB_ENV_FILE")) is not None:
        values["env_file"] = Path(raw)
    if (raw := get("APICLUB_METRICS_PORT")) is not None:
        values["metrics_port"] = parse_port("APICLUB_METRICS_PORT", raw)
    if (raw := get("APICLUB_METRICS_HOST")) is not None:
        values["metrics_host"] = raw
    if (raw := get("APICLUB_LOG_FORMAT")) is not None:
        values["log_format"] = raw.lower()
    if (raw := get("APICLUB_METRICS_TOKEN_FILE")) is not None:
        values["metrics_token_file"] = Path(raw)
    for key, name in (
        ("APICLUB_REQUEST_TIMEOUT", "request_timeout"),
        ("APICLUB_REQUEST_MAX_TIME", "request_max_time"),
    ):
        if (raw := get(key)) is not None:
            values[name] = parse_seconds(key, raw)
    for key, name in (
        ("APICLUB_REQUEST_MIN_RATE", "request_min_rate"),
        ("APICLUB_MAX_CONNECTIONS", "max_connections"),
    ):
        if (raw := get(key)) is not None:
            values[name] = parse_int(key, raw)
    if (raw := get("APICLUB_DATABASE_URL_FILE")) is not None:
        if "database_url" in values:
            raise ConfigError(
                "APICLUB_DATABASE_URL and APICLUB_DATABASE_URL_FILE are both set: keep one"
            )
        values["database_url_file"] = Path(raw)
        values["database_url"] = read_secret_file("APICLUB_DATABASE_URL_FILE", raw)
    if (raw := get("APICLUB_DB_BUSY_TIMEOUT")) is not None:
        values["db_busy_timeout"] = parse_seconds("APICLUB_DB_BUSY_TIMEOUT", raw)
    return values
