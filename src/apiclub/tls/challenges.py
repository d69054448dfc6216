"""HTTP-01 challenge tokens in flight, answered on port 80 (RFC 8555 8.3).

Tokens live in memory and, so that another process sharing the data directory can answer
them (Caddy's instances share one storage), in files under `acme/challenges/<token>`. Whoever
holds port 80 answers every order in flight: a running `apiclub serve` answers the tokens of
an `apiclub certs renew` it never heard of, and the CLI answers the server's if it holds the
port.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Protocol

from apiclub.errors import StorageError
from apiclub.tls.storage import Storage

logger = logging.getLogger("apiclub.tls.acme")

CHALLENGES_DIR = "acme/challenges"
# RFC 8555 8.3: the path is /.well-known/acme-challenge/<token>.
CHALLENGE_PATH_PREFIX = "/.well-known/acme-challenge/"
# RFC 8555 8.1: a token is base64url without padding; at least 128 bits of entropy (22 chars).
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,256}$")


class ChallengeLookup(Protocol):
    """What the port-80 listener needs: the key authorization of a token, or None."""

    def lookup(self, token: str) -> str | None:
        """The key authorization to answer for `token`; None when no order uses it."""
        ...


class ChallengeStore:
    """Tokens of orders in flight, in memory and in the shared store."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._tokens: dict[str, str] = {}
        self._guard = threading.Lock()

    def add(self, token: str, key_authorization: str) -> None:
        """Publish a token before telling the ACME server to validate it.

        Raises:
            ValueError: the token is not base64url (a server must never send such a token).
            StorageError: the store cannot be written.
        """
        if not _TOKEN.match(token):
            raise ValueError(f"ACME challenge token {token!r} is not base64url")
        with self._guard:
            self._tokens[token] = key_authorization
        self.storage.write(_key(token), key_authorization.encode("ascii"))

    def remove(self, token: str) -> None:
        """Withdraw a token once its authorization is decided; never raises."""
        with self._guard:
            self._tokens.pop(token, None)
        try:
            self.storage.path(_key(token)).unlink(missing_ok=True)
        except (OSError, ValueError) as exc:
            logger.warning("removing challenge token file %s: %s", _key(token), exc)

    def lookup(self, token: str) -> str | None:
        """The key authorization for `token`, from memory or from another process's file."""
        if not _TOKEN.match(token):
            return None
        with self._guard:
            if (known := self._tokens.get(token)) is not None:
                return known
        try:
            return self.storage.read(_key(token)).decode("ascii").strip()
        except KeyError:
            return None
        except (StorageError, UnicodeDecodeError) as exc:
            logger.warning("reading challenge token %s: %s", token, exc)
            return None


def token_from_path(path: str) -> str | None:
    """The token of a `/.well-known/acme-challenge/<token>` path, or None for other paths."""
    if not path.startswith(CHALLENGE_PATH_PREFIX):
        return None
    return path[len(CHALLENGE_PATH_PREFIX) :]


def _key(token: str) -> str:
    return f"{CHALLENGES_DIR}/{token}"
