"""The `acme` compat layer: `replaces` on new orders (RFC 9773 5), and the ARI certificate id."""

from __future__ import annotations

import datetime

import pytest
from acme import client, messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from apiclub.compat import acme_orders
from apiclub.tls.ari import ari_cert_id

IDENTIFIER = messages.Identifier(typ=messages.IDENTIFIER_FQDN, value="api.example.com")


def test_the_installed_acme_still_needs_the_patch() -> None:
    acme_orders.check()  # raises once acme adds `replaces` itself, or changes its helpers


def test_stock_acme_cannot_send_replaces_and_the_compat_order_does() -> None:
    with pytest.raises(TypeError):
        messages.NewOrder(identifiers=[IDENTIFIER], replaces="aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE")
    stock = messages.NewOrder(identifiers=[IDENTIFIER]).to_partial_json()
    assert "replaces" not in stock
    order = acme_orders.NewOrderWithReplaces(identifiers=[IDENTIFIER], replaces="abc.def")
    assert order.to_partial_json()["replaces"] == "abc.def"
    plain = acme_orders.NewOrderWithReplaces(identifiers=[IDENTIFIER]).to_partial_json()
    assert "replaces" not in plain  # omitted when not renewing


def cert(aki: bytes | None, serial: int) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if aki is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier(aki, None, None), critical=False
        )
    return builder.sign(key, hashes.SHA256())


def test_ari_id_matches_rfc_9773_s_example_and_acme_s_own() -> None:
    # RFC 9773 4.1: keyIdentifier 69:88:5B:..., serial 00:87:65:43:21.
    aki = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
    leaf = cert(aki, 0x87654321)
    assert ari_cert_id(leaf) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
    assert ari_cert_id(leaf) == client._renewal_info_path_component(leaf)
    small = cert(aki, 0x12)
    assert ari_cert_id(small).endswith(".Eg")  # no leading zero when the top bit is clear


def test_a_certificate_without_an_authority_key_id_has_no_ari_id() -> None:
    with pytest.raises(ValueError, match="no authority key identifier"):
        ari_cert_id(cert(None, 5))
