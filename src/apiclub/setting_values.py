"""The values one setting can take, and the parsers that read each from its text.

`settings.py` assembles them into one `Settings`; kept apart so that file stays one job. Every
error names the variable, the bad value and what would be accepted.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, parse_qsl, urlsplit

from apiclub.errors import ConfigError
from apiclub.units import DAYS, HOURS, MINUTES, SECONDS

# One year, the shorter of the two common advices: hstspreload.org and internet.nl ask for at
# least a year; Mozilla's generator sends two. HSTS is on by default here while Caddy keeps it
# off because a browser that noted it cannot be told to forget before max-age runs out.
HSTS_MAX_AGE = int(365 * DAYS)  # whole seconds, as max-age counts them (RFC 6797 6.1.1)
RATE_UNITS = {"second": 1, "minute": int(MINUTES), "hour": int(HOURS), "day": int(DAYS)}
"""Window lengths in seconds of the units a rate limit may use (those Litestar's limiter has)."""

MAX_WORKERS = 64
MAX_GRACE_PERIOD = 1 * HOURS
"""Longest stop a setting may ask for; past it timers overflow (and no stop should take longer)."""
MAX_REQUEST_SECONDS = 1 * HOURS
"""The longest APICLUB_REQUEST_TIMEOUT / APICLUB_REQUEST_MAX_TIME: an hour to send a request."""
DATABASE_SCHEMES = frozenset({"postgresql", "postgres"})
_PASSWORD_PARAMETER = re.compile(r"(?i)([?&]password=)[^&#]*")
"""A password given as a query parameter (libpq's and asyncpg's `?password=`)."""
"""URL schemes APICLUB_DATABASE_URL accepts (libpq's two spellings)."""

DEFAULT_DOMAINS = ("localhost", "127.0.0.1", "::1")
LETS_ENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING_DIRECTORY = "https://acme-staging-v02.api.letsencrypt.org/directory"
ProxyNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# RFC 1035 2.3.4 / RFC 1123 2.1: labels of letters, digits and hyphens, 63 octets at most.
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class TlsMode(enum.StrEnum):
    """Where the HTTPS listener's certificates come from."""

    AUTO = "auto"
    """ACME for public DNS names, the local CA for localhost, IPs and private names."""
    ACME = "acme"
    """Every configured name from the ACME server (e.g. a private one that certifies them all)."""
    INTERNAL = "internal"
    """The project's own local CA, like mkcert, for every configured name."""
    FILES = "files"
    """A certificate chain and key that the operator gives."""
    OFF = "off"
    """Plain HTTP only, for running behind a TLS-terminating proxy."""


class HstsMode(enum.StrEnum):
    """When HTTPS answers carry Strict-Transport-Security (RFC 6797)."""

    AUTO = "auto"
    """For public names served with ACME certificates only; never in `files` or `off` mode."""
    ON = "on"
    """For every name the HTTPS listener serves (still never on port 80, nor with TLS off)."""
    OFF = "off"
    """Never."""


@dataclass(frozen=True)
class RateLimit:
    """At most `requests` requests per `unit` from one client address."""

    requests: int
    unit: str
    """One of `RATE_UNITS`: second, minute, hour, day."""

    def __post_init__(self) -> None:
        if self.requests < 1 or self.unit not in RATE_UNITS:
            raise _rate_error(str(self))

    @property
    def window(self) -> int:
        """The unit's length in seconds."""
        return RATE_UNITS[self.unit]

    def __str__(self) -> str:
        return f"{self.requests}/{self.unit}"


def parse_bool(key: str, raw: str) -> bool:
    """`1/true/yes/on` or `0/false/no/off`, any case."""
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{key}={raw!r} is not a yes/no value (1, true, yes, on / 0, false, no, off)")


def parse_rate_limit(raw: str) -> RateLimit | None:
    """Parse `REQUESTS/UNIT` (`100/minute`, `10/second`); `off` means no limit."""
    text = raw.strip().lower()
    if text == "off":
        return None
    match = re.fullmatch(r"(\d{1,9})\s*/\s*([a-z]+?)s?", text)
    if match is None or match.group(2) not in RATE_UNITS or int(match.group(1)) < 1:
        raise _rate_error(raw)
    return RateLimit(int(match.group(1)), match.group(2))


def _rate_error(raw: str) -> ConfigError:
    return ConfigError(
        f"APICLUB_RATE_LIMIT={raw!r} is not a rate: give REQUESTS/UNIT with REQUESTS at least 1 "
        f"and UNIT one of {', '.join(RATE_UNITS)} (e.g. 100/minute), or off for no limit"
    )


def redact_url(url: str) -> str:
    """`url` with any password replaced by `***`, for logs and error messages.

    Works on the raw text, not `urlsplit`: a password with an unencoded `#`, `/`, `?` or `@`
    defeats URL parsing (and such a URL is exactly the one an error message shows). Everything
    between the user name and the last `@` is hidden, and so is a `password=` query value
    (libpq and asyncpg accept both forms).
    """
    scheme, separator, rest = url.partition("://")
    if separator:
        userinfo, at, host_and_rest = rest.rpartition("@")
        if at and ":" in userinfo:
            rest = f"{userinfo.partition(':')[0]}:***@{host_and_rest}"
        url = f"{scheme}://{rest}"
    return _PASSWORD_PARAMETER.sub(r"\1***", url)


def check_database_url(url: str) -> None:
    parts = urlsplit(url)
    if (
        parts.scheme not in DATABASE_SCHEMES
        or not parts.hostname
        or not parts.path.strip("/")
        or not _has_valid_port(parts)
    ):
        raise ConfigError(
            f"APICLUB_DATABASE_URL={redact_url(url)!r} is not a PostgreSQL URL: give "
            "postgresql://user:password@host:5432/database (unset it to use SQLite)"
        )


def _has_valid_port(parts: SplitResult) -> bool:
    try:
        return parts.port is None or parts.port > 0
    except ValueError:  # not a number, or out of 0-65535
        return False


def parse_networks(raw: str) -> tuple[ProxyNetwork, ...]:
    """Parse comma-separated addresses and CIDR networks (`10.0.0.0/8, ::1`)."""
    networks = []
    for part in (item.strip() for item in raw.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(
                f"APICLUB_TRUSTED_PROXIES entry {part!r} is not an IP address or CIDR network "
                "(e.g. 127.0.0.1 or 10.0.0.0/8)"
            ) from None
    return tuple(networks)


def parse_domains(raw: str) -> tuple[str, ...]:
    """Split a comma-separated list of names and normalise each (see `normalize_name`)."""
    names = [normalize_name(part) for part in raw.split(",") if part.strip()]
    if not names:
        raise ConfigError(f"APICLUB_DOMAINS={raw!r} names no domain: give e.g. 'example.com'")
    return tuple(dict.fromkeys(names))


def normalize_name(raw: str) -> str:
    """Lower-case a DNS name, drop a trailing dot, encode IDN as punycode; canonicalise an IP.

    Raises:
        ConfigError: the name is neither an IP address nor a valid DNS name.
    """
    text = raw.strip().strip("[]")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    name = text.rstrip(".").lower()
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ConfigError(f"domain {raw!r} is not a valid DNS name: {exc}") from None
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise ConfigError(
            f"domain {raw!r} is not a valid DNS name "
            "(letters, digits, hyphens and dots, e.g. api.example.com)"
        )
    return name


def parse_port(key: str, raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not a port (0-65535)") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{key}={raw!r} is not a port (0-65535)")
    return port


def parse_int(key: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not a whole number") from None


def parse_seconds(key: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not a number of seconds") from None


def parse_hsts_mode(raw: str) -> HstsMode:
    try:
        return HstsMode(raw.lower())
    except ValueError:
        raise ConfigError(
            f"APICLUB_HSTS={raw!r} is not one of auto (public ACME names), on (every name), off"
        ) from None


def parse_tls_mode(raw: str) -> TlsMode:
    try:
        return TlsMode(raw.lower())
    except ValueError:
        choices = ", ".join(mode.value for mode in TlsMode)
        raise ConfigError(f"APICLUB_TLS={raw!r} is not one of {choices}") from None


class AuthMode(enum.StrEnum):
    """Which requests need `Authorization: Bearer <token>` (APICLUB_AUTH)."""

    AUTO = "auto"
    """`off` when every served name is private (`apiclub.names.is_private_name`), else `writes`."""
    OFF = "off"
    """None: anyone who reaches the server may read and write."""
    WRITES = "writes"
    """POST, PUT, DELETE (every method but GET, HEAD and OPTIONS); reads stay open."""
    ALL = "all"
    """Every request but the health check `GET /` and the OpenAPI document under `/schema`."""


def parse_auth_mode(raw: str) -> AuthMode:
    try:
        return AuthMode(raw.strip().lower())
    except ValueError:
        raise ConfigError(
            f"APICLUB_AUTH={raw!r} is not one of auto (tokens when a public name is served), "
            "off, writes (POST/PUT/DELETE need a token), all (reads too)"
        ) from None


def read_secret_file(key: str, raw: str) -> str:
    """The first line of the file `raw` names (a secret kept off the command line).

    Raises:
        ConfigError: the file cannot be read or is empty.
    """
    try:
        text = Path(raw).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{key}={raw!r} cannot be read ({exc}): give a readable file") from exc
    if not text:
        raise ConfigError(f"{key}={raw!r} is empty: put the key on its first line")
    return text.splitlines()[0].strip()


DURATION_UNITS = {"s": SECONDS, "m": MINUTES, "h": HOURS, "d": DAYS}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
REPLICA_SCHEMES = frozenset({"file", "s3", "sftp"})
SFTP_PARAMETERS = ("host-key-path", "key-path")
"""apiclub's own query parameters of an sftp:// replica (`backup.sftp` says why)."""
SFTP_HOST_KEY_HOW = (
    "add ?host-key-path=FILE with the server's public key (`ssh-keyscan -t ed25519 HOST > FILE`, "
    "then compare `ssh-keygen -lf FILE` with the server's own fingerprint)"
)


def parse_duration(key: str, raw: str) -> float:
    """`90`, `90s`, `30m`, `1h`, `1d`: seconds."""
    match = _DURATION.match(raw.strip().lower())
    if match is None:
        raise ConfigError(
            f"{key}={raw!r} is not a duration: give seconds or a number with s, m, h or d (e.g. 1h)"
        )
    return float(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]


def check_replica_url(url: str) -> None:
    """A Litestream replica URL we can hand over: file://, s3:// or sftp://, no secret in it."""
    parts = urlsplit(url)
    key = "APICLUB_REPLICATE"
    if parts.scheme not in REPLICA_SCHEMES:
        raise ConfigError(
            f"{key}={redact_url(url)!r} is not a replica URL: give file:///path, "
            "s3://bucket/path (add ?endpoint=http://host:port for an S3-compatible store) "
            "or sftp://user@host/path"
        )
    if parts.password or _PASSWORD_PARAMETER.search(url):
        raise ConfigError(
            f"{key}={redact_url(url)!r} holds a password: URLs end up in process lists and "
            "logs; put S3 keys in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or "
            "LITESTREAM_ACCESS_KEY_ID/LITESTREAM_SECRET_ACCESS_KEY) and an SFTP password in "
            "LITESTREAM_SFTP_PASSWORD instead"
        )
    if parts.scheme == "file" and (parts.netloc not in {"", "localhost"} or not parts.path):
        raise ConfigError(f"{key}={url!r}: a file:// replica needs an absolute path (file:///...)")
    if parts.scheme in {"s3", "sftp"} and not parts.hostname:
        raise ConfigError(f"{key}={redact_url(url)!r} names no bucket or host")
    if parts.scheme == "sftp":
        _check_sftp_url(url, key)


def _check_sftp_url(url: str, key: str) -> None:
    """An sftp:// replica's user and query: Litestream needs a user, and apiclub a host key
    (without one Litestream would send the database to whoever answers there)."""
    parts = urlsplit(url)
    if not parts.username:
        raise ConfigError(f"{key}={url!r} names no user: give sftp://user@host/path")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(query) - set(SFTP_PARAMETERS))
    if unknown:
        raise ConfigError(
            f"{key}={url!r}: {unknown[0]!r} is not a parameter of an sftp replica: "
            f"give {' and '.join(SFTP_PARAMETERS)} only"
        )
    if not query.get("host-key-path"):
        raise ConfigError(f"{key}={url!r} does not say which server to trust: {SFTP_HOST_KEY_HOW}")


def check_ops(port: int, host: str, token_file: Path | None, log_format: str) -> None:
    """The admin listener's and the logs' settings (issue #17): a port, /metrics off loopback
    only with a token, a known log format."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"APICLUB_METRICS_PORT={port!r} is not a port (0-65535; 0 is off)")
    if port and token_file is None:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise ConfigError(
                f"APICLUB_METRICS_HOST={host!r} serves /metrics beyond this machine: set "
                "APICLUB_METRICS_TOKEN_FILE to a file holding a bearer token, or keep 127.0.0.1"
            )
    if log_format not in {"text", "json"}:
        raise ConfigError(
            f"APICLUB_LOG_FORMAT={log_format!r} is not one of text, json: give json for one "
            "JSON object per line"
        )
