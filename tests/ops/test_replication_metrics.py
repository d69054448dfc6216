"""The replication metrics on a real server replicating to file://, scraped from its admin
listener and by a real Prometheus: sane while in step, and showing a killed Litestream and a
replica that can no longer be written."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from apiclub.backup.replica_watch import CHECK_EVERY
from tests.backup.helpers import WriteLoad, require_tool
from tests.backup.test_replication import _children
from tests.ops.helpers import Served, prometheus, served
from tests.ops.test_prometheus import check_dashboard

IN_STEP = 3.0
"""Seconds of lag a replica in step may show: Litestream's sync interval (1 s), its WAL poll,
and a check racing a write on a loaded machine."""


def scrape(api: Served) -> dict[str, float]:
    status, body = api.admin("/metrics")
    assert status == 200, body
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name.startswith("apiclub_replication_")
    }


def wait_until(
    api: Served,
    holds: Callable[[dict[str, float]], bool],
    timeout: float = 30.0,
    every: float = 0.2,
) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while not holds(metrics := scrape(api)):
        assert time.monotonic() < deadline, (
            f"timed out; last scrape: {metrics}; {api.log()[-3000:]}"
        )
        time.sleep(every)
    return metrics


def test_replication_metrics_show_lag_a_killed_litestream_and_a_lost_replica(
    tmp_path: Path,
) -> None:
    require_tool("litestream")
    replica = tmp_path / "replica"
    with (
        served(tmp_path / "data", "--replicate", f"file://{replica}") as api,
        prometheus(tmp_path, f"127.0.0.1:{api.admin_port}") as prom,
    ):
        load = WriteLoad(f"https://localhost:{api.port}", api.data_dir / "ca/root.pem", writers=1)
        load.start()
        try:
            load.wait_for(20)
            # In step: up, readable, and the lag of a check after the writes began is small.
            started = time.time()
            healthy = wait_until(
                api,
                lambda m: m.get("apiclub_replication_last_check_timestamp_seconds", 0) > started,
                timeout=3 * CHECK_EVERY,
            )
            assert healthy["apiclub_replication_up"] == 1.0
            assert healthy["apiclub_replication_replica_reachable"] == 1.0
            assert 0.0 <= healthy["apiclub_replication_lag_seconds"] <= IN_STEP, healthy
            assert healthy["apiclub_replication_restarts_total"] == 0.0
            seen = prom.wait_for("apiclub_replication_lag_seconds", lambda r: bool(r))
            assert 0.0 <= float(seen[0]["value"][1]) <= IN_STEP, seen
            check_dashboard(prom, replicating=True)

            # Litestream killed: down until the supervisor's restart (1 s later), counted.
            (litestream,) = _children(api.process.pid)
            os.kill(litestream, signal.SIGKILL)
            wait_until(api, lambda m: m["apiclub_replication_up"] == 0.0, timeout=5, every=0.05)
            back = wait_until(api, lambda m: m["apiclub_replication_up"] == 1.0)
            assert back["apiclub_replication_restarts_total"] == 1.0

            # The replica can no longer be written (a file where its directory was): it is
            # reported unreadable, and the lag grows with the writes it lacks.
            shutil.rmtree(replica)
            replica.write_text("not a directory\n")
            lost = wait_until(
                api,
                lambda m: (
                    m.get("apiclub_replication_replica_reachable") == 0.0
                    and m.get("apiclub_replication_lag_seconds", 0) > 2 * IN_STEP
                ),
                timeout=10 * CHECK_EVERY,
            )
            assert lost["apiclub_replication_errors_total"] > 0
        finally:
            load.stop()
        assert "cannot read the replica" in api.log()


def test_without_replication_no_replication_metric_is_exported(tmp_path: Path) -> None:
    with served(tmp_path / "data") as api:
        assert scrape(api) == {}
        status, body = api.admin("/metrics")
        assert status == 200 and "apiclub_build_info" in body
