"""Static checks of the deploy files, each with a twin proving the tool does catch faults."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.deploy.helpers import NGINX_DIR, REPO, dev_tool, tool

CONTAINERFILES = (
    REPO / "Containerfile",
    NGINX_DIR / "Containerfile",
    REPO / "deploy/postgres/Containerfile",
)
SCRIPTS = (
    NGINX_DIR / "render.sh",
    NGINX_DIR / "entrypoint.sh",
    REPO / "deploy/postgres/entrypoint.sh",
    REPO / "deploy/rolling-restart.sh",
)


def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=60, check=False
    )


def check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    checker = dev_tool("check-jsonschema")
    return run(checker, "--builtin-schema", "vendor.compose-spec", path)


def test_compose_file_follows_the_compose_spec() -> None:
    result = check_compose(REPO / "compose.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_spec_check_catches_a_wrong_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  api:\n    image: x\n    ports: 443\n    restart: sometimes\n")
    result = check_compose(broken)
    assert result.returncode == 1
    assert "ports" in result.stdout


@pytest.mark.parametrize("containerfile", CONTAINERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_containerfiles_pass_hadolint(containerfile: Path) -> None:
    hadolint = dev_tool("hadolint")
    result = run(hadolint, containerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_careless_containerfile(tmp_path: Path) -> None:
    hadolint = dev_tool("hadolint")
    careless = tmp_path / "Containerfile"
    careless.write_text("FROM python:latest\nRUN pip install litestar\nRUN cd /app\n")
    result = run(hadolint, "--no-color", careless)
    assert result.returncode == 1
    for rule in ("DL3007", "DL3013", "DL3003"):  # :latest, unpinned pip, cd instead of WORKDIR
        assert rule in result.stdout


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_pass_shellcheck_as_posix_sh(script: Path) -> None:
    shellcheck = dev_tool("shellcheck")
    result = run(shellcheck, "--shell=sh", script)
    assert result.returncode == 0, result.stdout


def test_shellcheck_catches_a_bashism(tmp_path: Path) -> None:
    shellcheck = dev_tool("shellcheck")
    script = tmp_path / "x.sh"
    script.write_text("#!/bin/sh\nif [[ -f $1 ]]; then cat $1; fi\n")
    result = run(shellcheck, "--shell=sh", script)
    assert result.returncode == 1
    assert "SC3010" in result.stdout  # [[ ]] is not POSIX


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", package="systemd")
    # verify checks that ExecStart exists: point it at this checkout's apiclub.
    unit = (REPO / "deploy/systemd/apiclub.service").read_text()
    assert "ExecStart=/opt/apiclub/bin/apiclub serve" in unit
    apiclub = Path(dev_tool("apiclub"))
    copy = tmp_path / "apiclub.service"
    copy.write_text(unit.replace("/opt/apiclub/bin/apiclub", str(apiclub)))
    # Its sockets' unit beside it (Requires=apiclub.socket).
    socket_unit = tmp_path / "apiclub.socket"
    socket_unit.write_text((REPO / "deploy/systemd/apiclub.socket").read_text())
    result = run(analyze, "verify", socket_unit, copy)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_systemd_socket_unit_names_the_sockets_apiclub_takes() -> None:
    lines = (REPO / "deploy/systemd/apiclub.socket").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if "=" in line and not line.startswith("#")]
    listens = [(k, v) for k, v in pairs if k in ("ListenStream", "FileDescriptorName")]
    assert listens == [
        ("ListenStream", "443"),
        ("FileDescriptorName", "https"),
        ("ListenStream", "80"),
        ("FileDescriptorName", "http"),
    ]
    assert ("Accept", "no") in [(k, v) for k, v in pairs]


def test_systemd_verify_catches_a_misplaced_setting(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", package="systemd")
    apiclub = dev_tool("apiclub")
    unit = tmp_path / "broken.service"
    unit.write_text(
        f"[Service]\nExecStart={apiclub} serve\nStartLimitIntervalSec=60\nProtectSystem=maybe\n"
    )
    result = run(analyze, "verify", unit)
    assert "Unknown key 'StartLimitIntervalSec' in section [Service]" in result.stderr
    assert "Failed to parse protect system value, ignoring: maybe" in result.stderr


def test_systemd_unit_runs_unprivileged_and_hardened() -> None:
    settings = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in (REPO / "deploy/systemd/apiclub.service").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert settings["User"] == "apiclub"
    # systemd binds the ports (apiclub.socket): no capability at all.
    assert settings["AmbientCapabilities"] == ""
    assert settings["CapabilityBoundingSet"] == ""
    assert settings["Type"] == "notify"
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert settings["StateDirectory"] == "apiclub"
    assert settings["Restart"] == "on-failure"
    assert settings["LimitNOFILE"] == "65536"  # issue 14: the connection cap derives from it
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
    }.items():
        assert settings[key] == value
