"""HTTP-01 challenge tokens in flight, answered on port 80 (RFC 8555 8.3).

Tokens live in memory and, so that another process sharing the data directory can answer
them (Caddy's instances share one storage), in files under `acme/challenges/<token>`. Whoever
holds port 80 answers every order in flight: a running `apiclub serve` answers the tokens of
an `apiclub certs renew` it never heard of, and the CLI answers the server's if it holds the
port.

A token file is a public answer to anyone on port 80, and anyone who can write the directory
could plant one: it is read only if it is a regular file owned by us, reached through no
symbolic link (`FileStorage.read_owned`), and answered only if it has the shape of a key
authorization (`token.thumbprint`, RFC 8555 8.1) and the request's Host is the name being
validated. A link to `ca/root-key.pem` answers 404.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Protocol

from apiclub.errors import StorageError
from apiclub.tls import keys
from apiclub.tls.storage import Storage

logger = logging.getLogger("apiclub.tls.acme")

# RFC 8555 8.3: the path is /.well-known/acme-challenge/<token>.
CHALLENGE_PATH_PREFIX = "/.well-known/acme-challenge/"
MAX_TOKEN_LENGTH = 256
"""Characters of a token at most: RFC 8555 sets no bound; Let's Encrypt's have 43."""
# RFC 8555 8.1: a token is base64url without padding; at least 128 bits of entropy (22 chars).
_TOKEN = re.compile(rf"^[A-Za-z0-9_-]{{16,{MAX_TOKEN_LENGTH}}}$")
# RFC 8555 8.1: token || '.' || base64url(SHA-256 JWK thumbprint), 32 bytes = 43 characters.
_THUMBPRINT = re.compile(r"^[A-Za-z0-9_-]{43}$")
MAX_TOKEN_FILE = 1024
"""Bytes of a token file read at most: a key authorization and a name fit in far less."""


class ChallengeLookup(Protocol):
    """What the port-80 listener needs: the key authorization of a token, or None."""

    def lookup(self, token: str, host: str | None) -> str | None:
        """The key authorization to answer for `token` asked for with Host `host` (normalised,
        no port); None when no order uses it for that name."""
        ...


class ChallengeStore:
    """Tokens of orders in flight, in memory and in the shared store."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._tokens: dict[str, tuple[str, str | None]] = {}
        self._guard = threading.Lock()

    def add(self, token: str, key_authorization: str, name: str | None = None) -> None:
        """Publish a token before telling the ACME server to validate it, for `name` (the
        identifier validated; None: any Host).

        Raises:
            ValueError: the token is not base64url (a server must never send such a token).
            StorageError: the store cannot be written.
        """
        if not _TOKEN.match(token):
            raise ValueError(f"ACME challenge token {token!r} is not base64url")
        with self._guard:
            self._tokens[token] = (key_authorization, name)
        lines = [key_authorization] if name is None else [key_authorization, name]
        self.storage.write(_key(token), "\n".join(lines).encode("ascii"))

    def remove(self, token: str) -> None:
        """Withdraw a token once its authorization is decided; never raises."""
        with self._guard:
            self._tokens.pop(token, None)
        try:
            self.storage.path(_key(token)).unlink(missing_ok=True)
        except (OSError, ValueError) as exc:
            logger.warning("removing challenge token file %s: %s", _key(token), exc)

    def lookup(self, token: str, host: str | None = None) -> str | None:
        """The key authorization for `token`, from memory or from another process's file;
        None unless it has the key-authorization shape and `host` is the name it validates
        (when the order named one)."""
        if not _TOKEN.match(token):
            return None
        with self._guard:
            known = self._tokens.get(token)
        if known is None:
            known = self._read(token)
        if known is None:
            return None
        key_authorization, name = known
        prefix, dot, thumbprint = key_authorization.partition(".")
        if prefix != token or not dot or not _THUMBPRINT.match(thumbprint):
            logger.warning(
                "challenge token %s: the stored answer is not a key authorization", token
            )
            return None
        if name is not None and host != name.lower():
            return None  # only the name being validated asks for this token
        return key_authorization

    def _read(self, token: str) -> tuple[str, str | None] | None:
        try:
            text = self.storage.read_owned(_key(token), MAX_TOKEN_FILE).decode("ascii")
        except KeyError:
            return None
        except (StorageError, UnicodeDecodeError) as exc:
            logger.warning("reading challenge token %s: %s", token, exc)
            return None
        key_authorization, _, name = text.strip().partition("\n")
        return key_authorization.strip(), name.strip() or None


def token_from_path(path: str) -> str | None:
    """The token of a `/.well-known/acme-challenge/<token>` path, or None for other paths."""
    if not path.startswith(CHALLENGE_PATH_PREFIX):
        return None
    return path[len(CHALLENGE_PATH_PREFIX) :]


def _key(token: str) -> str:
    return keys.challenge_token(token)
