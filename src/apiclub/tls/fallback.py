"""Several ACME CAs in order (APICLUB_ACME_DIRECTORY="first,second"): when an order fails at
one, the next is tried, as Caddy falls back from Let's Encrypt to ZeroSSL.

Each CA keeps its own account (`acme/<directory-id>/`) and its own backoff: a CA that just
failed is skipped until its backoff ends, so a long outage at the first costs one quick
failure per retry round, not a wait. Renewal info and `replaces` go to the CA that issued the
certificate, known from the order or, after a restart, from whichever CA answers for it.
Certificates stay in the first CA's store folder, so adding a fallback moves nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from apiclub.backoff import Backoff
from apiclub.errors import CertificateError, StorageError
from apiclub.tls.acme_basics import AcmeError
from apiclub.tls.ari import RenewalInfo
from apiclub.tls.certified import CertifiedKey
from apiclub.tls.issuers import AcmeIssuer

logger = logging.getLogger("apiclub.tls.acme")


@dataclass
class _Route:
    issuer: AcmeIssuer
    backoff: Backoff


class FallbackIssuer:
    """An `Issuer` over several `AcmeIssuer`s, tried in order."""

    def __init__(self, issuers: Sequence[AcmeIssuer], backoffs: Sequence[Backoff]) -> None:
        if not issuers:
            raise ValueError("FallbackIssuer needs at least one issuer")
        self.routes = [_Route(i, b) for i, b in zip(issuers, backoffs, strict=True)]
        self._origin: dict[int, AcmeIssuer] = {}
        self._guard = threading.Lock()

    @property
    def id(self) -> str:
        """The first CA's id: certificates live in its store folder whichever CA issued them."""
        return self.routes[0].issuer.id

    @property
    def directory(self) -> str:
        """The first CA's directory (for messages)."""
        return self.routes[0].issuer.directory

    def origin(self, certified: CertifiedKey) -> str | None:
        """The directory of the CA that issued `certified`, if known."""
        with self._guard:
            issuer = self._origin.get(certified.leaf.serial_number)
        return issuer.directory if issuer is not None else None

    def issue(
        self,
        names: Sequence[str],
        cancel: threading.Event | None = None,
        replaces: CertifiedKey | None = None,
    ) -> CertifiedKey:
        """Order from the first CA whose backoff allows; on a failure, from the next.

        Raises:
            AcmeError, CertificateError, StorageError: every CA failed (the last one's error),
                or all are in backoff (the error says when the first may be tried again).
        """
        replaced_by = None
        if replaces is not None:
            with self._guard:
                replaced_by = self._origin.get(replaces.leaf.serial_number)
        failure: Exception | None = None
        for index, route in enumerate(self.routes):
            if not route.backoff.ready():
                continue
            if index > 0 and failure is not None:
                logger.warning(
                    "%s: trying the next ACME CA, %s, after %s failed: %s",
                    ", ".join(names),
                    route.issuer.directory,
                    self.routes[index - 1].issuer.directory,
                    failure,
                )
            try:
                # `replaces` names a certificate only the CA that issued it knows (RFC 9773 5).
                own = replaces if replaced_by is route.issuer else None
                certified = route.issuer.issue(names, cancel, own)
            except (CertificateError, StorageError) as exc:
                retry_after = exc.retry_after if isinstance(exc, AcmeError) else None
                route.backoff.fail(retry_after)
                failure = exc
                continue
            route.backoff.succeed()
            with self._guard:
                self._origin[certified.leaf.serial_number] = route.issuer
            return certified
        if failure is not None:
            raise failure
        wait = min(route.backoff.remaining() for route in self.routes)
        raise AcmeError(
            f"ordering a certificate for {', '.join(names)}",
            "apiclub:backoff",
            "every ACME CA failed recently; each is retried when its own backoff ends",
            wait,
        )

    def renewal_info(self, certified: CertifiedKey) -> RenewalInfo | None:
        """Ask the CA that issued `certified`; unknown after a restart: the first that answers.

        Raises:
            AcmeError: no CA could answer.
        """
        serial = certified.leaf.serial_number
        with self._guard:
            known = self._origin.get(serial)
        candidates = [known] if known is not None else [r.issuer for r in self.routes]
        failure: AcmeError | None = None
        for issuer in candidates:
            try:
                info = issuer.renewal_info(certified)
            except AcmeError as exc:
                failure = exc
                continue
            if known is None and info is not None:
                with self._guard:
                    self._origin[serial] = issuer
            return info
        if failure is not None:
            raise failure
        return None

    def profiles(self) -> dict[str, str]:
        """The first CA's profiles (the one checked at start)."""
        return self.routes[0].issuer.profiles()

    def close(self) -> None:
        """Drop every connection."""
        for route in self.routes:
            route.issuer.close()
