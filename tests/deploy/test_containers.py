"""The images and compose.yaml for real: build, run each mode with podman, talk TLS, restart.

Slow and needs root, podman, runc and debootstrap: `make test-containers` runs it (and sets
APICLUB_TEST_CONTAINERS=1); `make test` skips it. When asked to run, a missing prerequisite is
a failure, never a skip: a green `make test-containers` means the containers were tested.

No registry is reachable here, so the base image is made locally (debootstrap, then
`podman import`) and passed as BASE_IMAGE and NGINX_BASE_IMAGE; tests/deploy/containers.conf
holds the podman settings these machines need; tests/deploy/compose.e2e.yaml puts every
service on the host's network with loopback high ports.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.deploy.helpers import DOMAINS, REPO, free_ports

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        os.environ.get("APICLUB_TEST_CONTAINERS") != "1",
        reason="container end-to-end test: run by `make test-containers`",
    ),
]

BASE_IMAGE = "localhost/apiclub-e2e-base:bookworm"
API_IMAGE = "localhost/apiclub-e2e:latest"
NGINX_IMAGE = "localhost/apiclub-e2e-nginx:latest"
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
CONTAINERS_CONF = REPO / "tests/deploy/containers.conf"
OVERRIDE = REPO / "tests/deploy/compose.e2e.yaml"
READY_TIMEOUT = 90.0


def podman_env() -> dict[str, str]:
    """This environment with our podman settings, and none of the variables compose would
    prefer to the test's .env (the shell wins over .env in compose)."""
    leaks = ("APICLUB_", "NGINX_", "COMPOSE_", "HTTPS_PORT", "HTTP_PORT", "PUBLISH_ADDRESS")
    env = {key: value for key, value in os.environ.items() if not key.startswith(leaks)}
    return {**env, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def run(*command: str, timeout: float = 600, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command,
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


@dataclass
class Images:
    """What the build cost, for the report: seconds per build and the image sizes."""

    seconds: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def images() -> Images:
    for name in ("podman", "runc", "debootstrap"):
        if shutil.which(name) is None:
            pytest.fail(
                f"{name} is missing: apt-get install podman runc debootstrap (.ci/run does)"
            )
    if os.geteuid() != 0:
        pytest.fail("the container test runs podman as root (no rootless set-up here)")
    built = Images()
    if (
        subprocess.run(
            ["podman", "image", "exists", BASE_IMAGE], env=podman_env(), check=False
        ).returncode
        != 0
    ):
        started = time.monotonic()
        make_base_image()
        built.seconds["base (debootstrap)"] = time.monotonic() - started
    for attempt in ("cold", "warm"):
        started = time.monotonic()
        run(
            "make",
            "image",
            f"BASE_IMAGE={BASE_IMAGE}",
            f"NGINX_BASE_IMAGE={BASE_IMAGE}",
            f"APICLUB_IMAGE={API_IMAGE}",
            f"NGINX_IMAGE={NGINX_IMAGE}",
            cwd=REPO,
        )
        built.seconds[f"make image ({attempt})"] = time.monotonic() - started
    for image in (API_IMAGE, NGINX_IMAGE):
        built.sizes[image] = run(
            "podman", "image", "inspect", "--format", "{{.Size}}", image
        ).stdout.strip()
    print(f"\ncontainer images: {built}")  # noqa: T201 (shown with -s, for the report)
    return built


def make_base_image() -> None:
    """A bookworm root file system with Python (what python:3.11-slim gives), as an image."""
    with tempfile.TemporaryDirectory(prefix="apiclub-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(
            "debootstrap",
            "--variant=minbase",
            f"--include={BASE_PACKAGES}",
            "bookworm",
            str(rootfs),
            "http://deb.debian.org/debian",
        )
        # Like the official Debian images: packages installed in a build start no service,
        # and apt's caches do not ship.
        policy = rootfs / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            run("podman", "import", "-", BASE_IMAGE, stdin=tar.stdout)
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            tar.wait()


@dataclass
class Project:
    """One compose project (its own name, volume and ports) driven by podman-compose."""

    name: str
    directory: Path
    https_port: int
    http_port: int
    api_port: int

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        compose = shutil.which(
            "podman-compose", path=str(Path(sys.executable).parent)
        ) or shutil.which("podman-compose")
        if compose is None:
            pytest.fail("podman-compose is missing: pip install -e '.[dev]'")
        return run(
            compose,
            "--project-name",
            self.name,
            "--file",
            str(REPO / "compose.yaml"),
            "--file",
            str(OVERRIDE),
            *args,
            cwd=self.directory,
            timeout=timeout,
        )

    @property
    def volume(self) -> Path:
        mountpoint = run(
            "podman", "volume", "inspect", "--format", "{{.Mountpoint}}", f"{self.name}_data"
        )
        return Path(mountpoint.stdout.strip())

    def client(self) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.volume / "ca/root.pem"))
        return httpx.Client(verify=context, timeout=10)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.https_port}{path}"

    def get(self, client: httpx.Client, name: str, path: str) -> httpx.Response:
        return client.get(self.url(path), headers={"host": name}, extensions={"sni_hostname": name})

    def wait_ready(self, name: str = DOMAINS[0]) -> None:
        """Until GET / answers 200 over TLS for `name` (certificates exist, API migrated)."""
        deadline = time.monotonic() + READY_TIMEOUT
        problem = "not started"
        while time.monotonic() < deadline:
            if (self.volume / "ca/root.pem").exists():
                try:
                    with self.client() as client:
                        response = self.get(client, name, "/")
                    if response.status_code == 200:
                        return
                    problem = f"GET / answered {response.status_code}: {response.text}"
                except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
                    problem = repr(exc)
            time.sleep(1)
        logs = self.compose("--profile", "direct", "--profile", "nginx", "logs", timeout=60)
        pytest.fail(f"not ready in {READY_TIMEOUT} s: {problem}\n{logs.stdout}\n{logs.stderr}")


@pytest.fixture
def project(images: Images, tmp_path: Path) -> Iterator[Project]:
    https_port, http_port, api_port = free_ports(3)
    name = f"apiclub-e2e-{os.getpid()}"
    (tmp_path / ".env").write_text(
        f"APICLUB_DOMAINS={','.join(DOMAINS)}\n"
        f"HTTPS_PORT={https_port}\nHTTP_PORT={http_port}\nE2E_API_PORT={api_port}\n"
        f"APICLUB_IMAGE={API_IMAGE}\nNGINX_IMAGE={NGINX_IMAGE}\n"
    )
    project = Project(name, tmp_path, https_port, http_port, api_port)
    try:
        yield project
    finally:
        project.compose(
            "--profile", "direct", "--profile", "nginx", "down", "--volumes", timeout=120
        )


def write_then_read_after_restart(project: Project, profile: str) -> None:
    """Write a task through each name, recreate the containers, read the tasks back."""
    ids = {}
    with project.client() as client:
        for name in DOMAINS:
            created = client.post(
                project.url("/task/"),
                json={"name": f"{profile} via {name}"},
                headers={"host": name},
                extensions={"sni_hostname": name},
            )
            assert created.status_code == 201, created.text
            ids[name] = created.json()["id"]
    project.compose("--profile", profile, "down", timeout=120)
    project.compose("--profile", profile, "up", "--detach")
    project.wait_ready()
    with project.client() as client:
        for name, task_id in ids.items():
            response = project.get(client, name, f"/task/{task_id}")
            assert response.status_code == 200, response.text
            assert response.json()["name"] == f"{profile} via {name}"


def test_direct_mode_serves_https_and_keeps_data_across_restarts(project: Project) -> None:
    project.compose("--profile", "direct", "up", "--detach")
    project.wait_ready()
    with httpx.Client() as client:
        redirect = client.get(
            f"http://127.0.0.1:{project.http_port}/task/?page=2",
            headers={"host": "api.apiclub.com"},
        )
    assert redirect.status_code == 301
    assert (
        redirect.headers["location"] == f"https://api.apiclub.com:{project.https_port}/task/?page=2"
    )
    health = run("podman", "healthcheck", "run", f"{project.name}_api_1")
    assert health.returncode == 0
    user = run("podman", "exec", f"{project.name}_api_1", "id", "-u").stdout.strip()
    assert user == "10001"
    write_then_read_after_restart(project, "direct")


def test_nginx_mode_serves_both_names_through_nginx_and_keeps_data(project: Project) -> None:
    # Certificates from a run in direct mode on the same volume: this mode alone also needs
    # the API to write them with TLS off (see test_nginx_mode_on_a_fresh_volume).
    project.compose("--profile", "direct", "up", "--detach")
    project.wait_ready()
    project.compose("--profile", "direct", "down", timeout=120)
    project.compose("--profile", "nginx", "up", "--detach")
    project.wait_ready()
    with project.client() as client:
        for name in DOMAINS:
            response = project.get(client, name, "/task/")
            assert response.status_code == 200
            assert response.headers["server"] == "nginx"
    http = f"http://127.0.0.1:{project.http_port}/x"
    with httpx.Client() as client:
        redirect = client.get(http, headers={"host": "apiclub.com"})
        with pytest.raises(httpx.RemoteProtocolError):  # 444: closed without an answer
            client.get(http, headers={"host": "evil.example"})
    assert redirect.headers["location"] == f"https://apiclub.com:{project.https_port}/x"
    write_then_read_after_restart(project, "nginx")


def test_nginx_mode_on_a_fresh_volume(project: Project) -> None:
    project.compose("--profile", "nginx", "up", "--detach")
    project.wait_ready()
    write_then_read_after_restart(project, "nginx")
