"""Certificates for the HTTPS listener: a local CA, ACME, operator files, SNI choice, renewal.

Cheat sheet (the whole public surface)::

    from apiclub.tls import CertManager, root_cert_path, trust_root

    manager = CertManager(settings)          # ACME for public names (auto/acme), local CA for
                                             # local ones (auto/internal), or files (files)
    manager.prepare()                        # at start-up, no network; raises CertificateError
    ctx = manager.server_context()           # ssl.SSLContext: TLS 1.2+, ALPN h2, SNI map
    RedirectApp(..., manager.challenges)     # port 80 answers /.well-known/acme-challenge/
    task = asyncio.create_task(manager.maintain(stop_event))   # obtains, renews, never raises
    manager.renew(force=True)                # new local leaf now; next handshake serves it
    manager.renew_acme(force=True)           # `apiclub certs renew`: blocking, raises AcmeError
    manager.issue(["api.example.com"])       # `apiclub certs issue`: one CertifiedKey
    list_stored(settings.data_dir)           # `apiclub certs list`

    root = root_cert_path(settings)          # data/ca/root.pem, created on first use
    for result in trust_root(root, root_key_path(settings)):   # system store (as root), NSS
        print(result.line())                 # ... databases; untrust_root(root) undoes it

    ca = LocalCA.load_or_create(FileStorage(data_dir))
    leaf = ca.issue_cert(["localhost", "127.0.0.1"])   # CertifiedKey: chain_pem, key_pem, leaf
    client = ssl.create_default_context(cafile=ca.root_cert_path)

Modules, one concept each (certmagic's split)::

    manager        CertManager: which source serves which name; the facade server and CLI call
    cache          the certificates in service, published to the SNI map and certs/live/
    maintenance    the background loop: renew, retry, adopt what another process stored
    context        server contexts and the handshake-time choice by SNI (CertMap)
    source         LeafSource: where the default certificate (local names, IPs) comes from
    local_source   ... the local CA's leaf, kept under certs/local/
    file_source    ... the operator's files, reloaded when they change (files: their checks)
    managed        one ACME name's certificate: stand-in, first order, renewal, backoff
    issuers        Issuer: the local CA (local_ca) or an ACME server (acme_client)
    challenges     HTTP-01 tokens in flight; challenge_answer: the one HTTP-01 responder
                   every listener calls; http01: the CLI's listener around it
    storage        Storage and FileStorage; certstore: obtained certificates; live: certs/live/
    certified      CertifiedKey
    trust          `ca trust`/`untrust`: trust_system (OS stores), trust_nss (browsers)

This package imports only the standard library, cryptography, the `acme` client (with josepy)
and apiclub.settings/errors/names: nothing of Litestar or Hypercorn. `is_local_name` lives in
`apiclub.names` (the API's `APICLUB_AUTH=auto` asks it too) and is re-exported here.
"""

from __future__ import annotations

from apiclub.names import is_local_name
from apiclub.tls.acme_basics import AcmeError
from apiclub.tls.certified import CertifiedKey
from apiclub.tls.certstore import list_stored
from apiclub.tls.challenges import ChallengeStore
from apiclub.tls.context import CertMap, create_server_context
from apiclub.tls.local_ca import LocalCA
from apiclub.tls.manager import CertManager, root_cert_path, root_key_path
from apiclub.tls.storage import FileStorage, Storage
from apiclub.tls.trust import trust_root, untrust_root
from apiclub.tls.trust_result import StoreResult

__all__ = [
    "AcmeError",
    "CertManager",
    "CertMap",
    "CertifiedKey",
    "ChallengeStore",
    "FileStorage",
    "LocalCA",
    "Storage",
    "StoreResult",
    "create_server_context",
    "is_local_name",
    "list_stored",
    "root_cert_path",
    "root_key_path",
    "trust_root",
    "untrust_root",
]
