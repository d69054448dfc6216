"""System tools the tests drive: found, or a skip that says how to get them.

Under `CI=true` a missing tool is a failure, never a skip, so CI cannot go green by skipping.
The closing summary (tests/conftest.py) counts these skips per tool. `sudo make test-deps`
installs every Debian package in `tests/system-packages.txt`.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import NoReturn

import pytest

MISSING = re.compile(r"^(?P<tool>.+?) is missing: (?P<fix>.+)$")
"""The shape of every skip reason given here, which the closing summary groups by."""


def in_ci() -> bool:
    """Tell whether this run is CI's, where nothing may be skipped for a missing tool."""
    return os.environ.get("CI", "").lower() == "true"


def missing(tool: str, fix: str) -> NoReturn:
    """Skip (fail under CI=true) because `tool` is not here; `fix` says how to get it."""
    reason = f"{tool} is missing: {fix}"
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing tool fails the run)", pytrace=False)
    pytest.skip(reason)


def apt_fix(package: str) -> str:
    """How to install a Debian package, as the skip reason says it."""
    return f"apt-get install {package} (or: sudo make test-deps)"


def require_tool(tool: str, package: str) -> str:
    """The path of `tool` (the venv's bin first, then PATH), or skip/fail naming `package`."""
    venv_tool = Path(sys.executable).parent / tool
    if venv_tool.exists():
        return str(venv_tool)
    found = shutil.which(tool)
    if found is None:
        missing(tool, apt_fix(package))
    return found


def require_file(path: str, package: str) -> str:
    """`path` if it exists (a tool outside PATH, e.g. /usr/sbin/nginx), or skip/fail."""
    if not Path(path).exists():
        missing(path, apt_fix(package))
    return path
