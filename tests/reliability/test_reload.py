"""Deploys that refuse no request (issue #15): SIGHUP reloads, an upgrade, a failed reload.

The load (deploy_load.py): 4 clients, a new verified TLS connection per request, GET / and
POST /task/ alternating. Each deploy must cost zero failed requests and zero lost acknowledged
writes; the longest gap between two answers is printed (`pytest -s`; docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import ssl
import sys
import urllib.request
from pathlib import Path

import httpx

import apiclub
from tests.reliability.deploy_load import (
    Running,
    assert_no_loss,
    clean_env,
    run_load,
    serving,
    stored_ids,
)

RELOADS = 5


def reload_times(server: Running, count: int) -> None:
    for generation in range(1, count + 1):
        server.reload(generation)


def test_five_reloads_of_one_process_fail_no_request(tmp_path: Path) -> None:
    with serving(tmp_path) as server:
        result = run_load(lambda: server.port, server.root, lambda: reload_times(server, RELOADS))
        assert server.process.poll() is None, server.log()[-3000:]
    assert_no_loss(result, tmp_path / "api.db", "5 reloads, 1 process")
    assert server.process.returncode == 0, server.log()[-3000:]
    assert server.log().count("SIGHUP: starting generation") == RELOADS


def test_five_reloads_of_two_workers_fail_no_request(tmp_path: Path) -> None:
    with serving(tmp_path, "--workers", "2") as server:
        result = run_load(lambda: server.port, server.root, lambda: reload_times(server, RELOADS))
    assert_no_loss(result, tmp_path / "api.db", "5 reloads, --workers 2")
    assert server.process.returncode == 0, server.log()[-3000:]
    # One by one: each generation's two new workers, each ready before its old one stops.
    assert server.log().count("serving (generation 5)") == 2, server.log()[-3000:]


def openapi_version(server: Running) -> str:
    context = ssl.create_default_context(cafile=str(server.root))
    url = f"https://localhost:{server.port}/schema/openapi.json"
    with urllib.request.urlopen(url, context=context, timeout=10) as answer:
        return str(json.load(answer)["info"]["version"])


def test_an_upgrade_between_two_reloads_is_what_answers_after(tmp_path: Path) -> None:
    installed = tmp_path / "site"
    shutil.copytree(Path(apiclub.__file__).parent, installed / "apiclub")
    data_dir = tmp_path / "data"
    env = clean_env(data_dir, PYTHONPATH=str(installed))
    init = installed / "apiclub" / "__init__.py"

    def upgrade() -> None:
        server.reload(1)
        init.write_text(init.read_text().replace(apiclub.__version__, "99.0.0-upgraded"))
        server.reload(2)

    with serving(data_dir, env=env) as server:
        before = openapi_version(server)
        result = run_load(lambda: server.port, server.root, upgrade)
        after = openapi_version(server)
    assert (before, after) == (apiclub.__version__, "99.0.0-upgraded")
    assert_no_loss(result, data_dir / "api.db", "upgrade (code changed between two reloads)")


def test_a_reload_with_a_broken_setting_keeps_the_old_generation_serving(
    tmp_path: Path,
) -> None:
    env_file = tmp_path / "apiclub.env"
    env_file.write_text("APICLUB_GRACE_PERIOD=5\n")
    data_dir = tmp_path / "data"
    env = clean_env(data_dir, APICLUB_ENV_FILE=str(env_file))

    def break_then_fix() -> None:
        env_file.write_text("APICLUB_GRACE_PERIOD=soon\n")
        server.process.send_signal(signal.SIGHUP)
        server.wait_for_log("reload failed")
        env_file.write_text("APICLUB_GRACE_PERIOD=5\n")
        server.reload(2)

    with serving(data_dir, env=env) as server:
        result = run_load(lambda: server.port, server.root, break_then_fix)
        log = server.log()
    assert_no_loss(
        result, data_dir / "api.db", "a failed reload (broken env file), then a fixed one"
    )
    # The log says why, and that the old generation still serves.
    failed = [line for line in log.splitlines() if "reload failed" in line]
    assert len(failed) == 1, log[-3000:]
    assert "APICLUB_GRACE_PERIOD='soon'" in failed[0], failed
    assert "generation 0 keeps serving" in failed[0], failed
    assert server.process.returncode == 0, log[-3000:]


def test_reloads_fail_no_http2_request_either(tmp_path: Path) -> None:
    # Browsers speak HTTP/2: a connection a retiring worker accepted gets GOAWAY, not a reset.
    failures: list[str] = []
    created: list[int] = []

    async def client(port: int, stop: asyncio.Event) -> None:
        context = ssl.create_default_context(cafile=str(tmp_path / "ca/root.pem"))
        while not stop.is_set():
            try:
                async with httpx.AsyncClient(verify=context, http2=True, timeout=20) as http:
                    answer = await http.post(f"https://localhost:{port}/task/", json={"name": "h2"})
            except httpx.HTTPError as exc:
                failures.append(repr(exc))
                continue
            if answer.status_code != 201 or answer.http_version != "HTTP/2":
                failures.append(f"{answer.http_version} {answer.status_code}")
                continue
            created.append(answer.json()["id"])

    async def load(server: Running) -> None:
        stop = asyncio.Event()
        clients = [asyncio.create_task(client(server.port, stop)) for _ in range(4)]
        await asyncio.sleep(0.5)
        await asyncio.to_thread(reload_times, server, 3)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*clients)

    with serving(tmp_path) as server:
        asyncio.run(load(server))
    sys.stdout.write(f"3 reloads, HTTP/2: {len(created)} answered, {len(failures)} failed\n")
    assert failures == []
    assert len(created) > 50
    assert set(created) <= stored_ids(tmp_path / "api.db")
