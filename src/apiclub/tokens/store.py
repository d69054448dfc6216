"""Bearer tokens on disk: their SHA-256 hashes only, in the data directory, unreadable by others.

Two files under the data directory, each 0600 in a 0700 `auth/` directory and replaced atomically
(`FileStorage.write`), so a server re-reading them sees the old set or the new one, never a mix::

    auth/tokens.json     {"version": 1, "tokens": [{"name", "sha256", "created_at"}, ...]}
                         written by `apiclub tokens add|revoke` only
    auth/last-use.json   {"version": 1, "last_used": {"<sha256>": "<ISO-8601 UTC>", ...}}
                         written by running servers, a batch at a time

Both are rewritten under the store's `tokens` lock: two `tokens add` at once, or several worker
processes recording last use, never lose each other's change. Servers never write
`tokens.json`, so a revocation cannot be undone by a server that held the old set.

Why SHA-256 and not a slow password hash (bcrypt, scrypt, Argon2): those make each guess at a
*low-entropy* password expensive for someone who stole the hashes. A token here is 32 bytes
from `secrets` (256 bits): nobody can enumerate that space, however fast each guess is, so a
slow hash would add no protection, and it would cost every write request the milliseconds of
CPU that make a slow hash slow, a lever for anyone sending bad tokens. Lookups compare the
hashes with `hmac.compare_digest` (see `LiveTokens`).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apiclub.errors import StorageError, TokenError
from apiclub.tls.storage import FileStorage, KeyNotStoredError

TOKEN_PREFIX = "apiclub_"  # noqa: S105  (a public prefix, not a secret)
"""Starts every token, so a secret scanner (or a person) recognises one in a leaked file."""
TOKEN_BYTES = 32
TOKENS_KEY = "auth/tokens.json"
LAST_USE_KEY = "auth/last-use.json"
LOCK_NAME = "tokens"
FORMAT_VERSION = 1
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class StoredToken:
    """One token as stored: who it is for and when it was made; never the token itself."""

    name: str
    sha256: str
    """Hex SHA-256 of the token's UTF-8 bytes."""
    created_at: datetime
    last_used_at: datetime | None = None
    """As last recorded by a server (batched, so up to a minute late); None if never used."""


def new_token() -> str:
    """A fresh token: the prefix and 32 random bytes, URL-safe base64 (no padding)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The hex SHA-256 stored for `token` (see the module docstring for why no slow KDF)."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class TokenStore:
    """The token files of one data directory: add, revoke, list, and record last use."""

    def __init__(self, data_dir: Path) -> None:
        self.storage = FileStorage(data_dir)

    @property
    def path(self) -> Path:
        """The token file, `auth/tokens.json` under the data directory."""
        return self.storage.path(TOKENS_KEY)

    def load(self) -> tuple[StoredToken, ...]:
        """The stored tokens, without last use; none when the file does not exist yet.

        Raises:
            StorageError: the file cannot be read or is not a token file.
        """
        raw = self._read(TOKENS_KEY)
        if raw is None:
            return ()
        try:
            document = json.loads(raw)
            _check_version(document)
            tokens = tuple(_parse_token(item) for item in document["tokens"])
        except (ValueError, KeyError, TypeError) as exc:
            raise self._corrupt(TOKENS_KEY, exc) from None
        return tokens

    def list_tokens(self) -> list[StoredToken]:
        """The stored tokens with their last use, in the order they were added."""
        used = self._load_last_use()
        return [
            StoredToken(token.name, token.sha256, token.created_at, used.get(token.sha256))
            for token in self.load()
        ]

    def add(self, name: str, *, now: datetime | None = None) -> str:
        """Store a new token for `name` and return it: the only time it is ever seen.

        Raises:
            TokenError: `name` is not a valid name, or a token by that name exists.
            StorageError: the data directory cannot be written.
        """
        if not NAME_PATTERN.fullmatch(name):
            raise TokenError(
                f"token name {name!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit (e.g. ci-deploy)"
            )
        token = new_token()
        created = StoredToken(name, hash_token(token), now or datetime.now(UTC))
        with self.storage.lock(LOCK_NAME):
            tokens = self.load()
            if any(stored.name == name for stored in tokens):
                raise TokenError(
                    f"a token named {name!r} exists already: revoke it first "
                    f"(apiclub tokens revoke {name}) or choose another name"
                )
            self._write_tokens((*tokens, created))
        return token

    def revoke(self, name: str) -> StoredToken:
        """Delete the token of `name`; running servers refuse it within about a second.

        Raises:
            TokenError: no token has that name.
            StorageError: the data directory cannot be written.
        """
        with self.storage.lock(LOCK_NAME):
            tokens = self.load()
            gone = [token for token in tokens if token.name == name]
            if not gone:
                known = ", ".join(token.name for token in tokens) or "none"
                raise TokenError(
                    f"no token is named {name!r} in {self.path} (tokens: {known}); "
                    "see apiclub tokens list"
                )
            self._write_tokens(tuple(token for token in tokens if token.name != name))
            used = self._load_last_use()
            if used.pop(gone[0].sha256, None) is not None:
                self._write_last_use(used)
        return gone[0]

    def record_use(self, used: Mapping[str, datetime]) -> None:
        """Merge last-use times (by token hash) into `auth/last-use.json`, keeping the latest.

        Hashes of tokens no longer stored are dropped, so a revoked token leaves nothing.

        Raises:
            StorageError: the data directory cannot be written.
        """
        with self.storage.lock(LOCK_NAME):
            known = {token.sha256 for token in self.load()}
            merged = {key: when for key, when in self._load_last_use().items() if key in known}
            for key, when in used.items():
                if key in known and (key not in merged or merged[key] < when):
                    merged[key] = when
            self._write_last_use(merged)

    def _write_tokens(self, tokens: tuple[StoredToken, ...]) -> None:
        document = {
            "version": FORMAT_VERSION,
            "tokens": [
                {"name": t.name, "sha256": t.sha256, "created_at": _iso(t.created_at)}
                for t in tokens
            ],
        }
        self.storage.write(TOKENS_KEY, _encode(document), private=True)

    def _load_last_use(self) -> dict[str, datetime]:
        raw = self._read(LAST_USE_KEY)
        if raw is None:
            return {}
        try:
            document = json.loads(raw)
            _check_version(document)
            return {
                _check_hash(key): _parse_time(value)
                for key, value in dict(document["last_used"]).items()
            }
        except (ValueError, KeyError, TypeError) as exc:
            raise self._corrupt(LAST_USE_KEY, exc) from None

    def _write_last_use(self, used: Mapping[str, datetime]) -> None:
        document = {
            "version": FORMAT_VERSION,
            "last_used": {key: _iso(when) for key, when in sorted(used.items())},
        }
        self.storage.write(LAST_USE_KEY, _encode(document), private=True)

    def _read(self, key: str) -> bytes | None:
        try:
            return self.storage.read(key)
        except KeyNotStoredError:
            return None

    def _corrupt(self, key: str, exc: Exception) -> StorageError:
        return StorageError(
            f"{self.storage.path(key)} is not an apiclub token file ({type(exc).__name__}: "
            f"{exc}); restore it from a backup, or delete it and add the tokens again with "
            "apiclub tokens add NAME"
        )


def _check_version(document: Any) -> None:
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
        raise ValueError(f"expected a JSON object with version {FORMAT_VERSION}")


def _parse_token(item: Any) -> StoredToken:
    name = item["name"]
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"bad token name {name!r}")
    return StoredToken(name, _check_hash(item["sha256"]), _parse_time(item["created_at"]))


def _check_hash(value: Any) -> str:
    if not isinstance(value, str) or not _SHA256_HEX.fullmatch(value):
        raise ValueError("a sha256 is not 64 lower-case hex digits")
    return value


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError("a time is not a string")
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ValueError(f"time {value!r} has no UTC offset")
    return when


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds")


def _encode(document: object) -> bytes:
    return (json.dumps(document, indent=2) + "\n").encode()
