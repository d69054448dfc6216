"""The compat layer for certbot's `acme` package: what it lacks, added from outside.

`acme` 5.x sends new orders without RFC 9773's `replaces` field (section 5), which tells the
CA which certificate an order renews: Let's Encrypt exempts such renewals from its rate limits
and counts the old certificate as replaced. `new_order` here is `ClientV2.new_order` with that
field added to the `NewOrder` body. It uses only `ClientV2`'s documented members plus
`_post` and `_authzr_from_response`, the two helpers its own `new_order` calls; `check()`
verifies those still exist and that `NewOrder` still lacks the field (if a later `acme` adds it,
this patch should go: `check()` then says so).
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from typing import Any

from acme import client, crypto_util, messages
from cryptography import x509
from josepy import json_util

logger = logging.getLogger("apiclub.tls.acme")

TESTED_VERSIONS = ("5.",)
"""`acme` major versions whose `new_order` this mirrors."""


class NewOrderWithReplaces(messages.NewOrder):
    """`NewOrder` plus RFC 9773's `replaces`: the ARI id of the certificate being renewed."""

    replaces: str = json_util.field("replaces", omitempty=True)


def check() -> None:
    """Fail loudly if `acme` changed under the patch (a test calls this).

    Raises:
        RuntimeError: an untested `acme` version, a helper gone, or `replaces` now upstream.
    """
    version = importlib.metadata.version("acme")
    if not version.startswith(TESTED_VERSIONS):
        raise RuntimeError(f"acme {version} is untested with apiclub.compat.acme_orders")
    for helper in ("_post", "_authzr_from_response"):
        if not hasattr(client.ClientV2, helper):
            raise RuntimeError(
                f"acme {version}: ClientV2.{helper} is gone; update compat/acme_orders.py"
            )
    if "replaces" in messages.NewOrder._fields:
        raise RuntimeError(f"acme {version} has NewOrder.replaces: drop compat/acme_orders.py")


@functools.cache
def _checked_once() -> None:
    """At the first order: an `acme` the patch was not made for is worth one warning; the
    order itself still goes out (a server must not stop renewing over it)."""
    try:
        check()
    except RuntimeError as exc:
        logger.warning("%s (tests/compat/test_acme_orders.py fails too)", exc)


def new_order(
    acme: client.ClientV2,
    csr_pem: bytes,
    *,
    profile: str | None = None,
    replaces: str | None = None,
) -> messages.OrderResource:
    """`acme.new_order(csr_pem, profile)` that also sends `replaces` (RFC 9773 5) when given."""
    _checked_once()
    csr = x509.load_pem_x509_csr(csr_pem)
    dns_names, ip_addrs = crypto_util.get_identifiers_from_x509(csr.subject, csr.extensions)
    identifiers = [messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=n) for n in dns_names]
    identifiers += [messages.Identifier(typ=messages.IDENTIFIER_IP, value=str(i)) for i in ip_addrs]
    fields: dict[str, Any] = {"identifiers": identifiers, "profile": profile or ""}
    if replaces:
        fields["replaces"] = replaces
    order = NewOrderWithReplaces(**fields)
    response = acme._post(acme.directory["newOrder"], order)
    body = messages.Order.from_json(response.json())
    authorizations = [
        acme._authzr_from_response(acme._post_as_get(url), uri=url) for url in body.authorizations
    ]
    return messages.OrderResource(
        body=body,
        uri=response.headers.get("Location"),
        authorizations=authorizations,
        csr_pem=csr_pem,
    )
