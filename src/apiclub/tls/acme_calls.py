"""One `acme` call at a time, its many exception types turned into one `AcmeError`.

The `acme` package drops the answer's status line and `Retry-After` when it raises; the
network class here keeps them, so a refusal says what happened and when to try again
(RFC 8555 6.6, RFC 9110 10.2.3).
"""

from __future__ import annotations

import time
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

from acme import client, errors, messages
from josepy import errors as jose_errors

from apiclub.tls.acme_basics import AcmeError

# Problem types that are not ACME's own (RFC 8555 6.7 lists those under this prefix).
CONNECTION_PROBLEM = "apiclub:connection"
CLIENT_PROBLEM = "apiclub:client"
HTTP_PROBLEM = "apiclub:http"


class Network(client.ClientNetwork):
    """`ClientNetwork` that remembers the last answer's status and `Retry-After`, which the
    `acme` errors drop."""

    retry_after: str | None = None
    status: str | None = None
    """"503 Service Unavailable": the last answer's status line, or None before any."""

    def _send_request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        response = super()._send_request(method, url, *args, **kwargs)
        self.retry_after = response.headers.get("Retry-After")
        self.status = f"{response.status_code} {response.reason}".strip()
        return response

    def forget(self) -> None:
        """Start a new call: what earlier answers said no longer applies."""
        self.retry_after = self.status = None


def call(net: Network, what: str, action: Any) -> Any:
    """Run one `acme` call, turning its many exception types into one `AcmeError`."""
    net.forget()
    try:
        return action()
    except errors.ConflictError:
        raise
    except messages.Error as exc:
        raise AcmeError(
            what, str(exc.typ), str(exc.detail), retry_after_seconds(net.retry_after, time.time())
        ) from exc
    except errors.ClientError as exc:
        if net.status is None or net.status[0] not in "45":
            raise AcmeError(what, CLIENT_PROBLEM, str(exc), None) from exc
        # An error without a problem document (RFC 8555 6.7), e.g. from a load balancer in
        # front of the CA: its status and Retry-After still say what happened and when to retry.
        detail = f"HTTP {net.status} without a problem document"
        wait = retry_after_seconds(net.retry_after, time.time())
        raise AcmeError(what, HTTP_PROBLEM, detail, wait) from exc
    except errors.ValidationError as exc:
        problem = next(
            (c.error for a in exc.failed_authzrs for c in a.body.challenges if c.error), None
        )
        typ, detail = (str(problem.typ), str(problem.detail)) if problem else ("", str(exc))
        raise AcmeError(what, typ or CLIENT_PROBLEM, detail, None) from exc
    except errors.IssuanceError as exc:
        raise AcmeError(what, str(exc.error.typ), str(exc.error.detail), None) from exc
    except errors.Error as exc:
        raise AcmeError(what, CLIENT_PROBLEM, str(exc) or type(exc).__name__, None) from exc
    except OSError as exc:  # requests' exceptions are OSErrors: refused, TLS, timeout
        raise AcmeError(what, CONNECTION_PROBLEM, _short(exc), None) from exc
    except jose_errors.DeserializationError as exc:
        raise AcmeError(what, CLIENT_PROBLEM, f"unexpected answer: {exc}", None) from exc


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` value (RFC 9110 10.2.3), or None if absent or
    unreadable (then our own backoff decides).

    Both forms are understood: delay-seconds (digits only) and an HTTP-date in any of the three
    formats a recipient must accept (RFC 9110 5.6.7: IMF-fixdate, RFC 850, asctime), all UTC.
    `now` is `time.time()`; a date in the past means "now".
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # asctime carries no zone; every HTTP-date is UTC (RFC 9110 5.6.7)
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _short(exc: OSError) -> str:
    """requests nests the reason deep inside; the innermost message is the readable one."""
    inner: BaseException = exc
    while inner.__context__ is not None and inner.__context__ is not inner:
        inner = inner.__context__
    return f"{exc.__class__.__name__}: {inner}" if inner is not exc else str(exc)


def with_eab_hint(exc: AcmeError, bound: bool) -> AcmeError:
    """Say what to do when registration fails over External Account Binding (RFC 8555 7.3.4)."""
    if exc.problem_type.endswith(":externalAccountRequired"):
        hint = (
            "this CA requires External Account Binding: set APICLUB_ACME_EAB_KID and "
            "APICLUB_ACME_EAB_HMAC_KEY (or _FILE) from your account at the CA"
        )
    elif bound and exc.problem_type.endswith((":unauthorized", ":malformed")):
        hint = (
            "the CA refused the External Account Binding: check that APICLUB_ACME_EAB_KID "
            "and the HMAC key are the pair the CA issued"
        )
    else:
        return exc
    detail = f"{exc.detail}; registering an ACME account: {hint}"
    return AcmeError("registering an ACME account", exc.problem_type, detail, exc.retry_after)
