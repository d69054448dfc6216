"""The one HTTP-01 responder: what any listener answers to `/.well-known/acme-challenge/<token>`.

Three listeners answer challenges: the server's port-80 listener (`server/redirect.py`), the
API's plain listener behind nginx (`ChallengeMiddleware`, nginx forwards the path), and the
CLI's short-lived answerer (`http01.py`). For each path `challenges.token_from_path` accepts,
each hands the request's method, normalised Host (`names.parse_host`) and decoded path to
`answer_challenge` and writes the `ChallengeAnswer` it gets, so the three never disagree:

- GET and HEAD only (RFC 8555 8.3: the CA sends a GET); any other method gets 405 with
  `Allow: GET, HEAD` (RFC 9110 15.5.6).
- The key authorization only to the name its order validates: the `ChallengeLookup` compares
  the Host (lower case, no port, no trailing dot) with the challenged name and answers None
  otherwise, which is 404 here (certmagic's `solveHTTPChallenge` does the same against DNS
  rebinding).
- `Cache-Control: no-store` on every answer: a cache between the CA and us must not replay a
  token of an old order, nor a 404 from before the token was published.
- `Content-Type: text/plain`, as certmagic and lego send; RFC 8555 8.3 fixes the body (the key
  authorization, ASCII) and not the media type (its example shows application/octet-stream),
  and CAs read the body whatever the type.
- Bounded: a path longer than a token can be answers 404 without a lookup, and the body is a
  key authorization (`ChallengeStore` caps what it reads).

A HEAD answer carries the GET's body here with its length: the writer sends the head only, so
`Content-Length` stays the length a GET would get (RFC 9110 8.6).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from apiclub.tls.challenges import (
    CHALLENGE_PATH_PREFIX,
    MAX_TOKEN_LENGTH,
    ChallengeLookup,
    token_from_path,
)

logger = logging.getLogger("apiclub.tls.acme")

ALLOWED_METHODS = ("GET", "HEAD")
MAX_CHALLENGE_PATH = len(CHALLENGE_PATH_PREFIX) + MAX_TOKEN_LENGTH
"""A longer path cannot name a token: 404 without looking it up."""
UNKNOWN_TOKEN = b"unknown ACME challenge token\n"
WRONG_METHOD = b"ACME challenges answer GET and HEAD only\n"
_HEADERS = (("content-type", "text/plain"), ("cache-control", "no-store"))


@dataclass(frozen=True)
class ChallengeAnswer:
    """A complete answer to a challenge request, for any writer.

    `headers` has no Content-Length: the writer adds it from `body` (the GET's body, also for
    HEAD, whose writer sends no body).
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header_bytes(self) -> list[tuple[bytes, bytes]]:
        """`headers` as the (name, value) byte pairs ASGI and raw HTTP writers use."""
        return [(name.encode("ascii"), value.encode("ascii")) for name, value in self.headers]


def answer_challenge(
    lookup: ChallengeLookup, method: str, host: str | None, path: str, peer: str = "unknown peer"
) -> ChallengeAnswer:
    """The answer to a request for a challenge path (one `token_from_path` accepts).

    Args:
        lookup: the tokens in flight (a `ChallengeStore`).
        method: the request method, as sent.
        host: the request's Host, normalised (lower case, no port, no trailing dot; an IPv6
            literal without brackets), or None when missing or malformed.
        path: the percent-decoded path, without the query.
        peer: the client's address, for the log.
    """
    if method not in ALLOWED_METHODS:
        return ChallengeAnswer(
            405, (("allow", ", ".join(ALLOWED_METHODS)), *_HEADERS), WRONG_METHOD
        )
    token = token_from_path(path) or ""
    key_authorization = None
    if token and len(path) <= MAX_CHALLENGE_PATH:
        key_authorization = lookup.lookup(token, host)
    if key_authorization is None:
        logger.info("unknown ACME challenge token %r for host %r from %s", token[:64], host, peer)
        return ChallengeAnswer(404, _HEADERS, UNKNOWN_TOKEN)
    logger.info("answered ACME challenge token %s for %s", token, host)
    return ChallengeAnswer(200, _HEADERS, key_authorization.encode("ascii"))
