"""What a running server accepts: re-read on change at most once a second, fail closed."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from apiclub.errors import StorageError
from apiclub.tokens import LiveTokens, TokenStore, hash_token


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "data")


@pytest.fixture
def clock() -> Clock:
    return Clock()


def live_tokens(store: TokenStore, clock: Clock) -> LiveTokens:
    live = LiveTokens(store, clock=clock)
    live.load()
    return live


def test_verify_names_the_right_token_and_refuses_others(store: TokenStore, clock: Clock) -> None:
    ci, cd = store.add("ci"), store.add("cd")
    live = live_tokens(store, clock)
    assert (live.verify(ci), live.verify(cd)) == ("ci", "cd")
    for wrong in ("", "apiclub_", ci[:-1], ci + "x", ci.upper(), hash_token(ci), "\udcff"):
        assert live.verify(wrong) is None


def test_a_revocation_is_seen_after_the_check_interval_not_before(
    store: TokenStore, clock: Clock
) -> None:
    token = store.add("ci")
    live = live_tokens(store, clock)
    store.revoke("ci")
    clock.now += 0.5
    assert live.verify(token) == "ci"  # not stat'ed yet: at most once a second
    clock.now += 0.6
    assert live.verify(token) is None
    assert live.count == 0


def test_a_token_added_while_running_is_accepted(store: TokenStore, clock: Clock) -> None:
    live = live_tokens(store, clock)
    assert live.count == 0
    token = store.add("late")
    clock.now += 1.1
    assert live.verify(token) == "late"


def test_a_file_corrupted_while_running_refuses_every_token(
    store: TokenStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    token = store.add("ci")
    live = live_tokens(store, clock)
    store.path.write_text("{ broken")
    clock.now += 1.1
    with caplog.at_level(logging.ERROR, "apiclub.tokens"):
        assert live.verify(token) is None
    assert "every token is refused until the token file is fixed" in caplog.text
    assert token not in caplog.text
    store.path.unlink()
    store.add("ci-again")
    clock.now += 1.1
    live.refresh()
    assert live.count == 1


def test_a_corrupt_file_at_start_raises(store: TokenStore, clock: Clock) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_text("[]")
    with pytest.raises(StorageError, match="is not an apiclub token file"):
        LiveTokens(store, clock=clock).load()


def test_last_use_is_kept_in_memory_until_taken(store: TokenStore, clock: Clock) -> None:
    token = store.add("ci")
    live = live_tokens(store, clock)
    before = store.path.stat().st_mtime_ns
    for _ in range(50):
        assert live.verify(token) == "ci"
    assert store.path.stat().st_mtime_ns == before
    assert not store.storage.path("auth/last-use.json").exists()  # no write per request
    used = live.take_used()
    assert list(used) == [hash_token(token)]
    assert live.take_used() == {}
    live.give_back(used)
    store.record_use(live.take_used())
    assert [t.last_used_at for t in store.list_tokens()] == [used[hash_token(token)]]


def test_a_wrong_token_notes_no_use(store: TokenStore, clock: Clock) -> None:
    store.add("ci")
    live = live_tokens(store, clock)
    assert live.verify("apiclub_wrong") is None
    assert live.take_used() == {}
