"""deploy/rolling-restart.sh refuses what would drop requests (its run is in test-containers)."""

from __future__ import annotations

import subprocess

from tests.deploy.helpers import REPO, clean_env, tool

SCRIPT = REPO / "deploy" / "rolling-restart.sh"


def run(**values: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT)],
        env=clean_env(**values),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_fewer_than_two_replicas_are_not_restarted() -> None:
    podman = tool("podman", package="podman")
    # A project nobody runs: real podman lists no replica of it.
    result = run(PODMAN=podman, COMPOSE_PROJECT_NAME="apiclub-test-no-such-project")
    assert result.returncode == 1
    assert "0 running replica(s) of api-behind-nginx" in result.stderr
    assert "needs 2 or more (API_REPLICAS in .env)" in result.stderr


def test_every_named_service_counts_and_is_named() -> None:
    podman = tool("podman", package="podman")
    result = subprocess.run(
        [str(SCRIPT), "api-behind-nginx", "api-behind-nginx-2"],
        env=clean_env(PODMAN=podman, COMPOSE_PROJECT_NAME="apiclub-test-no-such-project"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "0 running replica(s) of api-behind-nginx api-behind-nginx-2 in project" in result.stderr


def test_a_failing_podman_is_reported_not_taken_for_no_replicas() -> None:
    result = run(PODMAN="/bin/false")
    assert result.returncode == 1
    assert "'/bin/false ps' failed" in result.stderr


def test_timeouts_must_be_whole_seconds() -> None:
    result = run(ROLLING_SETTLE="10s")
    assert result.returncode == 1
    assert "timeouts are whole seconds, got '10s'" in result.stderr
