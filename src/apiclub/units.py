"""The units every constant is written in: `30 * SECONDS`, `16 * KIB`, `90 * DAY`.

One definition for the whole tree, so a timeout reads the same in `server/` as in `db/`
(Hypercorn's `config.py` writes `SECONDS = 1.0` and `OCTETS = 1` the same way).

Durations come in two kinds because Python has two: plural names are float seconds, for
timeouts, sleeps and `asyncio` (`SECONDS`, `MINUTES`, `HOURS`, `DAYS`); singular names are
`timedelta`s, for certificate dates and other `datetime` arithmetic (`SECOND`, `MINUTE`,
`HOUR`, `DAY`, `YEAR`), as Go's `time.Second` in certmagic. A protocol field that must be a
whole number of seconds (HSTS max-age, `Retry-After`) converts with `int(...)` where it is made.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

SECONDS: Final = 1.0
MINUTES: Final = 60 * SECONDS
HOURS: Final = 60 * MINUTES
DAYS: Final = 24 * HOURS

SECOND: Final = timedelta(seconds=1)
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR
YEAR: Final = 365 * DAY
"""A common year: certificate lifetimes count days, not calendar years."""

BYTES: Final = 1
KIB: Final = 1024 * BYTES
MIB: Final = 1024 * KIB
