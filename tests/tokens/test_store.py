"""The token files: only hashes, 0600 in 0700 whatever the umask, atomic, merged under a lock."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from apiclub.errors import StorageError, TokenError
from apiclub.tokens import TOKEN_PREFIX, TokenStore, hash_token, new_token
from apiclub.tokens.store import LAST_USE_KEY, TOKENS_KEY

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "data")


def test_a_token_is_prefixed_random_and_long() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    for token in tokens:
        assert re.fullmatch(rf"{TOKEN_PREFIX}[A-Za-z0-9_-]{{43}}", token), token


def test_add_stores_the_hash_only_0600_in_0700_under_umask_022(
    store: TokenStore, umask_022: None
) -> None:
    token = store.add("ci", now=T0)
    raw = store.path.read_text()
    assert token not in raw
    assert token.removeprefix(TOKEN_PREFIX) not in raw
    assert json.loads(raw) == {
        "version": 1,
        "tokens": [{"name": "ci", "sha256": hash_token(token), "created_at": T0.isoformat()}],
    }
    assert store.path == store.storage.root / TOKENS_KEY
    assert mode(store.path) == 0o600
    assert mode(store.path.parent) == 0o700
    assert mode(store.storage.root) == 0o700
    # The twin: the same umask gives an ordinary file 0644, so the 0600 above is not the umask's.
    other = store.storage.root / "plain.txt"
    other.write_text("x")
    assert mode(other) == 0o644


def test_add_replaces_the_file_atomically_leaving_no_temp_file(store: TokenStore) -> None:
    store.add("one")
    inode = store.path.stat().st_ino
    store.add("two")
    assert store.path.stat().st_ino != inode
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["tokens.json"]
    assert [t.name for t in store.list_tokens()] == ["one", "two"]


def test_a_name_is_taken_once(store: TokenStore) -> None:
    store.add("ci")
    with pytest.raises(TokenError, match=r"a token named 'ci' exists already: revoke it first"):
        store.add("ci")
    assert [t.name for t in store.load()] == ["ci"]


@pytest.mark.parametrize("name", ["", "has space", "-dash-first", "x" * 65, "ünï", "a/b"])
def test_a_bad_name_is_refused_and_nothing_written(store: TokenStore, name: str) -> None:
    with pytest.raises(TokenError, match=r"is not valid: use 1-64 letters, digits"):
        store.add(name)
    assert not store.path.exists()


@pytest.mark.parametrize("name", ["a", "ci-deploy", "laptop.alice", "x" * 64, "A_1"])
def test_good_names_are_taken(store: TokenStore, name: str) -> None:
    store.add(name)
    assert [t.name for t in store.load()] == [name]


def test_revoke_deletes_the_token_and_its_last_use(store: TokenStore) -> None:
    kept, gone = store.add("kept"), store.add("gone")
    store.record_use({hash_token(kept): T0, hash_token(gone): T0})
    assert store.revoke("gone").name == "gone"
    assert [(t.name, t.last_used_at) for t in store.list_tokens()] == [("kept", T0)]
    assert hash_token(gone) not in store.storage.read(LAST_USE_KEY).decode()


def test_revoking_an_unknown_name_says_which_exist(store: TokenStore) -> None:
    store.add("ci")
    with pytest.raises(TokenError, match=r"no token is named 'cd' in .* \(tokens: ci\)"):
        store.revoke("cd")
    assert [t.name for t in store.load()] == ["ci"]


def test_no_file_yet_means_no_tokens(store: TokenStore) -> None:
    assert store.load() == ()
    assert store.list_tokens() == []


def test_record_use_keeps_the_latest_and_drops_unknown_hashes(store: TokenStore) -> None:
    token = store.add("ci")
    later = T0 + timedelta(minutes=5)
    store.record_use({hash_token(token): later})
    store.record_use({hash_token(token): T0, hash_token("apiclub_revoked"): T0})
    assert [t.last_used_at for t in store.list_tokens()] == [later]
    assert hash_token("apiclub_revoked") not in store.storage.read(LAST_USE_KEY).decode()
    assert mode(store.storage.path(LAST_USE_KEY)) == 0o600


def test_a_token_never_used_lists_none(store: TokenStore) -> None:
    store.add("ci", now=T0)
    [listed] = store.list_tokens()
    assert (listed.name, listed.created_at, listed.last_used_at) == ("ci", T0, None)


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"version": 2, "tokens": []}',
        '{"version": 1}',
        '{"version": 1, "tokens": [{"name": "ci"}]}',
        '{"version": 1, "tokens": [{"name": "ci", "sha256": "abc", "created_at": "2026-01-01"}]}',
        "[1, 2]",
    ],
)
def test_a_corrupt_file_is_named_with_the_fix(store: TokenStore, content: str) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_text(content)
    with pytest.raises(StorageError) as refused:
        store.load()
    message = str(refused.value)
    assert message.startswith(f"{store.path} is not an apiclub token file (")
    assert message.endswith(
        "restore it from a backup, or delete it and add the tokens again with "
        "apiclub tokens add NAME"
    )


def _add_many(root: str, prefix: str, count: int) -> None:
    store = TokenStore(Path(root))
    for number in range(count):
        store.add(f"{prefix}-{number}")


def test_processes_adding_at_once_lose_no_token(store: TokenStore) -> None:
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_add_many, args=(str(store.storage.root), f"p{n}", 10))
        for n in range(3)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    assert [child.exitcode for child in children] == [0, 0, 0]
    names = sorted(t.name for t in store.load())
    assert names == sorted(f"p{n}-{i}" for n in range(3) for i in range(10))
