"""The tokens a running server accepts: re-read when the file changes, last use kept in memory.

A revocation must reach a running server within seconds without a restart, and a check must
cost next to nothing: so each check `stat`s the token file at most once a second and re-reads
it only when its inode, size or modification time changed (`tokens add|revoke` replace it
with a rename, which always gives a new inode). Last use is noted in memory and written by
`take_used` + `TokenStore.record_use` in batches (the API does so once a minute and at
shutdown), never once per request.

An unreadable or corrupt token file at runtime fails closed: every token is refused, with one
error in the log, until the file is fixed (keeping the old set would keep a revoked token
working). At start-up the same file stops the server (`load` raises).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from apiclub.errors import StorageError
from apiclub.tokens.store import StoredToken, TokenStore
from apiclub.units import SECONDS

logger = logging.getLogger("apiclub.tokens")

RELOAD_CHECK_INTERVAL = 1 * SECONDS
"""How often a check may `stat` the token file: a revocation takes effect within this."""

_Signature = tuple[int, int, int, int] | str | None
"""(device, inode, mtime_ns, size) of the token file; None when missing; text when unstatable."""


class LiveTokens:
    """The token set one server process checks requests against."""

    def __init__(
        self,
        store: TokenStore,
        *,
        check_interval: float = RELOAD_CHECK_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._check_interval = check_interval
        self._clock = clock
        self._tokens: tuple[tuple[bytes, StoredToken], ...] = ()
        self._signature: _Signature = None
        self._next_check = 0.0
        self._used: dict[str, datetime] = {}

    @property
    def count(self) -> int:
        """How many tokens are accepted now."""
        return len(self._tokens)

    def load(self) -> int:
        """Read the token file at start-up; returns how many tokens it holds (0 if none yet).

        Raises:
            StorageError: the file exists but cannot be read or is not a token file.
        """
        self._signature = self._stat()
        self._install(self.store.load())
        self._next_check = self._clock() + self._check_interval
        return self.count

    def verify(self, token: str) -> str | None:
        """The name of the stored token equal to `token`, or None.

        Compares SHA-256 digests with `hmac.compare_digest`, against every stored token without
        stopping at a match, so the time taken says nothing about which bytes matched.
        """
        self.refresh()
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        found: StoredToken | None = None
        for stored_digest, stored in self._tokens:
            if hmac.compare_digest(stored_digest, digest):
                found = stored
        if found is None:
            return None
        self._used[found.sha256] = datetime.now(UTC).replace(microsecond=0)
        return found.name

    def refresh(self) -> None:
        """Re-read the token file if it changed, checking at most once per interval."""
        now = self._clock()
        if now < self._next_check:
            return
        self._next_check = now + self._check_interval
        signature = self._stat()
        if signature == self._signature:
            return
        self._signature = signature
        try:
            tokens = self.store.load()
        except StorageError as exc:
            self._tokens = ()
            logger.error("every token is refused until the token file is fixed: %s", exc)
            return
        self._install(tokens)
        logger.info("token file changed: %d token(s) accepted", len(tokens))

    def take_used(self) -> dict[str, datetime]:
        """The last uses noted since the previous call (token hash -> time), and forget them."""
        used, self._used = self._used, {}
        return used

    def give_back(self, used: Mapping[str, datetime]) -> None:
        """Keep last uses a failed write could not record, for the next batch."""
        for key, when in used.items():
            if key not in self._used or self._used[key] < when:
                self._used[key] = when

    def _install(self, tokens: tuple[StoredToken, ...]) -> None:
        self._tokens = tuple((bytes.fromhex(token.sha256), token) for token in tokens)

    def _stat(self) -> _Signature:
        try:
            info = self.store.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"unreadable: {exc}"
        return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)
