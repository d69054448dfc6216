"""Bearer tokens for writes: created and revoked by `apiclub tokens`, checked by the API.

Cheat sheet::

    store = TokenStore(settings.data_dir)   # auth/tokens.json, only hashes, 0600
    token = store.add("ci")                 # printed once, never stored
    store.list_tokens()                     # names, creation and last use
    store.revoke("ci")                      # running servers refuse it within ~1 s

    live = LiveTokens(store); live.load()   # in the server: raises StorageError if corrupt
    live.verify(token)                      # the token's name, or None (constant-time)
    store.record_use(live.take_used())      # last use, in batches (blocking: use a thread)

Modules: `store` (the files, their format, why SHA-256), `live` (what a running server holds).
Imports the standard library, `apiclub.errors` and the file storage of `apiclub.tls.storage`
(atomic 0600 writes and the cross-process lock): nothing of Litestar.
"""

from __future__ import annotations

from apiclub.tokens.live import RELOAD_CHECK_INTERVAL, LiveTokens
from apiclub.tokens.store import TOKEN_PREFIX, StoredToken, TokenStore, hash_token, new_token

__all__ = [
    "RELOAD_CHECK_INTERVAL",
    "TOKEN_PREFIX",
    "LiveTokens",
    "StoredToken",
    "TokenStore",
    "hash_token",
    "new_token",
]
