"""Every storage key and lock name of the TLS layer, built in one place (certmagic's `KeyBuilder`).

The layout under the data directory::

    ca/root.pem, ca/root-key.pem                   the local CA (key 0600)
    certs/local/fullchain.pem, privkey.pem         the local CA's leaf for the local names
    certs/<issuer>/<name>/fullchain.pem            an obtained certificate, leaf first
    certs/<issuer>/<name>/privkey.pem              its key, 0600
    certs/<issuer>/<name>/renewal.json             its renewal plan (ARI window, pause)
    certs/live/<name>/fullchain.pem, privkey.pem   what is served for `name` now (for nginx)
    acme/<directory>/account-key.pem, account.json one ACME account per directory URL
    acme/challenges/<token>                        an HTTP-01 token in flight
    locks/<name>.lock                              a cross-process lock

`<issuer>` is `local` or an ACME directory's id (`directory_id`), so staging and production
never mix. Names come from settings, already lower case and punycode; `safe` still refuses
whatever could leave its folder (`/`, `\\`, `..`, a leading dot, control characters) instead
of rewriting it into a name that might collide with another, and spells a wildcard
`wildcard_.example.com` as certmagic does, so no file name holds `*`. Every valid name maps
to itself otherwise: the layout of existing data directories stays as it is.
"""

from __future__ import annotations

import re

from apiclub.tls.acme_basics import directory_id

CA_DIR = "ca"
CERTS_DIR = "certs"
LIVE_DIR = f"{CERTS_DIR}/live"
LOCAL_DIR = f"{CERTS_DIR}/local"
ACME_DIR = "acme"
CHALLENGES_DIR = f"{ACME_DIR}/challenges"
LOCKS_DIR = "locks"

CHAIN_FILE = "fullchain.pem"
KEY_FILE = "privkey.pem"
META_FILE = "renewal.json"

ROOT_CERT = f"{CA_DIR}/root.pem"
ROOT_KEY = f"{CA_DIR}/root-key.pem"
LOCAL_CERT = f"{LOCAL_DIR}/{CHAIN_FILE}"
LOCAL_KEY = f"{LOCAL_DIR}/{KEY_FILE}"

CA_LOCK = "ca"
LOCAL_LOCK = "certs-local"

WILDCARD = "wildcard_"
"""What a leading `*` becomes in a key (certmagic's `KeyBuilder.Safe`)."""
# DNS names, IPv4 and IPv6 literals (':'), ACME ids, lock names and e-mail addresses ('@').
_SAFE = re.compile(r"^[a-z0-9_@:-][a-z0-9_@:.-]*$", re.IGNORECASE)
MAX_PART = 255
"""Bytes of one path component on Linux filesystems."""


def safe(part: str) -> str:
    """`part` as one path component: the same text for any valid name, else ValueError.

    Raises:
        ValueError: `part` is empty, too long, or holds a character that could make a key
            leave its folder (`/`, `\\`, `..`, a leading dot) or that no name has.
    """
    text = part.strip()
    if text.startswith("*."):
        text = WILDCARD + text[1:]
    if not text.isascii():
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"storage key part {part!r} is not a valid name") from None
    if not _SAFE.match(text) or ".." in text or len(text) > MAX_PART:
        raise ValueError(
            f"storage key part {part!r} could leave its folder or is no name: give a DNS "
            "name, an IP address or an identifier of letters, digits and '.-_@:'"
        )
    return text


def certs_prefix(issuer: str) -> str:
    """`certs/<issuer>`: where one issuer's certificates are kept."""
    return f"{CERTS_DIR}/{safe(issuer)}"


def site_prefix(issuer: str, domain: str) -> str:
    """`certs/<issuer>/<domain>`: the folder of one certificate."""
    return f"{certs_prefix(issuer)}/{safe(domain)}"


def site_cert(issuer: str, domain: str) -> str:
    """The chain (leaf first) `issuer` obtained for `domain`."""
    return f"{site_prefix(issuer, domain)}/{CHAIN_FILE}"


def site_private_key(issuer: str, domain: str) -> str:
    """The private key of `site_cert(issuer, domain)`, written 0600."""
    return f"{site_prefix(issuer, domain)}/{KEY_FILE}"


def site_meta(issuer: str, domain: str) -> str:
    """The renewal plan of `site_cert(issuer, domain)` (`renewal.json`)."""
    return f"{site_prefix(issuer, domain)}/{META_FILE}"


def live_cert(domain: str) -> str:
    """The chain served for `domain` now, for a proxy in front to read."""
    return f"{LIVE_DIR}/{safe(domain)}/{CHAIN_FILE}"


def live_private_key(domain: str) -> str:
    """The key of `live_cert(domain)`, written 0600."""
    return f"{LIVE_DIR}/{safe(domain)}/{KEY_FILE}"


def account_prefix(directory_url: str) -> str:
    """`acme/<directory id>`: one ACME account per directory; its contact e-mail is a field of
    the registration, so a new address updates the account rather than forking it."""
    return f"{ACME_DIR}/{safe(directory_id(directory_url))}"


def account_key(directory_url: str) -> str:
    """The ACME account's private key at `directory_url`, written 0600."""
    return f"{account_prefix(directory_url)}/account-key.pem"


def account_meta(directory_url: str) -> str:
    """The ACME account's registration at `directory_url` (`account.json`)."""
    return f"{account_prefix(directory_url)}/account.json"


def challenge_token(token: str) -> str:
    """The file of an HTTP-01 token in flight, which any process holding port 80 answers."""
    return f"{CHALLENGES_DIR}/{safe(token)}"


def lock(name: str) -> str:
    """The file behind the cross-process lock `name`."""
    return f"{LOCKS_DIR}/{safe(name)}.lock"


def cert_lock(issuer: str, domain: str) -> str:
    """The lock name held while `issuer` orders `domain`'s certificate: one order at a time."""
    return f"cert-{safe(issuer)}-{safe(domain)}"


def account_lock(directory_url: str) -> str:
    """The lock name held while the account at `directory_url` is loaded or registered."""
    return f"acme-account-{safe(directory_id(directory_url))}"
