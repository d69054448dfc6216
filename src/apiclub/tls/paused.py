"""The zombie rule: a CA that paused an account for a name, and what ends the pause here.

Let's Encrypt pauses an account+name pair after many failed validations in a row (clients
that retry forever for a domain that no longer points at them) and answers every new order
for it with a `rateLimited` problem whose detail carries an unpause link. Retrying is useless
until the operator opens that link, so apiclub stops ordering that name, says so in the log
and in `apiclub certs list`, and tries again only when the operator acts: the settings that
shape the order change (a restart with another directory, profile, names or account), or
`apiclub certs renew --force` runs. The pause is recorded in the certificate's
`renewal.json`, so it survives restarts and other processes see it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from apiclub.tls.acme_basics import AcmeError

RATE_LIMITED = "urn:ietf:params:acme:error:rateLimited"
_UNPAUSE_URL = re.compile(r"https://\S*unpause\S*")


@dataclass(frozen=True)
class Pause:
    """The CA paused ordering this name: why, where to unpause, under which settings."""

    url: str
    detail: str
    settings: str
    """`settings_key` of the settings in force when the CA paused us."""


def pause_from(exc: Exception, settings: str) -> Pause | None:
    """The pause `exc` announces, or None if it is any other failure."""
    if not isinstance(exc, AcmeError) or exc.problem_type != RATE_LIMITED:
        return None
    found = _UNPAUSE_URL.search(exc.detail)
    if found is None:
        return None
    return Pause(url=found.group(0).rstrip(".,;)\"'"), detail=exc.detail, settings=settings)


def settings_key(*parts: object) -> str:
    """A short fingerprint of what shapes an order; a change ends a pause."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def pause_record(pause: Pause) -> dict[str, str]:
    """The fields a pause adds to `renewal.json`."""
    return {"paused": pause.url, "paused_detail": pause.detail, "paused_settings": pause.settings}


def pause_in(record: dict[str, str], settings: str) -> Pause | None:
    """The pause recorded in `renewal.json`, if it still holds under `settings`."""
    url = record.get("paused")
    if not url or record.get("paused_settings") != settings:
        return None
    return Pause(url=url, detail=record.get("paused_detail", ""), settings=settings)
