"""Certificate sources behind one small interface: the local CA and an ACME server.

The manager asks an `Issuer` for a certificate and stores what it gets under the issuer's
`id`; it never cares whether a local root signed it or Let's Encrypt did (certmagic's Issuer).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from apiclub.tls.acme_basics import POLL_INTERVAL, directory_id
from apiclub.tls.certified import CertifiedKey
from apiclub.tls.challenges import ChallengeLookup, ChallengeStore
from apiclub.tls.local_ca import LocalCA
from apiclub.tls.storage import Storage

if TYPE_CHECKING:
    from apiclub.tls.acme_client import AcmeClient
    from apiclub.tls.ari import RenewalInfo

Http01Listener = Callable[[ChallengeLookup], contextlib.AbstractContextManager[object]]
"""Answers HTTP-01 on port 80 for the duration of one order (the CLI's stand-alone responder)."""


class Issuer(Protocol):
    """Issues certificates. Contract: `issue` blocks until it returns a certificate covering
    every name with a key never used before, or raises `CertificateError` (`AcmeError` for
    ACME); setting `cancel` makes it give up early. It may be called from any thread.
    """

    @property
    def id(self) -> str:
        """Names the folder under `certs/` where this issuer's certificates are stored."""
        ...

    def issue(
        self,
        names: Sequence[str],
        cancel: threading.Event | None = None,
        replaces: CertifiedKey | None = None,
    ) -> CertifiedKey:
        """A new certificate for `names`; `replaces` is the one it renews, if any."""
        ...

    def renewal_info(self, certified: CertifiedKey) -> RenewalInfo | None:
        """The CA's renewal window for `certified` (RFC 9773), or None if it has no ARI."""
        ...


class LocalIssuer:
    """Certificates from the local CA: instant, trusted only where its root is installed."""

    def __init__(self, ca: LocalCA, lifetime: timedelta) -> None:
        self.ca = ca
        self.lifetime = lifetime

    @property
    def id(self) -> str:
        """Local certificates live under `certs/local`."""
        return "local"

    def issue(
        self,
        names: Sequence[str],
        cancel: threading.Event | None = None,
        replaces: CertifiedKey | None = None,
    ) -> CertifiedKey:
        """Sign a new leaf at once (`cancel` and `replaces` are moot)."""
        return self.ca.issue_cert(names, self.lifetime)

    def renewal_info(self, certified: CertifiedKey) -> RenewalInfo | None:
        """The local CA has no ARI: its leaves renew by their lifetime."""
        return None


class AcmeIssuer:
    """Certificates from an ACME server; connects (and registers) on first use.

    One order at a time per process: the `acme` client's nonces and session are not meant
    for concurrent use. After a failure the next call reconnects from scratch. A server
    answers challenges on its own port-80 listener; without one, `listener` opens one for
    each order (so two CLI processes take turns with the port under the store's lock).
    """

    def __init__(
        self,
        storage: Storage,
        answers: ChallengeStore,
        *,
        directory: str,
        email: str | None = None,
        ca_bundle: Path | None = None,
        poll_interval: timedelta = POLL_INTERVAL,
        listener: Http01Listener | None = None,
        profile: str | None = None,
        eab: tuple[str, str] | None = None,
    ) -> None:
        self.storage = storage
        self.profile = profile
        self._eab = eab  # a secret: never in a log line or a repr
        self.answers = answers
        self.directory = directory
        self.email = email
        self.ca_bundle = ca_bundle
        self.poll_interval = poll_interval
        self.listener = listener
        self._client: AcmeClient | None = None
        self._guard = threading.Lock()

    @property
    def id(self) -> str:
        """`certs/<directory id>`: staging and production certificates never mix."""
        return directory_id(self.directory)

    def __repr__(self) -> str:
        eab = "set" if self._eab else "none"
        return f"AcmeIssuer(directory={self.directory!r}, profile={self.profile!r}, eab={eab})"

    def issue(
        self,
        names: Sequence[str],
        cancel: threading.Event | None = None,
        replaces: CertifiedKey | None = None,
    ) -> CertifiedKey:
        """Order, validate over HTTP-01 and finalize a certificate for `names`; name the
        certificate it `replaces` (RFC 9773 5), which the caller knows came from this CA.

        Raises:
            AcmeError: with the server's problem type, detail and Retry-After.
            StorageError: the account cannot be stored.
        """
        from apiclub.tls.ari import ari_cert_id

        replaced = None
        if replaces is not None:
            with contextlib.suppress(ValueError):  # no authority key id: order without it
                replaced = ari_cert_id(replaces.leaf)
        with self._guard:
            try:
                acme = self._connected()
                if self.listener is None:
                    return acme.obtain(names, self.answers, cancel, replaced)
                with self.listener(self.answers):
                    return acme.obtain(names, self.answers, cancel, replaced)
            except BaseException:
                self._close()
                raise

    def renewal_info(self, certified: CertifiedKey) -> RenewalInfo | None:
        """The CA's renewal window for `certified` (ARI), or None if the CA offers none.

        Raises:
            AcmeError: the CA cannot be reached or its answer read.
        """
        with self._guard:
            try:
                return self._connected().renewal_info(certified.leaf)
            except BaseException:
                self._close()
                raise

    def profiles(self) -> dict[str, str]:
        """The profiles the CA offers (connecting first).

        Raises:
            AcmeError: the CA cannot be reached.
        """
        with self._guard:
            try:
                return self._connected().profiles
            except BaseException:
                self._close()
                raise

    def _connected(self) -> AcmeClient:
        if self._client is None:
            # Imported at the first use: `acme` is slow to import (`acme_basics`).
            from apiclub.tls.acme_client import AcmeClient

            self._client = AcmeClient.connect(
                self.storage,
                self.directory,
                email=self.email,
                ca_bundle=self.ca_bundle,
                eab=self._eab,
            )
            self._client.poll_interval = self.poll_interval
            self._client.profile = self.profile
        return self._client

    def close(self) -> None:
        """Drop the connection to the ACME server."""
        with self._guard:
            self._close()

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
