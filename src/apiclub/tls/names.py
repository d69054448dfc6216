"""Which names a public CA could never certify, so only the local CA can serve them."""

from __future__ import annotations

import ipaddress

# Reserved for local or testing use, never delegated in the public DNS: RFC 6761 6.2-6.5
# (test, localhost, invalid, example), RFC 6762 (local, mDNS), RFC 8375 (home.arpa), and
# ICANN's 2024 reservation of "internal" for private networks.
LOCAL_SUFFIXES = ("localhost", "test", "invalid", "example", "local", "home.arpa", "internal")


def is_local_name(name: str) -> bool:
    """Tell whether `name` can only be certified by the local CA.

    True for IP addresses, `localhost` and names under a reserved suffix, and single-label
    names (no public CA issues for those). Used to decide which names ACME may order.
    """
    text = name.strip().strip("[]").rstrip(".").lower()
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return True
    if "." not in text:
        return True
    return any(text == suffix or text.endswith("." + suffix) for suffix in LOCAL_SUFFIXES)


def is_public_ip(name: str) -> bool:
    """Tell whether `name` is a globally routable IP address, which a public CA can certify
    (Let's Encrypt does, on its `shortlived` profile); private and loopback ones it cannot."""
    try:
        return ipaddress.ip_address(name.strip().strip("[]")).is_global
    except ValueError:
        return False


def is_ip_address(name: str) -> bool:
    """Tell whether `name` is an IP address (clients never send those by SNI, RFC 6066 3)."""
    try:
        ipaddress.ip_address(name.strip().strip("[]"))
    except ValueError:
        return False
    return True
