"""Every patch apiclub makes to another project's internals, installed by one call.

The patches (in the modules of this package) fix Hypercorn 0.18's graceful stop, bound what a
request may cost, and trim asyncio's TLS buffers; `docs/upstream.md` has the report each one
deserves upstream. `install()` is called once per serving process, by `Server.prepare()`,
before any socket is bound: it checks every patch against the installed versions first and
refuses to start, in one line, if one no longer fits (a renamed method would otherwise turn
a fix into a dead attribute, silently). `APICLUB_ALLOW_UNPATCHED=1` lets an operator run on
versions the patches were not written for: the ones that do not fit are left out, each with a
warning. Tests remove one patch at a time (`uninstall`, then `install(skip=...)`) to prove
that each one is needed.
"""

from __future__ import annotations

import asyncio.sslproto
import logging
import os

from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h11 import H11Protocol

from apiclub.compat import (
    h2_limits,
    h11_coalesce,
    head_limit,
    hypercorn_stop,
    request_deadline,
    tls_buffers,
    tls_handshakes,
)
from apiclub.compat.registry import Fits, Patch, Target
from apiclub.errors import ApiclubError

logger = logging.getLogger("apiclub.compat")

ALLOW_UNPATCHED = "APICLUB_ALLOW_UNPATCHED"
"""Set to 1 to start on versions a patch was not written for, without that patch."""

HYPERCORN = Fits("hypercorn", ("0.18.",))
H11 = Fits("h11", ("0.16.",))
H2 = Fits("h2", ("4.",))
PYTHON = Fits("python", ("3.11.", "3.12.", "3.13."))
"""The asyncio rewrite of sslproto (3.11) that the TLS patches know."""

_SSL = asyncio.sslproto.SSLProtocol
_UPSTREAM = "docs/upstream.md#"

PATCHES: tuple[Patch, ...] = (
    Patch(
        "tls-close-errors",
        "https://github.com/pgjones/hypercorn/issues/261",
        (HYPERCORN,),
        (Target(TCPServer, "_close"),),
        hypercorn_stop.tolerate_tls_close_errors,
    ),
    Patch(
        "writes-after-lost-transport",
        _UPSTREAM + "writes-and-reads-on-a-lost-tls-transport",
        (HYPERCORN, PYTHON),
        (Target(TCPServer, "protocol_send"),),
        hypercorn_stop.tolerate_writes_after_connection_lost,
    ),
    Patch(
        "reads-after-lost-transport",
        _UPSTREAM + "writes-and-reads-on-a-lost-tls-transport",
        (HYPERCORN, PYTHON),
        (
            Target(
                TCPServer,
                "_read_data",
                copied_from="68c411955c4224c50fa92a62d390fe157f8a94a93cc69dd7ee6ca2a302bd3fe0",
            ),
        ),
        hypercorn_stop.tolerate_reads_after_connection_lost,
    ),
    Patch(
        "idle-close-race",
        _UPSTREAM + "a-request-arriving-as-an-idle-connection-closes",
        (HYPERCORN, H11),
        (
            Target(
                TCPServer,
                "_idle_timeout",
                copied_from="8541f73744e5c9eb57abc6042b4a156888ceed4023e588c698bb1e116be0c9bb",
            ),
            Target(H11Protocol, "__init__"),
            Target(H11Protocol, "_create_stream"),
            Target(H11Protocol, "stream_send"),
        ),
        hypercorn_stop.close_idle_connections_safely,
    ),
    Patch(
        "h2-requests-after-goaway",
        _UPSTREAM + "http2-requests-after-the-stops-goaway",
        (HYPERCORN, H2),
        (Target(H2Protocol, "_handle_events"), Target(H2Protocol, "handle")),
        hypercorn_stop.ignore_h2_requests_after_goaway,
    ),
    # After the GOAWAY patch, so that the limit's filter runs first and the GOAWAY one sees
    # each event as Hypercorn reaches it.
    Patch(
        "h2-stream-limit",
        _UPSTREAM + "the-http2-stream-limit-within-one-read",
        (HYPERCORN, H2),
        (Target(H2Protocol, "_handle_events"),),
        h2_limits.limit_h2_streams,
    ),
    Patch(
        "track-connections",
        _UPSTREAM + "a-way-to-end-the-last-connections-of-a-stop",
        (HYPERCORN, PYTHON),
        (Target(TCPServer, "run"),),
        hypercorn_stop.track_connections,
    ),
    # Wraps the read loop that reads-after-lost-transport made tolerant.
    Patch(
        "request-deadline",
        _UPSTREAM + "a-whole-request-deadline",
        (HYPERCORN, H11, H2),
        (Target(TCPServer, "_read_data"),),
        request_deadline.enforce_request_deadline,
    ),
    Patch(
        "h11-head-limit",
        _UPSTREAM + "the-request-head-limit-within-one-read",
        (HYPERCORN, H11),
        (Target(H11Protocol, "_create_stream"),),
        head_limit.limit_h11_head,
    ),
    Patch(
        "h2-header-list-limit",
        _UPSTREAM + "h2s-header-list-limit",
        (HYPERCORN, H2),
        (Target(H2Protocol, "__init__"),),
        head_limit.limit_h2_header_list,
    ),
    Patch(
        "tls-read-buffers",
        "https://github.com/python/cpython/issues/109534",
        (PYTHON,),
        (
            Target(_SSL, "__init__", mentions=("_ssl_buffer_view",)),
            Target(_SSL, "get_buffer", mentions=("_ssl_buffer_view",)),
            Target(_SSL, "buffer_updated", mentions=("_ssl_buffer_view",)),
            Target(_SSL, "max_size"),
        ),
        tls_buffers.shrink_tls_read_buffers,
    ),
    Patch(
        "h11-coalesce",
        _UPSTREAM + "one-write-per-small-http11-response",
        (HYPERCORN, H11),
        (
            Target(
                H11Protocol,
                "_send_h11_event",
                copied_from="e33ac1b6ed2866d617bb856f14131bc5c94f55cb91ed4b7e5098e4f970bbaf98",
            ),
        ),
        h11_coalesce.coalesce_h11_head_and_body,
    ),
    Patch(
        "tls-handshake-failures",
        _UPSTREAM + "failed-tls-handshakes-are-reported-to-no-one",
        (PYTHON,),
        (Target(_SSL, "_on_handshake_complete"),),
        tls_handshakes.count_handshake_failures,
    ),
)
"""Every patch, in the order they go in: wrappers of the same method nest in this order."""


_left_out: set[str] = set()


class CompatError(ApiclubError):
    """An installed library is not the version a patch was written for."""


def problems() -> dict[str, list[str]]:
    """Each patch that does not fit the installed versions, with why (empty: all fit)."""
    return {patch.name: found for patch in PATCHES if (found := patch.problems())}


def install(
    connections: hypercorn_stop.ConnectionTracker | None = None, skip: frozenset[str] = frozenset()
) -> None:
    """Check every patch, then apply each one not yet applied, in order.

    Args:
        connections: where open connections are reported (`server.connections`).
        skip: patches to leave out until `uninstall()` (tests prove each one is needed so).

    Raises:
        CompatError: a patch does not fit the installed versions and `APICLUB_ALLOW_UNPATCHED`
            is not set.
    """
    if connections is not None:
        hypercorn_stop.tracker = connections
    _left_out.update(skip)
    unfit = problems()
    if unfit and os.environ.get(ALLOW_UNPATCHED) != "1":
        name, found = next(iter(unfit.items()))
        more = f" (and {len(unfit) - 1} more patches)" if len(unfit) > 1 else ""
        raise CompatError(
            f"apiclub's patch {name!r} does not fit: {'; '.join(found)}{more}. Install the "
            f"versions apiclub was tested with (make install, or uv sync --locked), or set "
            f"{ALLOW_UNPATCHED}=1 to run without the patches that do not fit"
        )
    for patch in PATCHES:
        if patch.name in unfit:
            if not patch.installed:
                logger.warning(
                    "running without apiclub's patch %r (%s): %s; see %s",
                    patch.name,
                    ALLOW_UNPATCHED,
                    "; ".join(unfit[patch.name]),
                    patch.upstream,
                )
            continue
        if patch.name not in _left_out:
            patch.install()


def uninstall() -> None:
    """Put back everything the patches replaced, in reverse order."""
    for patch in reversed(PATCHES):
        patch.remove()
    _left_out.clear()


def installed() -> list[str]:
    """The names of the patches now in place."""
    return [patch.name for patch in PATCHES if patch.installed]
