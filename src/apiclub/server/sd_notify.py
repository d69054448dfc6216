"""sd_notify(3): tell systemd (`Type=notify`) when the service is ready, reloading, stopping.

A few lines of socket code instead of a dependency: one datagram of `KEY=value` lines to the
`AF_UNIX` socket named by `NOTIFY_SOCKET` (a leading `@` is the abstract namespace). Without
that variable (no systemd, or a container) every call does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Mapping

logger = logging.getLogger("apiclub.generations")


def notify(environ: Mapping[str, str], **fields: str | int) -> bool:
    """Send `fields` (`ready=1` becomes `READY=1`); whether a notify socket took them."""
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
    with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)) as sock:
        try:
            sock.sendto(message.encode(), address)
        except OSError as exc:
            logger.warning("sd_notify to %s failed: %s", environ["NOTIFY_SOCKET"], exc)
            return False
    return True
