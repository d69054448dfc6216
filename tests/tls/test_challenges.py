from __future__ import annotations

import os
import socket
import stat
import time
import urllib.error
import urllib.request

import pytest

from apiclub.server.sockets import bind_socket
from apiclub.tls import FileStorage, http01
from apiclub.tls.challenges import ChallengeStore, token_from_path
from apiclub.tls.http01 import serve_challenges

TOKEN = "DGyRejmCefe7v4NfDGDKfA-5vpYCBFgdUq6ZmtR7Hs0"
THUMB = "9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"  # a SHA-256 JWK thumbprint, base64url


def test_added_token_is_found_here_and_by_another_process(storage: FileStorage) -> None:
    here = ChallengeStore(storage)
    here.add(TOKEN, f"{TOKEN}.{THUMB}")
    elsewhere = ChallengeStore(FileStorage(storage.root))
    assert here.lookup(TOKEN) == elsewhere.lookup(TOKEN) == f"{TOKEN}.{THUMB}"
    path = storage.path(f"acme/challenges/{TOKEN}")
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_removed_token_is_gone_everywhere(storage: FileStorage) -> None:
    here = ChallengeStore(storage)
    here.add(TOKEN, f"{TOKEN}.{THUMB}")
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
    answers.add(TOKEN, f"{TOKEN}.{THUMB}")
    sock = bind_socket("127.0.0.1", 0, option="test")
    port = sock.getsockname()[1]
    with serve_challenges(sock, answers):
        assert fetch(port, f"/.well-known/acme-challenge/{TOKEN}") == (
            200,
            f"{TOKEN}.{THUMB}".encode(),
        )
        assert fetch(port, f"/.well-known/acme-challenge/{TOKEN[::-1]}")[0] == 404
        assert fetch(port, "/")[0] == 404
    assert sock.fileno() == -1  # closed with the block


def test_links_fifos_and_others_files_are_never_read(storage: FileStorage) -> None:
    store = ChallengeStore(storage)
    store.add(TOKEN, f"{TOKEN}.{THUMB}")
    directory = storage.path(f"acme/challenges/{TOKEN}").parent
    target = storage.root / "secret"
    target.write_text(f"{TOKEN}.{THUMB}")  # even a link to a well-shaped answer
    reader = ChallengeStore(FileStorage(storage.root))
    assert reader.lookup(TOKEN) == f"{TOKEN}.{THUMB}"  # the regular file: answered
    (directory / TOKEN).unlink()
    (directory / TOKEN).symlink_to(target)
    assert reader.lookup(TOKEN) is None
    (directory / TOKEN).unlink()
    os.mkfifo(directory / TOKEN)
    assert reader.lookup(TOKEN) is None  # and does not block
    (directory / TOKEN).unlink()
    # A linked directory on the way: acme/challenges -> elsewhere.
    elsewhere = storage.root / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / TOKEN).write_text(f"{TOKEN}.{THUMB}")
    directory.rmdir()
    directory.symlink_to(elsewhere)
    assert reader.lookup(TOKEN) is None


def test_a_file_owned_by_another_user_is_never_read(storage: FileStorage) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can give a file to another user")  # CI runs as root
    ChallengeStore(storage).add(TOKEN, f"{TOKEN}.{THUMB}")
    path = storage.path(f"acme/challenges/{TOKEN}")
    reader = ChallengeStore(FileStorage(storage.root))
    assert reader.lookup(TOKEN) == f"{TOKEN}.{THUMB}"
    os.chown(path, 65534, 65534)
    assert reader.lookup(TOKEN) is None


def test_a_token_for_a_name_answers_that_name_only(storage: FileStorage) -> None:
    ChallengeStore(storage).add(TOKEN, f"{TOKEN}.{THUMB}", "api.example.com")
    reader = ChallengeStore(FileStorage(storage.root))
    assert reader.lookup(TOKEN, "api.example.com") == f"{TOKEN}.{THUMB}"
    assert reader.lookup(TOKEN, "evil.example.com") is None
    assert reader.lookup(TOKEN, None) is None


def test_the_standalone_responder_cuts_slow_requests_and_caps_its_threads(
    storage: FileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http01, "REQUEST_DEADLINE", 0.5)
    monkeypatch.setattr(http01, "MAX_THREADS", 2)
    answers = ChallengeStore(storage)
    answers.add(TOKEN, f"{TOKEN}.{THUMB}")
    sock = bind_socket("127.0.0.1", 0, option="test")
    port = sock.getsockname()[1]
    with serve_challenges(sock, answers):
        slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        try:
            for s in slow:
                s.sendall(b"GET /")  # never finished
            s.settimeout(5)
            assert slow[2].recv(1) == b""  # the third: over the cap, closed at once
            start = time.monotonic()
            slow[0].settimeout(5)
            assert slow[0].recv(1) == b""  # cut at its deadline, not at the 5 s timeout
            assert time.monotonic() - start < 2
            assert fetch(port, f"/.well-known/acme-challenge/{TOKEN}")[0] == 200
        finally:
            for s in slow:
                s.close()
