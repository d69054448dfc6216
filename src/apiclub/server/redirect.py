"""The port-80 app: answer ACME challenges, send browsers to HTTPS, for our own names only.

`/.well-known/acme-challenge/<token>` comes first (RFC 8555 8.3), answered by the one HTTP-01
responder, `tls.challenge_answer` (GET and HEAD only, the challenged name only, no-store), as
the CLI's answerer and `ChallengeMiddleware` behind nginx answer it. Everything else
redirects: GET and HEAD get 301, other methods 308 so a POST is not turned into a GET (RFC 9110
15.4.2 and RFC 9110 15.4.9). Any other Host gets 421 with no Location: redirecting whatever
Host a client names would make us an open redirect.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from apiclub.observe import emit
from apiclub.server.asgi import ASGIApp, Receive, Scope, Send
from apiclub.server.hosts import request_host
from apiclub.tls.challenge_answer import answer_challenge
from apiclub.tls.challenges import ChallengeLookup, token_from_path

HTTPS_DEFAULT_PORT = 443
SAFE_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Answer:
    """A complete answer of the port-80 listener, whichever server writes it."""

    status: int
    headers: list[tuple[bytes, bytes]]
    """Without content-length: the writer adds it from `body`."""
    body: bytes = b""


class RedirectApp:
    """Answer every request with a redirect to the same URL over HTTPS.

    `answer()` decides; the port-80 server of `redirect_server.py` writes its decision. The
    ASGI `__call__` writes the same decision for any ASGI server (the unit tests use it), and
    `ChallengeMiddleware` uses `answer_challenge` behind nginx.
    """

    def __init__(
        self,
        allowed_hosts: Iterable[str],
        https_port: int,
        challenges: ChallengeLookup | None = None,
    ) -> None:
        self.allowed_hosts = frozenset(allowed_hosts)
        self.https_port = https_port
        self.challenges = challenges

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _answer_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope.get("path", "/")
        raw_path: bytes = scope.get("raw_path") or path.encode()
        answer = self.answer(
            scope["method"],
            path,
            raw_path,
            scope.get("query_string", b""),
            request_host(scope),
            _peer(scope),
        )
        await send_answer(send, answer, head=scope["method"] == "HEAD")

    def answer(
        self, method: str, path: str, raw_path: bytes, query: bytes, host: str | None, peer: str
    ) -> Answer:
        """The answer to one request.

        Args:
            method: the request method.
            path: the target's path, percent-decoded (where ACME tokens are looked up).
            raw_path: the target before `?`, as sent (what the Location keeps).
            query: the query string, as sent, without `?`.
            host: the normalised Host (`names.parse_host`), None if missing or bad.
            peer: the client's address, for the log.
        """
        if self.challenges is not None and token_from_path(path) is not None:
            emit("redirect.answer", kind="challenge")
            answer = answer_challenge(self.challenges, method, host, path, peer)
            return Answer(answer.status, answer.header_bytes(), answer.body)
        if host is None or host not in self.allowed_hosts:
            emit("redirect.answer", kind="refused")
            detail = f"this server does not serve host {host or '(none)'!r}"
            body = json.dumps({"status_code": 421, "detail": detail}).encode()
            return Answer(421, [(b"content-type", b"application/json")], body)
        location = self.https_url(host, raw_path, query)
        status = 301 if method in SAFE_METHODS else 308
        emit("redirect.answer", kind="redirect")
        cache = (b"cache-control", b"no-store") if status == 308 else (b"vary", b"host")
        return Answer(status, [(b"location", location.encode("ascii")), cache])

    def https_url(self, host: str, raw_path: bytes, query: bytes) -> str:
        """`https://host[:port]/path?query` for a request's target."""
        authority = f"[{host}]" if ":" in host else host
        if self.https_port != HTTPS_DEFAULT_PORT:
            authority = f"{authority}:{self.https_port}"
        path = percent_escape(raw_path)
        if not path.startswith("/"):
            # An absolute-form target (RFC 9112 3.2.2) keeps its path only: the Location's
            # authority is always the checked Host, never one the client wrote.
            _, _, rest = path.partition("://")
            path = "/" + rest.partition("/")[2] if rest else "/"
        url = f"https://{authority}{path}"
        return f"{url}?{percent_escape(query)}" if query else url


async def send_answer(send: Send, answer: Answer, *, head: bool = False) -> None:
    """Send `answer`; to a HEAD, its head only, with the length a GET's body has (RFC 9110 8.6)."""
    length = (b"content-length", str(len(answer.body)).encode())
    await send(
        {
            "type": "http.response.start",
            "status": answer.status,
            "headers": [*answer.headers, length],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else answer.body})


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown peer"


def percent_escape(raw: bytes) -> str:
    """Percent-encode the bytes a Location header may not carry (RFC 3986 2.1), keep the rest.

    Also what the access logs write a request's path with: as sent, with no control character
    that could end a log line and forge the next.
    """
    return "".join(chr(b) if 0x21 <= b <= 0x7E else f"%{b:02X}" for b in raw)


async def _answer_lifespan(receive: Receive, send: Send) -> None:
    """Hypercorn runs a lifespan per served app; this app has nothing to set up."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class ChallengeMiddleware:
    """Answer ACME HTTP-01 challenges in front of the API when it runs behind a proxy.

    With TLS off and APICLUB_MANAGE_CERTS, the proxy (nginx) forwards port 80's
    `/.well-known/acme-challenge/` to the API's plain listener; everything else passes on.
    """

    def __init__(self, app: ASGIApp, challenges: ChallengeLookup) -> None:
        self.app = app
        self.challenges = challenges

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and token_from_path(path) is not None:
            method = scope["method"]
            found = answer_challenge(
                self.challenges, method, request_host(scope), path, _peer(scope)
            )
            answer = Answer(found.status, found.header_bytes(), found.body)
            await send_answer(send, answer, head=method == "HEAD")
            return
        await self.app(scope, receive, send)
