"""`certs/live/<name>/`: what is served for each name right now, for a proxy in front to read.

The files are rewritten from the certificates in memory whenever those change, and checked
again by the maintenance loop: a live file that was overwritten or deleted (by a person, a
full disk that left it truncated) is put back, so nginx never reloads garbage for long.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path

from apiclub.tls import keys
from apiclub.tls.certified import CertifiedKey
from apiclub.tls.storage import Storage


def write_live(storage: Storage, served: Mapping[str, CertifiedKey]) -> list[Path]:
    """Make `certs/live/<name>/` hold `served[name]`; return the files that had to be written.

    The key is written before the chain, each atomically, and unchanged files are left alone
    so the proxy's reload check sees no change.

    Raises:
        StorageError: a file cannot be written.
    """
    written = []
    for name, certified in served.items():
        for key, data, private in (
            (keys.live_private_key(name), certified.key_pem, True),
            (keys.live_cert(name), certified.chain_pem, False),
        ):
            with contextlib.suppress(KeyError):
                if storage.read(key) == data:
                    continue
            storage.write(key, data, private=private)
            written.append(storage.path(key))
    return written
