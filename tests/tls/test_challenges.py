from __future__ import annotations

import stat
import urllib.error
import urllib.request

import pytest

from apiclub.server.sockets import bind_socket
from apiclub.tls import FileStorage
from apiclub.tls.challenges import ChallengeStore, token_from_path
from apiclub.tls.http01 import serve_challenges

TOKEN = "DGyRejmCefe7v4NfDGDKfA-5vpYCBFgdUq6ZmtR7Hs0"


def test_added_token_is_found_here_and_by_another_process(storage: FileStorage) -> None:
    here = ChallengeStore(storage)
    here.add(TOKEN, f"{TOKEN}.thumb")
    elsewhere = ChallengeStore(FileStorage(storage.root))
    assert here.lookup(TOKEN) == elsewhere.lookup(TOKEN) == f"{TOKEN}.thumb"
    path = storage.path(f"acme/challenges/{TOKEN}")
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_removed_token_is_gone_everywhere(storage: FileStorage) -> None:
    here = ChallengeStore(storage)
    here.add(TOKEN, f"{TOKEN}.thumb")
    here.remove(TOKEN)
    assert here.lookup(TOKEN) is None
    assert ChallengeStore(FileStorage(storage.root)).lookup(TOKEN) is None
    here.remove(TOKEN)  # twice is harmless


@pytest.mark.parametrize("token", ["", "short", "../../ca/root-key.pem", "a/b" * 10, "x" * 300])
def test_tokens_that_are_not_base64url_are_never_looked_up_or_stored(
    storage: FileStorage, token: str
) -> None:
    assert ChallengeStore(storage).lookup(token) is None
    with pytest.raises(ValueError, match="not base64url"):
        ChallengeStore(storage).add(token, "x")


def test_token_from_path() -> None:
    assert token_from_path(f"/.well-known/acme-challenge/{TOKEN}") == TOKEN
    assert token_from_path("/.well-known/acme-challengeX") is None
    assert token_from_path("/") is None


def fetch(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def test_standalone_responder_answers_tokens_and_404s_the_rest(storage: FileStorage) -> None:
    answers = ChallengeStore(storage)
    answers.add(TOKEN, f"{TOKEN}.thumb")
    sock = bind_socket("127.0.0.1", 0, option="test")
    port = sock.getsockname()[1]
    with serve_challenges(sock, answers):
        assert fetch(port, f"/.well-known/acme-challenge/{TOKEN}") == (
            200,
            f"{TOKEN}.thumb".encode(),
        )
        assert fetch(port, f"/.well-known/acme-challenge/{TOKEN[::-1]}")[0] == 404
        assert fetch(port, "/")[0] == 404
    assert sock.fileno() == -1  # closed with the block
