"""A newcomer's first hour on a fresh machine: `git clone`, then `make test`, and nothing else.

The machine is a container of the local bookworm base image (test_containers.py builds it)
with only `python3`, `python3-venv`, `make` and `git`: no nginx, PostgreSQL, pebble, Chromium
or podman. `make test` must exit 0 there, the tests that need a missing tool skipping with a
line that names it, and the run closing with the summary of what was skipped and how to get
it. `make test-containers` runs this (slow: the whole suite, inside a container).
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from tests.deploy.helpers import REPO
from tests.deploy.test_containers import BASE_IMAGE, ensure_base_image, podman_env, run
from tests.deploy.test_containers import pytestmark as container_marks

pytestmark = container_marks

NEWCOMER_IMAGE = "localhost/apiclub-e2e-newcomer:bookworm"
NEWCOMER_PACKAGES = "make git"
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
"""Outbound HTTPS from these machines is re-signed by a local CA (NOTES.md): the container's
pip and uv need the host's bundle to reach PyPI."""
SUITE_TIMEOUT = 1500  # seconds


def build_newcomer_image(scratch: Path) -> None:
    (scratch / "Containerfile").write_text(
        f"FROM {BASE_IMAGE}\n"
        f"RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends "
        f"{NEWCOMER_PACKAGES} && rm -rf /var/lib/apt/lists/*\n"
    )
    run("podman", "build", "--network", "host", "--tag", NEWCOMER_IMAGE, str(scratch))


def test_a_fresh_clone_passes_make_test_on_a_machine_with_only_python_and_make() -> None:
    ensure_base_image()
    with tempfile.TemporaryDirectory(prefix="apiclub-newcomer-") as tmp:
        scratch = Path(tmp)
        build_newcomer_image(scratch)
        # What the newcomer clones: main's commits, not this working tree's edits.
        origin = scratch / "origin"
        run("git", "clone", "--quiet", str(REPO), str(origin))
        started = time.monotonic()
        result = subprocess.run(
            [
                "podman",
                "run",
                "--rm",
                "--network",
                "host",
                "--volume",
                f"{origin}:/origin:ro",
                "--volume",
                f"{HOST_CA_BUNDLE}:/etc/ssl/host-ca.pem:ro",
                "--env",
                "SSL_CERT_FILE=/etc/ssl/host-ca.pem",
                "--env",
                "PIP_CERT=/etc/ssl/host-ca.pem",
                NEWCOMER_IMAGE,
                "sh",
                "-c",
                "git clone --quiet /origin /root/apiclub && cd /root/apiclub && make test",
            ],
            env=podman_env(),
            capture_output=True,
            text=True,
            timeout=SUITE_TIMEOUT,
            check=False,
        )
        seconds = time.monotonic() - started
    # make and uv write to stderr, pytest to stdout: pytest's tail is the part to read.
    output = result.stdout
    print(f"\nfresh machine: make test exited {result.returncode} in {seconds:.0f} s")  # noqa: T201
    print(output[-4000:])  # noqa: T201 (shown with -s: the skip summary)
    assert result.returncode == 0, output[-8000:] + result.stderr[-2000:]
    summary = output[output.index("skipped for missing tools") :]
    # The browser tests ask for certutil first, so the summary names it rather than chromium.
    for tool in ("/usr/sbin/nginx", "pebble", "certutil", "the PostgreSQL server", "podman"):
        assert f"{tool} is missing: " in summary, tool
    assert "sudo make test-deps" in summary
    assert " passed" in output.splitlines()[-1]
