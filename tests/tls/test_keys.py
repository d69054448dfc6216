"""Storage keys and lock names are built in `tls/keys.py`; no name can leave its folder."""

from __future__ import annotations

import pytest

from apiclub.tls import FileStorage, keys
from apiclub.tls.certstore import CertStore
from apiclub.tls.challenges import ChallengeStore

LE = "https://acme-v02.api.letsencrypt.org/directory"
LE_ID = "acme-v02.api.letsencrypt.org-directory"


def test_the_layout_is_the_one_existing_data_directories_have() -> None:
    assert {
        "site_cert": keys.site_cert(LE_ID, "api.example.com"),
        "site_private_key": keys.site_private_key(LE_ID, "api.example.com"),
        "site_meta": keys.site_meta(LE_ID, "api.example.com"),
        "ipv6 site": keys.site_cert("local", "::1"),
        "live_cert": keys.live_cert("127.0.0.1"),
        "live_private_key": keys.live_private_key("api.example.com"),
        "account_key": keys.account_key(LE),
        "account_meta": keys.account_meta("https://127.0.0.1:14000/dir"),
        "challenge_token": keys.challenge_token("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"),
        "lock": keys.lock(keys.cert_lock(LE_ID, "api.example.com")),
        "account_lock": keys.lock(keys.account_lock(LE)),
    } == {
        "site_cert": f"certs/{LE_ID}/api.example.com/fullchain.pem",
        "site_private_key": f"certs/{LE_ID}/api.example.com/privkey.pem",
        "site_meta": f"certs/{LE_ID}/api.example.com/renewal.json",
        "ipv6 site": "certs/local/::1/fullchain.pem",
        "live_cert": "certs/live/127.0.0.1/fullchain.pem",
        "live_private_key": "certs/live/api.example.com/privkey.pem",
        "account_key": f"acme/{LE_ID}/account-key.pem",
        "account_meta": "acme/127.0.0.1-14000-dir/account.json",
        "challenge_token": "acme/challenges/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0",
        "lock": f"locks/cert-{LE_ID}-api.example.com.lock",
        "account_lock": f"locks/acme-account-{LE_ID}.lock",
    }
    assert (keys.ROOT_CERT, keys.ROOT_KEY) == ("ca/root.pem", "ca/root-key.pem")
    assert (keys.LOCAL_CERT, keys.LOCAL_KEY) == (
        "certs/local/fullchain.pem",
        "certs/local/privkey.pem",
    )


def test_wildcards_and_idns_get_safe_names() -> None:
    assert keys.live_cert("*.example.com") == "certs/live/wildcard_.example.com/fullchain.pem"
    assert keys.site_cert("local", "bücher.example") == (
        "certs/local/xn--bcher-kva.example/fullchain.pem"
    )


@pytest.mark.parametrize(
    "name",
    [
        "..",
        "../ca",
        "a/../../b",
        "a/b",
        "/etc/passwd",
        ".hidden",
        "a..b",
        "a\\b",
        "a\x00b",
        "",
        " ",
    ],
)
def test_a_name_that_could_leave_its_folder_is_refused(name: str) -> None:
    for build in (keys.live_cert, keys.lock, keys.challenge_token):
        with pytest.raises(ValueError, match="could leave its folder"):
            build(name)
    with pytest.raises(ValueError, match="could leave its folder"):
        keys.site_cert(name, "api.example.com")
    with pytest.raises(ValueError, match="could leave its folder"):
        keys.site_cert("local", name)


def test_the_stores_build_their_keys_here(storage: FileStorage) -> None:
    # The twin of the refusal: a valid name reaches the file the layout names.
    store = CertStore(storage, LE_ID)
    assert store.chain_key("api.example.com") == keys.site_cert(LE_ID, "api.example.com")
    with store.lock("api.example.com"):
        assert storage.path(keys.lock(keys.cert_lock(LE_ID, "api.example.com"))).is_file()
    with pytest.raises(ValueError, match="could leave its folder"), store.lock("../../../tmp/x"):
        pass
    with pytest.raises(ValueError, match="could leave its folder"), storage.lock("../escape"):
        pass
    assert not (storage.root.parent / "escape.lock").exists()
    token = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
    ChallengeStore(storage).add(token, f"{token}.{'9' * 43}")
    assert storage.path(keys.challenge_token(token)).is_file()
