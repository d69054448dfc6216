from __future__ import annotations

import multiprocessing
import stat
import time
from pathlib import Path

import pytest

from apiclub.errors import StorageError
from apiclub.tls import FileStorage
from apiclub.tls.storage import KeyNotStoredError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_then_read_round_trips(storage: FileStorage) -> None:
    storage.write("certs/local/fullchain.pem", b"chain")
    assert storage.read("certs/local/fullchain.pem") == b"chain"
    assert storage.exists("certs/local/fullchain.pem")


def test_read_missing_key_raises_key_not_stored(storage: FileStorage) -> None:
    with pytest.raises(KeyNotStoredError, match=r"nothing\.pem does not exist") as info:
        storage.read("nothing.pem")
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, StorageError)
    assert not storage.exists("nothing.pem")


def test_private_files_0600_public_0644_dirs_0700(storage: FileStorage) -> None:
    storage.write("certs/local/privkey.pem", b"secret", private=True)
    storage.write("certs/local/fullchain.pem", b"public")
    assert mode(storage.path("certs/local/privkey.pem")) == 0o600
    assert mode(storage.path("certs/local/fullchain.pem")) == 0o644
    for directory in (storage.root, storage.root / "certs", storage.root / "certs/local"):
        assert mode(directory) == 0o700


def test_private_file_replacing_a_public_one_becomes_0600(storage: FileStorage) -> None:
    storage.write("k.pem", b"old")
    assert mode(storage.path("k.pem")) == 0o644
    storage.write("k.pem", b"new", private=True)
    assert mode(storage.path("k.pem")) == 0o600


def test_overwrite_is_atomic_and_leaves_no_temp_files(storage: FileStorage) -> None:
    storage.write("ca/root.pem", b"one")
    inode = storage.path("ca/root.pem").stat().st_ino
    storage.write("ca/root.pem", b"two")
    assert storage.read("ca/root.pem") == b"two"
    assert storage.path("ca/root.pem").stat().st_ino != inode  # renamed over, not rewritten
    assert [p.name for p in (storage.root / "ca").iterdir()] == ["root.pem"]


def test_failed_write_leaves_old_content_and_no_temp_file(
    storage: FileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.write("ca/root.pem", b"old")

    def fail_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("apiclub.tls.storage.os.fsync", fail_fsync)
    with pytest.raises(StorageError, match="No space left on device"):
        storage.write("ca/root.pem", b"new")
    monkeypatch.undo()
    assert storage.read("ca/root.pem") == b"old"
    assert [p.name for p in (storage.root / "ca").iterdir()] == ["root.pem"]


@pytest.mark.parametrize("key", ["../escape.pem", "/etc/passwd", "a/./b", ""])
def test_keys_cannot_escape_the_root(storage: FileStorage, key: str) -> None:
    with pytest.raises(ValueError, match="relative path"):
        storage.path(key)


def test_unwritable_directory_raises_storage_error_naming_path(tmp_path: Path) -> None:
    # Tests run as root, where chmod does not stop writes: a directory under a regular file
    # can never be created, whoever we are.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    storage = FileStorage(blocker / "data")
    with pytest.raises(StorageError, match=r"not-a-dir/data/ca.*APICLUB_DATA_DIR"):
        storage.write("ca/root.pem", b"x")


def test_unreadable_entry_raises_storage_error(storage: FileStorage) -> None:
    storage.path("ca/root.pem").mkdir(parents=True)  # a directory where a file should be
    with pytest.raises(StorageError, match=r"reading .*root\.pem") as info:
        storage.read("ca/root.pem")
    assert not isinstance(info.value, KeyError)


def _hold_lock(root: str, held: multiprocessing.synchronize.Event, seconds: float) -> None:
    with FileStorage(Path(root)).lock("acme"):
        held.set()
        time.sleep(seconds)


def test_lock_excludes_another_process(storage: FileStorage) -> None:
    context = multiprocessing.get_context("spawn")
    held = context.Event()
    child = context.Process(target=_hold_lock, args=(str(storage.root), held, 0.5))
    child.start()
    try:
        assert held.wait(30)
        started = time.monotonic()
        with storage.lock("acme"):
            waited = time.monotonic() - started
        assert waited > 0.2
    finally:
        child.join(30)
    assert child.exitcode == 0


def test_distinct_locks_do_not_block_each_other(storage: FileStorage) -> None:
    with storage.lock("a"):
        started = time.monotonic()
        with storage.lock("b"):
            assert time.monotonic() - started < 0.2
    assert mode(storage.path("locks/a.lock")) == 0o600
