"""An `sftp://user@host[:port]/path` replica as Litestream 0.5 reads it (its `sftp` client).

What Litestream reads, from its `cmd/litestream/main.go` and `sftp/replica_client.go`: the
user, host and path from the URL (a password too, which we refuse: URLs reach process lists);
`password`, `key-path` (a private key file) and `host-key` (the server's public key, one
`authorized_keys` line) from the replica's section of its configuration file. It reads no
environment variable for them. Without `host-key` it logs "sftp host key not verified" and
accepts any server, so whoever answers on that address would receive the database.

So apiclub asks for two query parameters of its own, stripped before Litestream sees the
URL: `host-key-path` (required: a file with the server's public key, as `ssh-keyscan -t
ed25519 HOST` prints it or as its `/etc/ssh/ssh_host_ed25519_key.pub`) and `key-path`
(optional: the private key to log in with). A password comes from `LITESTREAM_SFTP_PASSWORD`
in apiclub's environment (or `APICLUB_REPLICATE_ENV_FILE`): apiclub writes it into the 0600
configuration file, never onto a command line.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from apiclub.errors import ConfigError
from apiclub.setting_values import SFTP_HOST_KEY_HOW as HOW

PASSWORD_ENV = "LITESTREAM_SFTP_PASSWORD"  # noqa: S105 (the variable's name, not a password)
KEY_TYPES = ("ssh-", "ecdsa-", "sk-")
"""How an OpenSSH public key's type begins (ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256...)."""


def sftp_replica(url: str, env: Mapping[str, str]) -> dict[str, str]:
    """The replica section of Litestream's configuration for `url` (checked already).

    Raises:
        ConfigError: the host key or private key file cannot be read or holds no key.
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    replica = {
        "url": urlunsplit(parts._replace(query="", fragment="")),
        "host-key": read_host_key(Path(query["host-key-path"])),
    }
    if key_path := query.get("key-path"):
        path = Path(key_path)
        try:
            path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"the sftp replica's key-path={key_path!r} cannot be read ({exc.strerror}): "
                "give the private key apiclub logs in with"
            ) from None
        replica["key-path"] = str(path.absolute())
    if password := env.get(PASSWORD_ENV):
        replica["password"] = password
    if "key-path" not in replica and "password" not in replica:
        raise ConfigError(
            f"the sftp replica {url!r} has no way to log in: add ?key-path=FILE (a private key "
            f"the server accepts) or set {PASSWORD_ENV} (e.g. in APICLUB_REPLICATE_ENV_FILE)"
        )
    return replica


def read_host_key(path: Path) -> str:
    """The first public key in `path`, as `type base64` (a `.pub` file or a known_hosts line).

    Raises:
        ConfigError: the file cannot be read or holds no public key.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"the sftp replica's host-key-path={str(path)!r} cannot be read ({exc}): {HOW}"
        ) from None
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        for i, field in enumerate(fields[:-1]):
            if field.startswith(KEY_TYPES):
                return f"{field} {fields[i + 1]}"
    raise ConfigError(f"the sftp replica's host-key-path={str(path)!r} holds no public key: {HOW}")
