"""compose.yaml as podman-compose renders it: which service runs and publishes what, per mode."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.helpers import REPO, clean_env, tool

yaml = pytest.importorskip("yaml", reason="PyYAML comes with podman-compose (dev extra)")


def config(tmp_path: Path, *profiles: str, env: str | None = None, **extra: str) -> Any:
    """`podman-compose [--profile P]... config` in a folder holding compose.yaml and `env`."""
    compose = tool("podman-compose", why="pip install podman-compose, in the dev extra")
    shutil.copy(REPO / "compose.yaml", tmp_path / "compose.yaml")
    text = (REPO / ".env.example").read_text() if env is None else env
    (tmp_path / ".env").write_text(text)
    arguments = [arg for profile in profiles for arg in ("--profile", profile)]
    result = subprocess.run(
        [compose, *arguments, "config"],
        cwd=tmp_path,
        env=clean_env(**extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(result.stderr)
    return yaml.safe_load(result.stdout)


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
    assert api["volumes"] == ["data:/data"]
    assert api["environment"]["APICLUB_DOMAINS"] == "apiclub.com,api.apiclub.com"
    assert api["environment"]["APICLUB_PUBLIC_HTTPS_PORT"] == "443"
    assert "APICLUB_TLS" not in api["environment"]  # the image's default: automatic HTTPS


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
    assert api["volumes"] == ["data:/data"]
    assert nginx["volumes"] == ["data:/data:ro"]
    assert nginx["environment"]["NGINX_CERT_FILE"].startswith("/data/certs/")
    assert "api-behind-nginx" in nginx["depends_on"]


@pytest.mark.parametrize("profile", ["direct", "nginx"])
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
