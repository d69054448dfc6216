"""An ACME (RFC 8555) client on certbot's `acme` package: account, order, HTTP-01, finalize.

Every call blocks (the `acme` package uses `requests`); the certificate manager runs them in
a thread. The account key and registration live in the data directory, per ACME directory::

    acme/<directory-id>/account-key.pem    ECDSA P-256, 0600
    acme/<directory-id>/account.json       the registration (account URL, contact), 0600

Every failure is an `AcmeError` carrying the server's problem type and detail (RFC 8555 6.7)
and, when the server asked for one, how long to wait (`Retry-After`, RFC 8555 6.6).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, cast

from acme import challenges, client, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from josepy import errors as jose_errors
from josepy import jwa, jwk

from apiclub.errors import CertificateError
from apiclub.tls.acme_basics import POLL_INTERVAL as POLL_INTERVAL  # re-exported
from apiclub.tls.acme_basics import AcmeError as AcmeError  # re-exported
from apiclub.tls.acme_basics import directory_id as directory_id  # re-exported
from apiclub.tls.certified import CertifiedKey
from apiclub.tls.challenges import ChallengeStore
from apiclub.tls.local_ca import san_entries
from apiclub.tls.storage import Storage

logger = logging.getLogger("apiclub.tls.acme")

ORDER_TIMEOUT = timedelta(seconds=90)
FIRST_POLL = 0.25
NETWORK_TIMEOUT_SECONDS = 30
USER_AGENT = "apiclub (acme-python)"
# Problem types that are not ACME's own (RFC 8555 6.7 lists those under this prefix).
CONNECTION_PROBLEM = "apiclub:connection"
CLIENT_PROBLEM = "apiclub:client"
HTTP_PROBLEM = "apiclub:http"


class _Network(client.ClientNetwork):
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


class AcmeClient:
    """A registered ACME account at one directory. Get one with `AcmeClient.connect`."""

    def __init__(
        self, acme: client.ClientV2, net: _Network, storage: Storage, prefix: str, email: str | None
    ) -> None:
        self._acme = acme
        self._net = net
        self._storage = storage
        self._prefix = prefix
        self._email = email
        self.poll_interval = POLL_INTERVAL

    @classmethod
    def connect(
        cls,
        storage: Storage,
        directory_url: str,
        *,
        email: str | None = None,
        ca_bundle: Path | None = None,
    ) -> AcmeClient:
        """Fetch the directory, load the stored account or register one (terms agreed).

        Raises:
            AcmeError: the directory cannot be fetched or the account cannot be registered.
            StorageError: the account cannot be stored.
        """
        prefix = f"acme/{directory_id(directory_url)}"
        with storage.lock(f"acme-account-{directory_id(directory_url)}"):
            key = _load_or_create_key(storage, f"{prefix}/account-key.pem")
            net = _Network(
                key=jwk.JWKEC(key=key),
                alg=jwa.ES256,
                user_agent=USER_AGENT,
                timeout=NETWORK_TIMEOUT_SECONDS,
            )
            if ca_bundle is not None:
                # requests takes a CA bundle path where `acme` declares a bool.
                net.verify_ssl = cast(bool, str(ca_bundle))
            try:
                directory = _call(
                    net,
                    f"fetching ACME directory {directory_url}",
                    lambda: client.ClientV2.get_directory(directory_url, net),
                )
                self = cls(client.ClientV2(directory, net), net, storage, prefix, email)
                self._load_or_register()
            except BaseException:
                net.session.close()
                raise
        return self

    def close(self) -> None:
        """Close the HTTP connections to the ACME server."""
        self._net.session.close()

    def obtain(
        self,
        names: Sequence[str],
        answers: ChallengeStore,
        cancel: threading.Event | None = None,
    ) -> CertifiedKey:
        """Order a certificate for `names` with a fresh key, answering HTTP-01 on port 80.

        Raises:
            AcmeError: the order, a challenge or the finalization failed.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        csr_pem = _csr(key, names)
        what = f"ordering a certificate for {', '.join(names)}"
        net = self._net
        try:
            order = _call(net, what, lambda: self._acme.new_order(csr_pem))
        except AcmeError as exc:
            if not exc.problem_type.endswith(":accountDoesNotExist"):
                raise
            logger.info("the ACME server forgot our account; registering again")
            self._register()
            order = _call(net, what, lambda: self._acme.new_order(csr_pem))
        deadline = time.monotonic() + ORDER_TIMEOUT.total_seconds()
        order = self._authorize(order, answers, deadline, cancel)
        # `acme` compares its deadline with naive local time.
        naive_deadline = datetime.now() + ORDER_TIMEOUT  # noqa: DTZ005
        done = _call(net, what, lambda: self._acme.finalize_order(order, naive_deadline))
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            return CertifiedKey.from_pem(done.fullchain_pem.encode("ascii"), key_pem)
        except (ValueError, TypeError) as exc:
            raise AcmeError(what, CLIENT_PROBLEM, f"unusable certificate: {exc}", None) from exc

    def _authorize(
        self,
        order: messages.OrderResource,
        answers: ChallengeStore,
        deadline: float,
        cancel: threading.Event | None,
    ) -> messages.OrderResource:
        """Answer each pending authorization's HTTP-01 challenge and poll until decided."""
        net = self._net
        decided = []
        tokens: list[str] = []
        try:
            for authz in order.authorizations:
                name = authz.body.identifier.value
                if authz.body.status == messages.STATUS_VALID:
                    decided.append(authz)  # reused from an earlier order (RFC 8555 7.1.4)
                    continue
                challenge = _http01(authz, name)
                response, validation = challenge.response_and_validation(net.key)
                token = challenge.chall.encode("token")
                answers.add(token, validation, name)
                tokens.append(token)
                what = f"answering the HTTP-01 challenge for {name}"
                _call(net, what, lambda c=challenge, r=response: self._acme.answer_challenge(c, r))
                decided.append(self._poll(authz, name, deadline, cancel))
        finally:
            for token in tokens:
                answers.remove(token)
        updated: messages.OrderResource = order.update(authorizations=decided)
        return updated

    def _poll(
        self,
        authz: messages.AuthorizationResource,
        name: str,
        deadline: float,
        cancel: threading.Event | None,
    ) -> messages.AuthorizationResource:
        net = self._net
        what = f"validating {name}"
        # Validation usually takes well under a second: look early, then back off to the
        # configured interval.
        backoff = min(FIRST_POLL, self.poll_interval.total_seconds())
        while True:
            authz, response = _call(net, what, lambda a=authz: self._acme.poll(a))
            status = authz.body.status
            if status == messages.STATUS_VALID:
                return authz
            if status != messages.STATUS_PENDING:
                problem = next((c.error for c in authz.body.challenges if c.error), None)
                if problem is None:
                    raise AcmeError(what, CLIENT_PROBLEM, f"authorization is {status}", None)
                raise AcmeError(what, str(problem.typ), str(problem.detail), None)
            # RFC 8555 7.5.1: poll no sooner than Retry-After says.
            wait = backoff
            backoff = min(backoff * 2, self.poll_interval.total_seconds())
            asked = retry_after_seconds(response.headers.get("Retry-After"), time.time())
            wait = max(wait, asked or 0.0)
            if time.monotonic() + wait > deadline:
                raise AcmeError(what, CLIENT_PROBLEM, "timed out waiting for validation", None)
            if cancel is not None and cancel.wait(wait):
                raise AcmeError(what, CLIENT_PROBLEM, "cancelled: shutting down", None)
            if cancel is None:
                time.sleep(wait)

    def _load_or_register(self) -> None:
        try:
            stored = self._storage.read(f"{self._prefix}/account.json")
        except KeyError:
            self._register()
            return
        regr = messages.RegistrationResource.json_loads(stored)
        self._net.account = regr

    def _register(self) -> None:
        net = self._net
        net.account = None
        new = messages.NewRegistration.from_data(email=self._email, terms_of_service_agreed=True)
        try:
            regr = _call(net, "registering an ACME account", lambda: self._acme.new_account(new))
        except errors.ConflictError as exc:  # the key is registered already (RFC 8555 7.3.1)
            regr = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
            net.account = regr
        self._storage.write(
            f"{self._prefix}/account.json", regr.json_dumps().encode(), private=True
        )
        logger.info(
            "registered ACME account %s (contact %s; terms of service %s agreed)",
            regr.uri,
            self._email or "none",
            self._acme.directory.meta.terms_of_service or "(none published)",
        )


def _http01(authz: messages.AuthorizationResource, name: str) -> messages.ChallengeBody:
    for challenge in authz.body.challenges:
        if isinstance(challenge.chall, challenges.HTTP01):
            return challenge
    offered = ", ".join(str(c.chall.typ) for c in authz.body.challenges)
    raise AcmeError(
        f"validating {name}", CLIENT_PROBLEM, f"no http-01 challenge offered ({offered})", None
    )


def _call(net: _Network, what: str, action: Any) -> Any:
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


def _csr(key: ec.EllipticCurvePrivateKey, names: Sequence[str]) -> bytes:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName(san_entries(names)), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def _load_or_create_key(storage: Storage, key_name: str) -> ec.EllipticCurvePrivateKey:
    try:
        pem = storage.read(key_name)
    except KeyError:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        storage.write(key_name, pem, private=True)
        return key
    loaded = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise CertificateError(
            f"{storage.path(key_name)} is not an ECDSA key: delete it to register a new account"
        )
    return loaded
