"""The images and compose.yaml for real: build, run each mode with podman, talk TLS, restart.

Slow and needs root, podman, runc and debootstrap: `make test-containers` runs it (and sets
APICLUB_TEST_CONTAINERS=1); `make test` skips it. When asked to run, a missing prerequisite is
a failure, never a skip: a green `make test-containers` means the containers were tested.

No registry is reachable here, so the base image is made locally (debootstrap, then
`podman import`) and passed as BASE_IMAGE and NGINX_BASE_IMAGE (the PostgreSQL image builds on
it too, apt reaching Debian's mirror); tests/deploy/containers.conf holds the podman settings
these machines need; tests/deploy/compose.e2e.yaml puts every service on the host's network
with loopback high ports, one port per API replica.

The deploys of issue #15 run under its load (tests/reliability/deploy_load.py: 4 clients, a new
verified TLS connection per request): HUP inside the direct container, and `make
rolling-restart` of the scale profile's replicas behind nginx, with its all-at-once twin.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.deploy.helpers import DOMAINS, REPO, free_ports
from tests.reliability.deploy_load import (
    LoadResult,
    assert_no_loss,
    assert_no_loss_in,
    assert_writes_kept,
    run_load,
)

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
POSTGRES_IMAGE = "localhost/apiclub-e2e-postgres:latest"
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
CONTAINERS_CONF = REPO / "tests/deploy/containers.conf"
OVERRIDE = REPO / "tests/deploy/compose.e2e.yaml"
READY_TIMEOUT = 90.0
TOKEN_PICKUP = 5.0
"""Seconds a new token may take to reach the running server (it re-reads within one)."""
STOP_TIMEOUT = 180.0
"""For `down`: PostgreSQL's stop grace period is 60 s, the API's 30 s (compose.yaml)."""
PROFILES = ("--profile", "direct", "--profile", "nginx", "--profile", "scale")
"""Every service of every mode: what a failure's logs and the teardown cover."""


def podman_env() -> dict[str, str]:
    """This environment with our podman settings, and none of the variables compose would
    prefer to the test's .env (the shell wins over .env in compose)."""
    leaks = (
        "APICLUB_",
        "NGINX_",
        "POSTGRES_",
        "COMPOSE_",
        "E2E_",
        "API_REPLICAS",
        "HTTPS_PORT",
        "HTTP_PORT",
        "PUBLISH_ADDRESS",
        "ROLLING_",
    )
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
    if (seconds := ensure_base_image()) is not None:
        built.seconds["base (debootstrap)"] = seconds
    for attempt in ("cold", "warm"):
        started = time.monotonic()
        run(
            "make",
            "image",
            f"BASE_IMAGE={BASE_IMAGE}",
            f"NGINX_BASE_IMAGE={BASE_IMAGE}",
            f"APICLUB_IMAGE={API_IMAGE}",
            f"NGINX_IMAGE={NGINX_IMAGE}",
            f"POSTGRES_IMAGE={POSTGRES_IMAGE}",
            cwd=REPO,
        )
        built.seconds[f"make image ({attempt})"] = time.monotonic() - started
    for image in (API_IMAGE, NGINX_IMAGE, POSTGRES_IMAGE):
        built.sizes[image] = run(
            "podman", "image", "inspect", "--format", "{{.Size}}", image
        ).stdout.strip()
    print(f"\ncontainer images: {built}")  # noqa: T201 (shown with -s, for the report)
    return built


def ensure_base_image() -> float | None:
    """Build the base image unless podman has it; the seconds it took, or None if it was there."""
    exists = subprocess.run(
        ["podman", "image", "exists", BASE_IMAGE], env=podman_env(), check=False
    )
    if exists.returncode == 0:
        return None
    started = time.monotonic()
    make_base_image()
    return time.monotonic() - started


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
    """One compose project (its own name, volumes and ports) driven by podman-compose."""

    name: str
    directory: Path
    https_port: int
    http_port: int
    api_ports: tuple[int, int]
    """The API replicas' plain HTTP ports behind nginx (the second one in profile scale)."""
    postgres_port: int
    env: dict[str, str] = field(default_factory=dict)

    def write_env(self, **values: str) -> None:
        """Set `values` in the project's .env (compose reads it at every command)."""
        self.env.update(values)
        lines = "".join(f"{key}={value}\n" for key, value in self.env.items())
        (self.directory / ".env").write_text(lines)

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

    def post(self, client: httpx.Client, name: str, task_name: str) -> httpx.Response:
        return client.post(
            self.url("/task/"),
            json={"name": task_name},
            headers={"host": name},
            extensions={"sni_hostname": name},
        )

    def wait_for(self, what: str, probe: Callable[[], str | None]) -> None:
        """Until `probe` returns None (ready), else fail with its last problem and the logs."""
        deadline = time.monotonic() + READY_TIMEOUT
        problem = "not started"
        while time.monotonic() < deadline:
            try:
                found = probe()
            except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
                found = repr(exc)
            if found is None:
                return
            problem = found
            time.sleep(1)
        logs = self.compose(*PROFILES, "logs", timeout=60)
        pytest.fail(
            f"{what}: not ready in {READY_TIMEOUT} s: {problem}\n{logs.stdout}\n{logs.stderr}"
        )

    def wait_ready(self, name: str = DOMAINS[0]) -> None:
        """Until GET / answers 200 over TLS for `name` (certificates exist, API migrated)."""

        def probe() -> str | None:
            if not (self.volume / "ca/root.pem").exists():
                return "no local CA in the data volume yet"
            with self.client() as client:
                response = self.get(client, name, "/")
            return answered(response, 200)

        self.wait_for(f"GET / for {name}", probe)

    def container(self, service: str) -> str:
        """The name podman-compose gives the service's (first) container."""
        return f"{self.name}_{service}_1"


def answered(response: httpx.Response, status: int) -> str | None:
    """None when `response` has `status`, else what it was instead."""
    if response.status_code == status:
        return None
    return (
        f"{response.request.method} {response.url} answered {response.status_code}: {response.text}"
    )


def replica_get(port: int, path: str) -> httpx.Response:
    """Ask one API replica directly (plain HTTP on loopback, as nginx does)."""
    return httpx.get(f"http://127.0.0.1:{port}{path}", headers={"host": DOMAINS[0]}, timeout=10)


@pytest.fixture
def project(images: Images, tmp_path: Path) -> Iterator[Project]:
    https_port, http_port, api_port, api_port_2, postgres_port, *metrics = free_ports(8)
    name = f"apiclub-e2e-{os.getpid()}"
    project = Project(name, tmp_path, https_port, http_port, (api_port, api_port_2), postgres_port)
    project.write_env(
        APICLUB_DOMAINS=",".join(DOMAINS),
        # Our public names would ask tokens for writes; these tests are about the containers
        # (tokens in a container: test_a_token_made_in_the_container_lets_writes_through).
        APICLUB_AUTH="off",
        HTTPS_PORT=str(https_port),
        HTTP_PORT=str(http_port),
        E2E_API_PORT=str(api_port),
        E2E_API_PORT_2=str(api_port_2),
        E2E_POSTGRES_PORT=str(postgres_port),
        E2E_METRICS_PORT=str(metrics[0]),
        E2E_METRICS_PORT_1=str(metrics[1]),
        E2E_METRICS_PORT_2=str(metrics[2]),
        # On the host's network the replicas of one service would share a port: one each.
        API_REPLICAS="1",
        E2E_UPSTREAM=f"127.0.0.1:{api_port}",
        APICLUB_IMAGE=API_IMAGE,
        NGINX_IMAGE=NGINX_IMAGE,
        POSTGRES_IMAGE=POSTGRES_IMAGE,
    )
    try:
        yield project
    finally:
        project.compose(*PROFILES, "down", "--volumes", timeout=STOP_TIMEOUT)
        label = f"label=io.podman.compose.project={name}"
        containers = run("podman", "ps", "--all", "--filter", label, "--format", "{{.Names}}")
        volumes = run("podman", "volume", "ls", "--filter", label, "--format", "{{.Name}}")
        assert containers.stdout.split() == [], "left behind by down"
        assert volumes.stdout.split() == [], "left behind by down --volumes"


def write_then_read_after_restart(project: Project, profile: str) -> None:
    """Write a task through each name, recreate the containers, read the tasks back."""
    ids = {}
    with project.client() as client:
        for name in DOMAINS:
            created = project.post(client, name, f"{profile} via {name}")
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


def test_a_token_made_in_the_container_lets_writes_through(project: Project) -> None:
    # As the README tells an operator: the default auto asks tokens for our public names.
    project.write_env(APICLUB_AUTH="auto")
    project.compose("--profile", "direct", "up", "--detach")
    project.wait_ready()
    made = run("podman", "exec", f"{project.name}_api_1", "apiclub", "tokens", "add", "e2e")
    token = made.stdout.strip()
    assert token.startswith("apiclub_"), made.stderr
    with project.client() as client:
        refused = project.post(client, DOMAINS[0], "without a token")
        # The running server reads a changed token file within a second (tokens/live.py).
        deadline = time.monotonic() + TOKEN_PICKUP
        while True:
            created = client.post(
                project.url("/task/"),
                json={"name": "with a token"},
                headers={"host": DOMAINS[0], "authorization": f"Bearer {token}"},
                extensions={"sni_hostname": DOMAINS[0]},
            )
            if created.status_code != 401 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert refused.status_code == 401, refused.text
    assert created.status_code == 201, created.text
    logs = project.compose("--profile", "direct", "logs", timeout=60)
    assert token not in logs.stdout + logs.stderr


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


def use_postgres_and_both_replicas(project: Project) -> None:
    """The .env of profile scale: a password, the URL the replicas use, both in nginx."""
    password = secrets.token_urlsafe(16)  # URL-safe, as the image's entrypoint requires
    project.write_env(
        POSTGRES_PASSWORD=password,
        APICLUB_DATABASE_URL=(
            f"postgresql://apiclub:{password}@127.0.0.1:{project.postgres_port}/apiclub"
        ),
        E2E_UPSTREAM=",".join(f"127.0.0.1:{port}" for port in project.api_ports),
    )


def wait_scale_ready(project: Project) -> None:
    """Each replica answers /db-check on its own port (PostgreSQL is up), then nginx answers.

    In that order: a request through nginx while no replica listens marks both down in that
    nginx worker (max_fails=1 fail_timeout=10s, per worker), and the worker's next request
    within 10 s answers 502 "no live upstreams" even though the replicas are up by then.
    """
    for port in project.api_ports:
        project.wait_for(
            f"replica on port {port}",
            lambda port=port: answered(replica_get(port, "/db-check"), 200),
        )
    project.wait_ready()
    for service in ("postgres", "api-behind-nginx", "api-behind-nginx-2"):
        run("podman", "healthcheck", "run", project.container(service))


def upstreams_that_served(project: Project, request_line: str) -> set[int]:
    """The replica ports that nginx's access log shows answering `request_line` with 200."""
    logs = run("podman", "logs", project.container("nginx"))
    pattern = re.compile(rf'"{re.escape(request_line)} HTTP/[\d.]+" 200 .* upstream=([\d.:, ]+) \(')
    served = set()
    for match in pattern.finditer(logs.stdout + logs.stderr):
        # With a retry nginx lists every replica tried; the last one answered.
        served.add(int(match.group(1).split(",")[-1].strip().rsplit(":", 1)[1]))
    return served


def psql(project: Project, query: str) -> list[str]:
    """The rows `query` gives in PostgreSQL itself, asked as its superuser over the local socket."""
    rows = run(
        "podman",
        "exec",
        "--user",
        "postgres",
        project.container("postgres"),
        "psql",
        "--host=/tmp",
        "--dbname=apiclub",
        "--no-align",
        "--tuples-only",
        f"--command={query}",
    )
    return rows.stdout.splitlines()


def tasks_in_postgres(project: Project) -> list[str]:
    """The task names in PostgreSQL, in the order they were stored."""
    return psql(project, "SELECT name FROM task ORDER BY id")


def test_scale_mode_balances_replicas_on_postgres_and_survives_losing_one(
    project: Project,
) -> None:
    use_postgres_and_both_replicas(project)
    project.compose("--profile", "scale", "up", "--detach")
    wait_scale_ready(project)
    with project.client() as client:
        for name in DOMAINS:
            response = project.get(client, name, "/db-check")
            assert response.json() == {"results": [1]}
            assert response.headers["server"] == "nginx"
        created = project.post(client, DOMAINS[0], "scaled")
        assert created.status_code == 201, created.text
        task = created.json()
        path = f"/task/{task['id']}"

        # Round robin: reading it back enough times reaches both replicas (a replica nginx
        # saw refuse a connection at start is left alone for 10 s, hence a bound, not a count).
        def both_served() -> str | None:
            response = project.get(client, DOMAINS[1], path)
            assert response.json() == task
            served = upstreams_that_served(project, f"GET {path}")
            return None if served == set(project.api_ports) else f"only {served} served"

        project.wait_for("GET through nginx reaching both replicas", both_served)
    # They share PostgreSQL: each one's own port has the task.
    for port in project.api_ports:
        assert replica_get(port, path).json() == task
    assert replica_get(project.api_ports[0], "/task/999999").status_code == 404

    run("podman", "stop", "--time", "30", project.container("api-behind-nginx-2"))
    with pytest.raises(httpx.ConnectError):
        replica_get(project.api_ports[1], "/")
    written = [task]
    with project.client() as client:
        for attempt in range(4):  # enough for round robin to pick the stopped one
            name = DOMAINS[attempt % 2]
            created = project.post(client, name, f"one replica down {attempt}")
            assert created.status_code == 201, created.text
            written.append(created.json())
            response = project.get(client, name, f"/task/{written[-1]['id']}")
            assert response.json() == written[-1]

    project.compose("--profile", "scale", "down", timeout=STOP_TIMEOUT)
    project.compose("--profile", "scale", "up", "--detach")
    wait_scale_ready(project)
    with project.client() as client:
        for expected in written:
            response = project.get(client, DOMAINS[0], f"/task/{expected['id']}")
            assert response.json() == expected
    assert tasks_in_postgres(project) == [expected["name"] for expected in written]


REPLICAS = ("api-behind-nginx", "api-behind-nginx-2")
"""The scale profile's replicas under the e2e override: a service each (one port each)."""


def task_ids_in_postgres(project: Project) -> set[int]:
    """The task ids in PostgreSQL itself: where every acknowledged write must be."""
    return {int(row) for row in psql(project, "SELECT id FROM task") if row.strip()}


def started_at(project: Project) -> dict[str, str]:
    """When each replica's container last started: a restart changes it."""
    return {
        service: run(
            "podman", "inspect", "--format", "{{.State.StartedAt}}", project.container(service)
        ).stdout.strip()
        for service in REPLICAS
    }


def scale_under_load(project: Project, deploy: Callable[[], None], label: str) -> LoadResult:
    """Profile scale up and ready, then the load through nginx across `deploy()`; printed."""
    use_postgres_and_both_replicas(project)
    project.compose("--profile", "scale", "up", "--detach")
    wait_scale_ready(project)
    before = started_at(project)
    began = time.monotonic()
    result = run_load(
        lambda: project.https_port, project.volume / "ca/root.pem", deploy, host=DOMAINS[0]
    )
    sys.stdout.write(f"{label}: {time.monotonic() - began:.0f} s under load\n")
    after = started_at(project)
    assert all(before[service] != after[service] for service in REPLICAS), (before, after)
    return result


def test_make_rolling_restart_under_load_fails_no_request_and_loses_no_write(
    project: Project,
) -> None:
    # The real script, through make, as the README tells an operator to run it.
    def rolling_restart() -> None:
        env = {
            **podman_env(),
            "COMPOSE_PROJECT_NAME": project.name,
            "ROLLING_SERVICES": " ".join(REPLICAS),
        }
        done = subprocess.run(
            ["make", "--no-print-directory", "rolling-restart"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        sys.stdout.write(done.stderr)
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
        assert "done: 2 replicas restarted" in done.stderr

    label = "make rolling-restart (nginx, 2 replicas, PostgreSQL)"
    result = scale_under_load(project, rolling_restart, label)
    assert_no_loss_in(result, lambda: task_ids_in_postgres(project), label)


def test_restarting_every_replica_at_once_under_the_same_load_fails_requests(
    project: Project,
) -> None:
    containers = [project.container(service) for service in REPLICAS]

    def restart_all_at_once() -> None:
        run("podman", "stop", "--time", "30", *containers)
        run("podman", "start", *containers)
        for container in containers:
            project.wait_for(
                f"{container} healthy",
                lambda container=container: answered_health(container),
            )
        # Until nginx answers again (it leaves a replica that refused alone for 10 s): the
        # load runs across the whole gap, so its length is measured, not cut short.
        project.wait_ready()

    label = "every replica restarted at once"
    result = scale_under_load(project, restart_all_at_once, label)
    sys.stdout.write(result.summary(label) + "\n")
    assert len(result.failures) > 0, result.summary("the load saw no gap")
    assert result.longest_gap > 1, result.summary("no gap")
    sys.stdout.write(f"first failures: {result.failures[:3]}\n")
    # Refused requests, yes; an acknowledged write lost, never.
    assert_writes_kept(result, task_ids_in_postgres(project))


def answered_health(container: str) -> str | None:
    """None once the image's health check passes in `container`."""
    check = subprocess.run(
        ["podman", "healthcheck", "run", container],
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return None if check.returncode == 0 else f"health check: {check.stdout}{check.stderr}"


def test_direct_mode_reloads_on_hup_failing_no_request_and_stops_at_once(
    project: Project,
) -> None:
    # The container's PID 1 is apiclub's parent: HUP reloads in place; a new image would be
    # a new container (README "Deploys": use the nginx or scale profile's rolling restart).
    project.compose("--profile", "direct", "up", "--detach")
    project.wait_ready()
    container = project.container("api")

    def logs() -> str:
        found = run("podman", "logs", container)
        return found.stdout + found.stderr

    def reload() -> None:
        run("podman", "kill", "--signal", "HUP", container)
        project.wait_for(
            "generation 1", lambda: None if "generation 1 serving" in logs() else "not yet"
        )

    root = project.volume / "ca/root.pem"
    result = run_load(lambda: project.https_port, root, reload, host=DOMAINS[0])
    assert_no_loss(result, project.volume / "api.db", "HUP reload inside the container")
    # The stop with an idle keep-alive pool open ends far inside podman's 10 s timeout.
    context = ssl.create_default_context(cafile=str(root))
    with contextlib.ExitStack() as pool:
        for http2 in (False, False, True, True):
            client = pool.enter_context(httpx.Client(verify=context, http2=http2, timeout=10))
            answer = client.get(
                project.url("/"),
                headers={"host": DOMAINS[0]},
                extensions={"sni_hostname": DOMAINS[0]},
            )
            assert answer.status_code == 200
        began = time.monotonic()
        run("podman", "stop", "--time", "10", container)
        took = time.monotonic() - began
    status = run("podman", "inspect", "--format", "{{.State.ExitCode}}", container).stdout
    sys.stdout.write(f"podman stop with an idle pool open: {took:.2f} s, exit {status.strip()}\n")
    assert status.strip() == "0", logs()[-3000:]
    assert took < 5, logs()[-3000:]
