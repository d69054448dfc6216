"""A tiny observer hook: `db/`, `tls/` and `api/` say what happened, `ops/` counts it.

The layering (docs/architecture.md) keeps `db/` and `tls/` free of Prometheus and of server
code, yet the metrics need their numbers (group-commit batch sizes, renewal outcomes). So those
layers call `emit("event", field=value)` and whoever subscribed (the metrics of `apiclub.ops`)
turns the event into samples. With nobody subscribed an `emit` is one function call and an
empty loop.

Events and their fields (the contract between emitters and `ops.metrics`):
- `db.commit`: `batch` (writes in one transaction), `seconds` (BEGIN to COMMIT).
- `db.unavailable`: `reason`: "busy" or "unavailable" (`db.interface.Unavailable.kind`).
- `tls.handshake`: (none) a TLS handshake reached certificate choice (SNI callback).
- `cert.renewal`: `name`, `ok` (bool), `failures` (consecutive, after this attempt),
  `seconds` (the order's duration), `at` (unix time of the attempt).
- `redirect.answer`: `kind`, one of "redirect", "refused", "challenge".

Rate-limit (429) and auth (401) refusals need no event: the request metrics count them by
their status, so bearer tokens (`api/auth.py`) are counted once they answer 401.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

Listener = Callable[[str, Mapping[str, object]], None]

logger = logging.getLogger("apiclub.observe")
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> Callable[[], None]:
    """Call `listener(event, fields)` for every later `emit`; returns the unsubscribe call."""
    _listeners.append(listener)

    def unsubscribe() -> None:
        if listener in _listeners:
            _listeners.remove(listener)

    return unsubscribe


def emit(event: str, **fields: object) -> None:
    """Tell the subscribers that `event` happened; a failing subscriber never fails the caller."""
    for listener in _listeners:
        try:
            listener(event, fields)
        except Exception:
            logger.exception("observer of %s failed", event)
