"""An ACME (RFC 8555) client on certbot's `acme` package: account, order, HTTP-01, finalize.

Every call blocks (the `acme` package uses `requests`); the certificate manager runs them in
a thread. The account key and registration live in the data directory, per ACME directory::

    acme/<directory-id>/account-key.pem    ECDSA P-256, 0600
    acme/<directory-id>/account.json       the registration (account URL, contact), 0600

Every failure is an `AcmeError` carrying the server's problem type and detail (RFC 8555 6.7)
and, when the server asked for one, how long to wait (`Retry-After`, RFC 8555 6.6).
Renewal info (ARI, RFC 9773) is fetched here and judged in `tls.ari`; orders name a profile
and the certificate they replace through `compat.acme_orders`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

from acme import challenges, client, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from josepy import jwa, jwk

from apiclub.compat.acme_orders import new_order
from apiclub.errors import CertificateError
from apiclub.names import is_ip_address
from apiclub.tls import keys
from apiclub.tls.acme_basics import POLL_INTERVAL as POLL_INTERVAL  # re-exported
from apiclub.tls.acme_basics import AcmeError as AcmeError  # re-exported
from apiclub.tls.acme_basics import directory_id as directory_id  # re-exported
from apiclub.tls.acme_calls import CLIENT_PROBLEM, Network, call, with_eab_hint
from apiclub.tls.acme_calls import HTTP_PROBLEM as HTTP_PROBLEM  # re-exported
from apiclub.tls.acme_calls import retry_after_seconds as retry_after_seconds  # re-exported
from apiclub.tls.ari import RenewalInfo, ari_cert_id
from apiclub.tls.certified import CertifiedKey
from apiclub.tls.challenges import ChallengeStore
from apiclub.tls.local_ca import san_entries
from apiclub.tls.pem import private_key_pem
from apiclub.tls.storage import Storage

logger = logging.getLogger("apiclub.tls.acme")

ORDER_TIMEOUT = timedelta(seconds=90)
FIRST_POLL = 0.25
NETWORK_TIMEOUT_SECONDS = 30
USER_AGENT = "apiclub (acme-python)"
ALREADY_REPLACED = "urn:ietf:params:acme:error:alreadyReplaced"
SHORTLIVED = "shortlived"
"""The profile an IP-address certificate needs at Let's Encrypt (and pebble)."""


class AcmeClient:
    """A registered ACME account at one directory. Get one with `AcmeClient.connect`."""

    def __init__(
        self,
        acme: client.ClientV2,
        net: Network,
        storage: Storage,
        directory_url: str,
        email: str | None,
    ) -> None:
        self._acme = acme
        self._net = net
        self._storage = storage
        self._directory_url = directory_url
        self._email = email
        self.poll_interval = POLL_INTERVAL
        self.profile: str | None = None
        """The profile every order names (APICLUB_ACME_PROFILE), or None: the CA's default."""
        self.eab: tuple[str, str] | None = None
        """External Account Binding (key id, base64url HMAC key), used when registering."""

    @property
    def profiles(self) -> dict[str, str]:
        """The profiles the directory offers, name to description (empty: none)."""
        offered = self._acme.directory.meta.profiles
        return dict(offered) if offered else {}

    @property
    def has_ari(self) -> bool:
        """Tell whether the directory offers renewal info (RFC 9773 3)."""
        return "renewalInfo" in self._acme.directory.to_partial_json()

    def renewal_info(self, leaf: x509.Certificate) -> RenewalInfo | None:
        """The CA's suggested renewal window for `leaf`, or None if it offers no ARI.

        Raises:
            AcmeError: the answer cannot be fetched or read.
        """
        if not self.has_ari:
            return None
        try:
            cert_id = ari_cert_id(leaf)
        except ValueError as exc:
            raise AcmeError("fetching renewal info", CLIENT_PROBLEM, str(exc), None) from exc
        url = f"{self._acme.directory['renewalInfo']}/{cert_id}"
        what = f"fetching renewal info {url}"
        response = call(self._net, what, lambda: self._net.get(url))
        try:
            body = json.loads(response.content)
            window = body["suggestedWindow"]
            start, end = (_rfc3339(window[k]) for k in ("start", "end"))
        except (ValueError, KeyError, TypeError) as exc:
            raise AcmeError(what, CLIENT_PROBLEM, f"unreadable answer: {exc}", None) from exc
        explanation = body.get("explanationURL")
        return RenewalInfo(
            start=start,
            end=end,
            explanation_url=str(explanation) if explanation else None,
            retry_after=retry_after_seconds(response.headers.get("Retry-After"), time.time()),
        )

    @classmethod
    def connect(
        cls,
        storage: Storage,
        directory_url: str,
        *,
        email: str | None = None,
        ca_bundle: Path | None = None,
        eab: tuple[str, str] | None = None,
    ) -> AcmeClient:
        """Fetch the directory. The account is loaded, or registered (terms agreed, bound to
        `eab`'s key id and HMAC key when given: once, then stored), at the first order:
        renewal info and profiles need none.

        Raises:
            AcmeError: the directory cannot be fetched or the account cannot be registered.
            StorageError: the account cannot be stored.
        """
        with storage.lock(keys.account_lock(directory_url)):
            key = _load_or_create_key(storage, keys.account_key(directory_url))
            net = Network(
                key=jwk.JWKEC(key=key),
                alg=jwa.ES256,
                user_agent=USER_AGENT,
                timeout=NETWORK_TIMEOUT_SECONDS,
            )
            if ca_bundle is not None:
                # requests takes a CA bundle path where `acme` declares a bool.
                net.verify_ssl = cast(bool, str(ca_bundle))
            try:
                directory = call(
                    net,
                    f"fetching ACME directory {directory_url}",
                    lambda: client.ClientV2.get_directory(directory_url, net),
                )
                self = cls(client.ClientV2(directory, net), net, storage, directory_url, email)
                self.eab = eab
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
        replaces: str | None = None,
    ) -> CertifiedKey:
        """Order a certificate for `names` with a fresh key, answering HTTP-01 on port 80.

        `replaces` is the ARI id of the certificate this renews (RFC 9773 5); a CA that says
        it is already replaced gets the order again without it.

        Raises:
            AcmeError: the order, a challenge or the finalization failed.
        """
        if self._net.account is None:
            with self._storage.lock(keys.account_lock(self._directory_url)):
                self._load_or_register()
        key = ec.generate_private_key(ec.SECP256R1())
        csr_pem = _csr(key, names)
        what = f"ordering a certificate for {', '.join(names)}"
        profile = self._profile_for(names, what)
        net = self._net

        def order_once() -> messages.OrderResource:
            return new_order(self._acme, csr_pem, profile=profile, replaces=replaces)

        try:
            order = call(net, what, order_once)
        except AcmeError as exc:
            if exc.problem_type == ALREADY_REPLACED and replaces:
                logger.info("%s: the CA says %s is already replaced; ordering anew", what, replaces)
                replaces = None
            elif exc.problem_type.endswith(":accountDoesNotExist"):
                logger.info("the ACME server forgot our account; registering again")
                self._register()
            else:
                raise
            order = call(net, what, order_once)
        deadline = time.monotonic() + ORDER_TIMEOUT.total_seconds()
        order = self._authorize(order, answers, deadline, cancel)
        # `acme` compares its deadline with naive local time.
        naive_deadline = datetime.now() + ORDER_TIMEOUT  # noqa: DTZ005
        done = call(net, what, lambda: self._acme.finalize_order(order, naive_deadline))
        key_pem = private_key_pem(key)
        try:
            return CertifiedKey.from_pem(done.fullchain_pem.encode("ascii"), key_pem)
        except (ValueError, TypeError) as exc:
            raise AcmeError(what, CLIENT_PROBLEM, f"unusable certificate: {exc}", None) from exc

    def _profile_for(self, names: Sequence[str], what: str) -> str | None:
        """The configured profile; for IP addresses `shortlived`, the only one LE allows."""
        if self.profile is not None or not any(is_ip_address(name) for name in names):
            return self.profile
        if SHORTLIVED not in self.profiles:
            offered = ", ".join(self.profiles) or "none"
            raise AcmeError(
                what,
                CLIENT_PROBLEM,
                f"an IP-address certificate needs the {SHORTLIVED!r} profile, which this CA "
                f"does not offer (profiles: {offered}): use a DNS name, or another CA",
                None,
            )
        return SHORTLIVED

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
                call(net, what, lambda c=challenge, r=response: self._acme.answer_challenge(c, r))
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
            authz, response = call(net, what, lambda a=authz: self._acme.poll(a))
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
            stored = self._storage.read(keys.account_meta(self._directory_url))
        except KeyError:
            self._register()
            return
        regr = messages.RegistrationResource.json_loads(stored)
        self._net.account = regr

    def _register(self) -> None:
        net = self._net
        net.account = None
        binding = None
        # RFC 8555 7.3.4: the CA knows us by this key id. Only for a CA that asks for it
        # (meta.externalAccountRequired): with several CAs the key is the one that needs it.
        if self.eab is not None and self._acme.directory.meta.external_account_required:
            assert net.key is not None  # noqa: S101 - connect() always gives one
            binding = messages.ExternalAccountBinding.from_data(
                account_public_key=net.key.public_key(),
                kid=self.eab[0],
                hmac_key=self.eab[1],
                directory=self._acme.directory,
            )
        new = messages.NewRegistration.from_data(
            email=self._email, terms_of_service_agreed=True, external_account_binding=binding
        )
        try:
            regr = call(net, "registering an ACME account", lambda: self._acme.new_account(new))
        except AcmeError as exc:
            raise with_eab_hint(exc, binding is not None) from exc
        except errors.ConflictError as exc:  # the key is registered already (RFC 8555 7.3.1)
            regr = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
            net.account = regr
        self._storage.write(
            keys.account_meta(self._directory_url), regr.json_dumps().encode(), private=True
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


def _rfc3339(value: str) -> datetime:
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


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
        pem = private_key_pem(key)
        storage.write(key_name, pem, private=True)
        return key
    loaded = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise CertificateError(
            f"{storage.path(key_name)} is not an ECDSA key: delete it to register a new account"
        )
    return loaded
