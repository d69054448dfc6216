"""What `apiclub serve` imports before its first answer (issue #5: imports were 80% of a start)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

NOT_ON_THE_DEFAULT_PATH = (
    "acme",
    "josepy",
    "requests",
    "pydantic",
    "attrs",
    "black",
    "piccolo.conf.apps",
)
"""ACME's client stack (local names never need it); pydantic and attrs (the API is msgspec);
Piccolo's migration machinery and black (only a pending migration needs them)."""

PROBE = """
import json, sys
{setup}
print(json.dumps(sorted(m for m in {modules!r} if m in sys.modules)))
"""

SERVE_PATH = """
import apiclub.cli, apiclub.cli_serve, apiclub.server.launcher, apiclub.server.workers
from apiclub.api import create_app
from apiclub.settings import Settings
create_app(Settings.from_env({}))
"""


def loaded(setup: str, modules: tuple[str, ...]) -> list[str]:
    """Which of `modules` a fresh interpreter holds after running `setup`."""
    script = PROBE.format(setup=setup, modules=modules)
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found: list[str] = json.loads(result.stdout)
    return found


def imported(setup: str) -> list[str]:
    """Which of NOT_ON_THE_DEFAULT_PATH a fresh interpreter holds after running `setup`."""
    return loaded(setup, NOT_ON_THE_DEFAULT_PATH)


def test_the_serve_path_imports_neither_acme_nor_pydantic() -> None:
    assert imported(SERVE_PATH) == []


def test_the_probe_sees_them_once_they_are_used() -> None:
    setup = (
        "import apiclub.tls.acme_client, litestar.plugins.pydantic, litestar.plugins.attrs, "
        "black, piccolo.conf.apps"
    )
    assert imported(setup) == sorted(NOT_ON_THE_DEFAULT_PATH)


SERVER_STACK = ("litestar", "hypercorn", "cryptography", "piccolo")


def test_the_parent_that_holds_the_sockets_loads_no_server_stack() -> None:
    # It stays for the service's life: small, and untouched by an upgrade it reloads.
    setup = "import apiclub.cli, apiclub.cli_serve, apiclub.server.generations"
    assert loaded(setup, SERVER_STACK) == []


def test_a_worker_loads_the_server_stack() -> None:
    assert loaded("import apiclub.server.workers", SERVER_STACK) == sorted(SERVER_STACK)


def test_the_acme_client_loads_no_server_stack() -> None:
    # `tls/` uses `compat.acme_orders`: the compat package itself must not pull in Hypercorn
    # (the twin above: a worker does load it).
    assert loaded("import apiclub.tls.acme_client", ("hypercorn", "h2")) == []
