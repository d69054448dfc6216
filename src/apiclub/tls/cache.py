"""The certificates in service, published together to the SNI map and to `certs/live/`.

Modelled on certmagic's `Cache`: one place holds what each name is served right now (the
default leaf, each ACME name's certificate or stand-in); whoever changes one publishes, and
the handshake-time choice (`CertMap`) and the files a proxy reads (`tls.live`) follow.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509

from apiclub.names import is_ip_address
from apiclub.tls.certified import CertifiedKey
from apiclub.tls.context import CertMap
from apiclub.tls.live import write_live
from apiclub.tls.managed import ManagedCert
from apiclub.tls.storage import Storage

logger = logging.getLogger("apiclub.tls")


class CertCache:
    """The default certificate (`local`) and one `ManagedCert` per ACME name (`managed`).

    Nothing is served before the first `publish`; after it, `server_context` picks the
    certificate per handshake from the live map, which each later `publish` replaces.
    """

    def __init__(self, storage: Storage, domains: Sequence[str]) -> None:
        self.storage = storage
        self.domains = domains
        self.local: CertifiedKey | None = None
        self.managed: dict[str, ManagedCert] = {}
        self._map: CertMap | None = None
        self._context: ssl.SSLContext | None = None
        self._publishing = threading.Lock()

    @property
    def published(self) -> bool:
        """Tell whether `publish` ran: the certificates are in service."""
        return self._map is not None

    def server_context(self) -> ssl.SSLContext:
        """The listener's context; it picks the certificate per handshake from the live map."""
        if self._context is None:
            self._context = self._cert_map().server_context()
        return self._context

    def current_certificate(self) -> x509.Certificate:
        """The leaf served by default (no SNI, or an unknown name) right now."""
        return self._cert_map().default.leaf

    def certificate_for(self, name: str) -> CertifiedKey:
        """The certificate a handshake naming `name` gets right now."""
        managed = self.managed.get(name)
        if managed is not None and managed.current is not None:
            return managed.current
        return self._cert_map().default

    def served(self) -> list[CertifiedKey]:
        """Every certificate in service, the default one first."""
        served = [self.local] if self.local is not None else []
        served += [m.current for m in self.managed.values() if m.current is not None]
        return served

    def publish(self) -> None:
        """Install the current certificates in the SNI map. Clients never send an IP address
        by SNI (RFC 6066 3), so the default is what IP names need: a public IP's ACME
        certificate if there is one, else the local leaf (it covers the local IPs), else the
        first ACME name's."""
        with self._publishing:
            served = self.served()
            by_ip = [
                m.current
                for name, m in self.managed.items()
                if is_ip_address(name) and m.current is not None and not m.is_standin
            ]
            default = by_ip[0] if by_ip else served[0]
            others = [c for c in served if c is not default]
            if self._map is None:
                self._map = CertMap(default, others)
            else:
                self._map.replace(default, others)
            self._write_live()

    def repair_live(self) -> None:
        """Put back live files changed or removed behind our back (see `tls.live`)."""
        with self._publishing:
            for path in self._write_live():
                logger.warning(
                    "%s did not hold the certificate served for its name (overwritten or "
                    "deleted); rewrote it from the one in memory",
                    path,
                )

    def _write_live(self) -> list[Path]:
        """Keep `certs/live/<name>/` holding what is served for each name, stand-ins included."""
        assert self._map is not None  # noqa: S101
        served = {name: self.certificate_for(name) for name in self.domains}
        return write_live(self.storage, served)

    def _cert_map(self) -> CertMap:
        if self._map is None:
            raise RuntimeError("CertManager.prepare() must run before serving")
        return self._map
