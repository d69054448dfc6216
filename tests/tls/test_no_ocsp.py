"""OCSP is gone from Let's Encrypt (2025): no Must-Staple request, no stapling, no OCSP code."""

from __future__ import annotations

import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

import apiclub
from apiclub.tls.acme_client import _csr

SRC = Path(apiclub.__file__).parent


def test_our_csrs_ask_for_no_must_staple() -> None:
    csr = x509.load_pem_x509_csr(_csr(ec.generate_private_key(ec.SECP256R1()), ["a.example"]))
    assert [e.oid for e in csr.extensions] == [x509.oid.ExtensionOID.SUBJECT_ALTERNATIVE_NAME]
    # Must-Staple is the TLS Feature extension (RFC 7633); Let's Encrypt now refuses it.
    assert x509.oid.ExtensionOID.TLS_FEATURE not in [e.oid for e in csr.extensions]


def test_no_ocsp_or_must_staple_code_path_remains() -> None:
    pattern = re.compile(r"ocsp|staple|stapling|tls_feature|TLSFeature", re.IGNORECASE)
    hits = [
        f"{path.relative_to(SRC)}:{number}"
        for path in SRC.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []
