from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
import trustme

from apiclub.errors import CertificateError
from apiclub.tls import FileStorage, LocalCA
from apiclub.tls.file_source import FileSource
from apiclub.tls.local_source import LocalSource
from apiclub.tls.source import LeafSource

from .test_files import NAMES, write_leaf


def local_source(storage: FileStorage, ca: LocalCA, lifetime: timedelta) -> LeafSource:
    return LocalSource(storage, ca, NAMES, lifetime)


def test_local_source_reuses_the_stored_leaf(storage: FileStorage, local_ca: LocalCA) -> None:
    first = local_source(storage, local_ca, timedelta(days=7)).obtain()
    again = local_source(storage, local_ca, timedelta(days=7)).obtain()
    assert again.leaf == first.leaf
    assert not first.uncovered(NAMES)


def test_local_source_reissues_for_other_names(storage: FileStorage, local_ca: LocalCA) -> None:
    first = local_source(storage, local_ca, timedelta(days=7)).obtain()
    other = LocalSource(storage, local_ca, ["api.test"]).obtain()
    assert other.leaf != first.leaf
    assert other.covers("api.test")


def test_local_source_keeps_a_fresh_leaf(storage: FileStorage, local_ca: LocalCA) -> None:
    source = local_source(storage, local_ca, timedelta(days=7))
    current = source.obtain()
    assert source.refresh(current) is None
    forced = source.refresh(current, force=True)
    assert forced is not None
    assert forced.leaf != current.leaf


def test_local_source_replaces_a_leaf_past_two_thirds_of_its_life(
    storage: FileStorage, local_ca: LocalCA
) -> None:
    # A 1 s leaf is backdated 60 s, so it starts out at 60/61 of its life.
    source = local_source(storage, local_ca, timedelta(seconds=1))
    current = source.obtain()
    renewed = source.refresh(current)
    assert renewed is not None
    assert renewed.leaf != current.leaf


def test_file_source_keeps_unchanged_files(other_ca: trustme.CA, tmp_path: Path) -> None:
    source: LeafSource = FileSource(*write_leaf(other_ca.issue_cert(*NAMES), tmp_path), NAMES)
    current = source.obtain()
    assert source.refresh(current) is None
    forced = source.refresh(current, force=True)
    assert forced is not None
    assert forced.leaf == current.leaf  # same files: same certificate, read again


def test_file_source_rereads_changed_files(other_ca: trustme.CA, tmp_path: Path) -> None:
    cert, key = write_leaf(other_ca.issue_cert(*NAMES), tmp_path)
    source = FileSource(cert, key, NAMES)
    current = source.obtain()
    write_leaf(other_ca.issue_cert(*NAMES), tmp_path)
    later = cert.stat().st_mtime_ns + 1_000_000_000  # the same tick on a coarse clock: move on
    os.utime(cert, ns=(later, later))
    renewed = source.refresh(current)
    assert renewed is not None
    assert renewed.leaf != current.leaf
    assert source.refresh(renewed) is None


def test_file_source_refuses_a_broken_replacement(other_ca: trustme.CA, tmp_path: Path) -> None:
    cert, key = write_leaf(other_ca.issue_cert(*NAMES), tmp_path)
    source = FileSource(cert, key, NAMES)
    current = source.obtain()
    cert.write_bytes(b"half-copied")
    later = cert.stat().st_mtime_ns + 1_000_000_000
    os.utime(cert, ns=(later, later))
    with pytest.raises(CertificateError, match="holds no PEM certificate"):
        source.refresh(current)
