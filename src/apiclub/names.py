"""Which names are local: a public CA could never certify them, and mostly none can reach them.

Two decisions share this notion, so they can never disagree on a name: which names get a
local-CA certificate instead of an ACME one (`is_local_name`, in `apiclub.tls`), and whether
`APICLUB_AUTH=auto` lets anyone write (`is_private_name`: only when every served name is local
and no IP among them is a global one). The two differ on global IP addresses alone: anyone on
the internet can reach them, and a public CA certifies them only on a short-lived profile
(`is_public_ip`, which the ACME side asks too). The module sits outside
`tls/` so that `settings` can ask it without importing the TLS layer; it needs the standard
library alone. `parse_host` is here for the same reason: the port-80 listener (`server/`) and
the CLI's HTTP-01 answerer (`tls/`) normalise a Host header the same way.
"""

from __future__ import annotations

import ipaddress

MAX_NAME_LENGTH = 253
"""Characters of a DNS name at most, dots included (RFC 1035 2.3.4's 255 octets on the wire)."""
# Reserved for local or testing use, never delegated in the public DNS: RFC 6761 6.2-6.5
# (test, localhost, invalid, example), RFC 6762 (local, mDNS), RFC 8375 (home.arpa), and
# ICANN's 2024 reservation of "internal" for private networks.
LOCAL_SUFFIXES = ("localhost", "test", "invalid", "example", "local", "home.arpa", "internal")


def is_local_name(name: str) -> bool:
    """Tell whether `name` can only be certified by the local CA.

    True for IP addresses, `localhost` and names under a reserved suffix, and single-label
    names (no public CA issues for those). Used to decide which names ACME may order, and
    whether `APICLUB_AUTH=auto` needs tokens.
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


def is_private_name(name: str) -> bool:
    """Tell whether only this machine or a private network can reach `name`.

    A local name (`is_local_name`) that is not a global IP address: `localhost`, `127.0.0.1`,
    `10.0.0.5`, `db.internal` are private; `93.184.215.14` (global on the internet) and
    `api.example.com` are not. Decides `APICLUB_AUTH=auto`.
    """
    return is_local_name(name) and not is_public_ip(name)


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


def parse_host(value: str) -> str | None:
    """Return the host part of a Host header, normalised like configured names, or None if bad.

    Handles `name`, `name:port`, `[v6]`, `[v6]:port`, upper case and a trailing dot.
    """
    value = value.strip()
    if not value:
        return None
    if value.startswith("["):
        end = value.find("]")
        if end == -1 or (value[end + 1 :] and not _is_port_suffix(value[end + 1 :])):
            return None
        try:
            return str(ipaddress.IPv6Address(value[1:end]))
        except ValueError:
            return None
    host, sep, port = value.rpartition(":")
    if not sep:
        host = value
    elif not port.isdigit():
        return None
    host = host.rstrip(".").lower()
    if len(host) > MAX_NAME_LENGTH:
        return None
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    if not host or any(not (ch.isalnum() or ch in "-.") for ch in host) or not host.isascii():
        return None
    return host


def _is_port_suffix(text: str) -> bool:
    return text.startswith(":") and text[1:].isdigit()
