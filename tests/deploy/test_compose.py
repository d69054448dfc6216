"""compose.yaml as podman-compose renders it: which service runs and publishes what, per mode."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.helpers import REPO, clean_env, dev_tool, tool

SCALE_ENV = (REPO / ".env.example").read_text() + (
    "API_REPLICAS=3\nPOSTGRES_PASSWORD=pw\n"
    "APICLUB_DATABASE_URL=postgresql://apiclub:pw@postgres:5432/apiclub\n"
)


def compose(
    tmp_path: Path, *profiles: str, command: tuple[str, ...], env: str | None, **extra: str
) -> subprocess.CompletedProcess[str]:
    """`podman-compose [--profile P]... COMMAND` in a folder holding compose.yaml and `env`."""
    podman_compose = dev_tool("podman-compose")
    # podman-compose asks podman for its version before rendering anything.
    tool("podman", package="podman")
    if not (tmp_path / "compose.yaml").exists():
        shutil.copy(REPO / "compose.yaml", tmp_path / "compose.yaml")
    text = (REPO / ".env.example").read_text() if env is None else env
    (tmp_path / ".env").write_text(text)
    arguments = [arg for profile in profiles for arg in ("--profile", profile)]
    if command[0] == "up":
        arguments = ["--verbose", "--dry-run", *arguments]
    result = subprocess.run(
        [podman_compose, *arguments, *command],
        cwd=tmp_path,
        env=clean_env(**extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(result.stderr)
    return result


def config(tmp_path: Path, *profiles: str, env: str | None = None, **extra: str) -> Any:
    """The file as podman-compose renders it for `profiles`."""
    result = compose(tmp_path, *profiles, command=("config",), env=env, **extra)
    return yaml.safe_load(result.stdout)


def containers(tmp_path: Path, *profiles: str, env: str, up: tuple[str, ...] = ()) -> list[str]:
    """The containers `up` would create (podman-compose's dry run prints its podman commands)."""
    command = ("up", "-d", *up)
    result = compose(tmp_path, *profiles, command=command, env=env)
    return sorted(set(re.findall(r"--name=(apiclub_[\w-]+)", result.stdout + result.stderr)))


def publishers(rendered: Any) -> dict[str, list[str]]:
    """Host port -> services publishing it (ports are ADDRESS:HOST:CONTAINER here)."""
    found: dict[str, list[str]] = {}
    for name, service in (rendered.get("services") or {}).items():
        for port in service.get("ports", []):
            found.setdefault(str(port).split(":")[-2], []).append(name)
    return found


def test_direct_mode_runs_the_api_alone_on_443_and_80(tmp_path: Path) -> None:
    rendered = config(tmp_path, "direct")
    assert set(rendered["services"]) == {"api"}
    api = rendered["services"]["api"]
    assert api["ports"] == ["0.0.0.0:443:8443", "0.0.0.0:80:8080"]
    assert api["volumes"] == ["data:/data", "backups:/backups"]
    assert api["environment"]["APICLUB_DOMAINS"] == "apiclub.com,api.apiclub.com"
    assert api["environment"]["APICLUB_PUBLIC_HTTPS_PORT"] == "443"
    assert "APICLUB_TLS" not in api["environment"]  # the image's default: automatic HTTPS
    assert {k: int(v) for k, v in api["ulimits"]["nofile"].items()} == {
        "soft": 65536,
        "hard": 65536,
    }


def test_nginx_mode_publishes_nginx_only_and_hides_the_api(tmp_path: Path) -> None:
    rendered = config(tmp_path, "nginx")
    assert set(rendered["services"]) == {"api-behind-nginx", "nginx"}
    api, nginx = rendered["services"]["api-behind-nginx"], rendered["services"]["nginx"]
    assert "ports" not in api
    assert nginx["ports"] == ["0.0.0.0:443:443", "0.0.0.0:80:80"]
    environment = api["environment"]
    assert environment["APICLUB_TLS"] == "off"
    assert environment["APICLUB_MANAGE_CERTS"] == "1"
    assert environment["APICLUB_TRUSTED_PROXIES"] == "10.89.201.0/24"
    assert rendered["networks"]["backend"]["ipam"]["config"] == [{"subnet": "10.89.201.0/24"}]
    # nginx reaches the API where it listens, and reads the certificates it writes.
    assert (
        nginx["environment"]["NGINX_UPSTREAM"]
        == f"api-behind-nginx:{environment['APICLUB_HTTP_PORT']}"
    )
    assert api["volumes"] == ["data:/data", "backups:/backups"]
    assert nginx["volumes"] == ["data:/data:ro"]
    assert {k: int(v) for k, v in api["ulimits"]["nofile"].items()} == {
        "soft": 65536,
        "hard": 65536,
    }
    assert nginx["environment"]["NGINX_CERT_FILE"].startswith("/data/certs/")
    assert "api-behind-nginx" in nginx["depends_on"]


def test_scale_mode_is_nginx_mode_plus_postgres_on_the_backend_only(tmp_path: Path) -> None:
    rendered = config(tmp_path, "scale", env=SCALE_ENV)
    assert set(rendered["services"]) == {"api-behind-nginx", "nginx", "postgres"}
    api, postgres = rendered["services"]["api-behind-nginx"], rendered["services"]["postgres"]
    assert api["environment"]["APICLUB_DATABASE_URL"] == (
        "postgresql://apiclub:pw@postgres:5432/apiclub"
    )
    assert api["deploy"] == {"mode": "replicated", "replicas": "3"}
    assert "ports" not in postgres
    assert postgres["networks"] == ["backend"]
    assert postgres["volumes"] == ["pgdata:/var/lib/postgresql/data"]
    assert "pgdata" in rendered["volumes"]
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    # Only the backend network may log in, the same network the API trusts nginx on.
    assert postgres["environment"]["POSTGRES_NETWORK"] == "10.89.201.0/24"
    assert postgres["environment"]["POSTGRES_PASSWORD"] == "pw"


def test_scale_combined_with_nginx_is_the_same_set(tmp_path: Path) -> None:
    alone = config(tmp_path, "scale", env=SCALE_ENV)
    assert config(tmp_path, "nginx", "scale", env=SCALE_ENV) == alone


def test_nginx_mode_keeps_one_replica_on_sqlite(tmp_path: Path) -> None:
    api = config(tmp_path, "nginx")["services"]["api-behind-nginx"]
    assert api["deploy"]["replicas"] == "1"
    assert api["environment"]["APICLUB_DATABASE_URL"] == ""


def test_podman_compose_starts_one_container_per_replica(tmp_path: Path) -> None:
    api = [f"apiclub_api-behind-nginx_{n}" for n in (1, 2, 3)]
    assert containers(tmp_path, "scale", env=SCALE_ENV) == [
        *api,
        "apiclub_nginx_1",
        "apiclub_postgres_1",
    ]
    scaled = containers(tmp_path, "scale", env=SCALE_ENV, up=("--scale", "api-behind-nginx=2"))
    assert [name for name in scaled if "api-behind" in name] == api[:2]


def test_podman_compose_ignores_replicas_without_the_replicated_mode(tmp_path: Path) -> None:
    # The twin, and why compose.yaml writes `mode: replicated` (podman-compose 1.6 needs it).
    text = (REPO / "compose.yaml").read_text().replace("      mode: replicated\n", "")
    (tmp_path / "compose.yaml").write_text(text)
    started = containers(tmp_path, "scale", env=SCALE_ENV)
    assert [name for name in started if "api-behind" in name] == ["apiclub_api-behind-nginx_1"]


@pytest.mark.parametrize("profile", ["direct", "nginx", "scale"])
def test_each_mode_has_exactly_one_service_on_each_host_port(tmp_path: Path, profile: str) -> None:
    found = publishers(config(tmp_path, profile))
    assert set(found) == {"443", "80"}
    assert all(len(services) == 1 for services in found.values()), found


def test_mixing_profiles_would_bind_the_ports_twice(tmp_path: Path) -> None:
    # The twin, and why the README warns: profiles only add services, and podman-compose takes
    # the union of --profile and COMPOSE_PROFILES.
    found = publishers(config(tmp_path, "nginx", COMPOSE_PROFILES="direct"))
    assert sorted(found["443"]) == ["api", "nginx"]


def test_a_bare_up_selects_no_service(tmp_path: Path) -> None:
    assert not config(tmp_path).get("services")


def test_ports_and_names_come_from_the_env_file(tmp_path: Path) -> None:
    env = (
        "APICLUB_DOMAINS=example.org\nHTTPS_PORT=8443\nHTTP_PORT=8080\nPUBLISH_ADDRESS=127.0.0.1\n"
    )
    rendered = config(tmp_path, "nginx", env=env)
    nginx = rendered["services"]["nginx"]
    assert nginx["ports"] == ["127.0.0.1:8443:443", "127.0.0.1:8080:80"]
    assert nginx["environment"]["APICLUB_PUBLIC_HTTPS_PORT"] == "8443"  # named in redirects
    assert rendered["services"]["api-behind-nginx"]["environment"]["APICLUB_DOMAINS"] == (
        "example.org"
    )


def test_missing_domains_stop_compose_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match=r"set APICLUB_DOMAINS in \.env"):
        config(tmp_path, "direct", env="HTTPS_PORT=443\n")


def test_both_api_services_get_apiclub_auth_auto_by_default_or_from_the_env_file(
    tmp_path: Path,
) -> None:
    services = ("api", "api-behind-nginx")
    default = config(tmp_path, "direct", "nginx", env="APICLUB_DOMAINS=example.org\n")
    assert [default["services"][s]["environment"]["APICLUB_AUTH"] for s in services] == [
        "auto",
        "auto",
    ]
    chosen = config(
        tmp_path, "direct", "nginx", env="APICLUB_DOMAINS=example.org\nAPICLUB_AUTH=all\n"
    )
    assert [chosen["services"][s]["environment"]["APICLUB_AUTH"] for s in services] == [
        "all",
        "all",
    ]
