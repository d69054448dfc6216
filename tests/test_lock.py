"""The lock file is what a clone installs: it must agree with pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert found, "uv is missing: `make install` bootstraps it from requirements-uv.txt"
    return found


def test_the_lock_agrees_with_pyproject() -> None:
    result = subprocess.run(
        [uv(), "lock", "--check", "--offline"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_a_changed_requirement_is_caught(tmp_path: Path) -> None:
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    pyproject = tmp_path / "pyproject.toml"
    # A bound the locked httptools no longer meets: the lock must be refreshed. This one asks
    # the registry (the re-resolution needs versions the cache may not hold).
    pyproject.write_text(pyproject.read_text().replace('"httptools>=0.6,<1"', '"httptools<0.7"'))
    result = subprocess.run(
        [uv(), "lock", "--check"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "needs to be updated" in result.stderr, result.stderr


def test_the_installed_versions_are_the_locked_ones() -> None:
    import tomllib
    from importlib.metadata import version

    locked = {
        p["name"]: p["version"] for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]
    }
    for name in ("litestar", "hypercorn", "piccolo", "msgspec", "cryptography", "acme"):
        assert version(name) == locked[name], name
