"""TLS server contexts and the per-connection certificate choice by SNI.

Each certificate gets its own `ssl.SSLContext`; the listening context's `sni_callback` swaps
the connection over to the matching one during the handshake. `CertMap.replace` installs a new
map with one attribute assignment, so a renewed certificate is served from the next handshake
on, without a restart, while open connections keep their session.
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from apiclub.errors import CertificateError
from apiclub.observe import emit
from apiclub.tls.certified import CertifiedKey

# RFC 7540 9.2: HTTP/2 needs TLS 1.2 or later, no compression, no renegotiation, and AEAD
# ephemeral-key cipher suites (9.2.2); this is Hypercorn's default cipher string. TLS 1.3
# suites are configured separately by OpenSSL and are all acceptable.
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20"
# RFC 7301 ALPN, most preferred first.
ALPN_PROTOCOLS = ("h2", "http/1.1")


def create_server_context(certified: CertifiedKey | None = None) -> ssl.SSLContext:
    """Build a server context with apiclub's TLS settings, loading `certified` if given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.set_ciphers(CIPHERS)
    context.set_alpn_protocols(list(ALPN_PROTOCOLS))
    if certified is not None:
        load_certified(context, certified)
    return context


def load_certified(context: ssl.SSLContext, certified: CertifiedKey) -> None:
    """Load a chain and key held in memory into `context`.

    `load_cert_chain` only reads files, so they go to a private temporary directory (0700,
    created by `mkdtemp`) that is removed at once.

    Raises:
        CertificateError: OpenSSL refuses the chain or key.
    """
    with tempfile.TemporaryDirectory(prefix="apiclub-tls-") as tmp:
        chain, key = Path(tmp) / "chain.pem", Path(tmp) / "key.pem"
        chain.write_bytes(certified.chain_pem)
        key.write_bytes(certified.key_pem)
        try:
            context.load_cert_chain(chain, key)
        except ssl.SSLError as exc:
            raise CertificateError(
                f"loading certificate for {', '.join(certified.names)}: OpenSSL refused it ({exc})"
            ) from exc


@dataclass(frozen=True)
class _Snapshot:
    default: ssl.SSLContext
    by_name: Mapping[str, ssl.SSLContext]
    leaves: tuple[CertifiedKey, ...]


class CertMap:
    """Server names to certificates, chosen per handshake and replaced atomically.

    The default certificate answers handshakes without SNI (clients never send SNI for IP
    addresses, RFC 6066 3) or with a name no other certificate covers, so it should be the
    one that covers the configured IPs.
    """

    def __init__(self, default: CertifiedKey, others: Iterable[CertifiedKey] = ()) -> None:
        self._snapshot = _build(default, others)

    def replace(self, default: CertifiedKey, others: Iterable[CertifiedKey] = ()) -> None:
        """Swap in a new set of certificates; the next handshake uses it.

        All contexts are built first, then published by one attribute assignment, so a
        handshake sees either the old map or the new one, never a mix.
        """
        self._snapshot = _build(default, others)

    @property
    def default(self) -> CertifiedKey:
        """The certificate served without SNI."""
        return self._snapshot.leaves[0]

    def context_for(self, server_name: str | None) -> ssl.SSLContext:
        """The context for `server_name`: exact name, then a `*.parent` wildcard, then default."""
        snapshot = self._snapshot
        if server_name:
            name = server_name.rstrip(".").lower()
            if (context := snapshot.by_name.get(name)) is not None:
                return context
            if "." in name:
                wildcard = "*." + name.split(".", 1)[1]
                if (context := snapshot.by_name.get(wildcard)) is not None:
                    return context
        return snapshot.default

    def sni_callback(
        self, sslobj: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext
    ) -> None:
        """Point the connection at the matching context (`SSLContext.sni_callback`)."""
        emit("tls.handshake")
        sslobj.context = self.context_for(server_name)

    def server_context(self) -> ssl.SSLContext:
        """A listening context: default certificate loaded, SNI choice through this map.

        OpenSSL calls the SNI callback even when the client sends no name, so after a
        `replace` a no-SNI handshake also gets the new default certificate.
        """
        context = create_server_context(self.default)
        context.sni_callback = self.sni_callback
        return context


def _build(default: CertifiedKey, others: Iterable[CertifiedKey]) -> _Snapshot:
    leaves = (default, *others)
    by_name: dict[str, ssl.SSLContext] = {}
    default_context = create_server_context(default)
    for certified in reversed(leaves):  # earlier certificates win a shared name
        context = default_context if certified is default else create_server_context(certified)
        for name in certified.names:
            by_name[name] = context
    return _Snapshot(default=default_context, by_name=by_name, leaves=leaves)
