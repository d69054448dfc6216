from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from apiclub.tls import FileStorage, LocalCA


@pytest.fixture
def storage(tmp_path: Path) -> FileStorage:
    return FileStorage(tmp_path / "data")


@pytest.fixture
def local_ca(storage: FileStorage) -> LocalCA:
    return LocalCA.load_or_create(storage)


@pytest.fixture
def other_ca() -> trustme.CA:
    return trustme.CA()
