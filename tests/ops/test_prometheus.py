"""A real Prometheus scrapes a real `apiclub serve` with the shipped scrape configuration."""

from __future__ import annotations

import json
import re
import ssl
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from tests.ops.helpers import SHIPPED, Prometheus, Served, free_port, prometheus, served
from tests.processes import run_apiclub

pytestmark = pytest.mark.timeout(180)

SENT = Counter(
    {
        ("GET", "/", "200"): 5,
        ("POST", "/task", "201"): 3,
        ("GET", "/task/{task_id}", "404"): 2,
        ("POST", "/task", "400"): 1,
    }
)


def send_requests(api: Served) -> None:
    """What SENT counts, each on a connection of its own (so the workers share them)."""
    context = api.client_context()

    def one(method: str, path: str, **kwargs: object) -> int:
        with httpx.Client(verify=context, base_url=f"https://localhost:{api.port}") as client:
            return client.request(method, path, **kwargs).status_code  # type: ignore[arg-type]

    assert [one("GET", "/") for _ in range(5)] == [200] * 5
    assert [one("POST", "/task/", json={"name": f"t{i}"}) for i in range(3)] == [201] * 3
    assert [one("GET", f"/task/{999_000 + i}") for i in range(2)] == [404] * 2
    assert one("POST", "/task/", json={"name": ""}) == 400


def scraped_counts(result: list[dict]) -> Counter:
    counts: Counter = Counter()
    for sample in result:
        labels = sample["metric"]
        counts[(labels["method"], labels["route"], labels["status"])] = int(
            float(sample["value"][1])
        )
    return +counts


def served_leaf(api: Served) -> x509.Certificate:
    context = api.client_context()
    with (
        ssl.create_connection(("127.0.0.1", api.port)) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


@pytest.mark.parametrize("workers", [1, 2])
def test_counts_by_route_and_status_match_what_was_sent(tmp_path: Path, workers: int) -> None:
    data = tmp_path / "data"
    with (
        served(data, "--workers", str(workers)) as api,
        prometheus(tmp_path, f"127.0.0.1:{api.admin_port}") as prom,
    ):
        send_requests(api)
        result = prom.wait_for("apiclub_http_requests_total", lambda r: scraped_counts(r) == SENT)
        assert scraped_counts(result) == SENT
        # The failure twin of the match: raw paths never become labels.
        assert prom.query('apiclub_http_requests_total{route=~"/task/[0-9]+"}') == []
        assert prom.values("up", "job") == {"apiclub": 1.0}
        if workers == 2:
            pids = set(re.findall(r"\[(\d+)\] apiclub\.access", api.log()))
            assert len(pids) == 2, "both workers answered, and the parent summed them"

        # A certificate's expiry metric equals its notAfter, and `certs list` says the same.
        leaf = served_leaf(api)
        expiry = prom.values("apiclub_certificate_expiry_timestamp_seconds", "name")
        assert expiry["localhost"] == leaf.not_valid_after_utc.timestamp()
        listed = run_apiclub("certs", "list", data_dir=data)
        assert f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M}" in listed.stdout
        # No ACME here: no renewal attempt, so no failure (the twin of the test below).
        assert prom.query("apiclub_certificate_renewal_attempts_total") == []
        assert prom.values("apiclub_ready", "job") == {"apiclub": 1.0}
        if workers == 1:
            check_dashboard(prom)


REPLICATION_METRICS = (
    "apiclub_replication_up",
    "apiclub_replication_lag_seconds",
    "apiclub_replication_replica_reachable",
    "apiclub_replication_last_check_timestamp_seconds",
    "apiclub_replication_restarts_total",
    "apiclub_replication_errors_total",
)


def check_dashboard(prom: Prometheus, replicating: bool = False) -> None:
    """Every expression of the shipped Grafana dashboard is valid PromQL and names metrics
    that a running apiclub exports (labelled counters appear at their first sample: ACME
    renewals, port-80 answers, database refusals are absent here; the replication metrics
    exist with `--replicate` only, and `replicating` says the server runs with it)."""
    dashboard = json.loads((SHIPPED / "grafana-dashboard.json").read_text())
    exported = {s["metric"]["__name__"] for s in prom.query('{__name__=~"apiclub_.+"}')}
    acme_only = {
        "apiclub_certificate_renewal_consecutive_failures",
        "apiclub_certificate_renewal_attempts_total",
        "apiclub_redirect_answers_total",
        "apiclub_db_unavailable_answers_total",
    }
    if not replicating:
        acme_only |= set(REPLICATION_METRICS)
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(expressions) >= 12
    for expr in expressions:
        concrete = expr.replace("$__rate_interval", "1m").replace("$instance", ".+")
        prom.query(concrete)  # raises unless Prometheus accepts it
        for name in re.findall(r"\bapiclub_\w+", expr):
            assert name in exported | acme_only, f"{name} in the dashboard is not exported"


def test_a_wrong_target_is_down_and_counts_nothing(tmp_path: Path) -> None:
    with prometheus(tmp_path, f"127.0.0.1:{free_port()}") as prom:
        result = prom.wait_for("up", lambda r: bool(r))
        assert [float(s["value"][1]) for s in result] == [0.0]
        assert prom.query("apiclub_http_requests_total") == []


def test_unreachable_acme_raises_the_failure_counter(tmp_path: Path) -> None:
    data = tmp_path / "data"
    closed = free_port()  # nothing listens there: every order fails to connect
    started = time.time()
    with (
        served(
            data,
            "--domain",
            "localhost,app.example.com",
            "--acme-agree-tos",
            "--acme-directory",
            f"https://127.0.0.1:{closed}/directory",
        ) as api,
        prometheus(tmp_path, f"127.0.0.1:{api.admin_port}") as prom,
    ):
        failures = 'apiclub_certificate_renewal_attempts_total{outcome="failed"}'
        result = prom.wait_for(failures, lambda r: bool(r), timeout=60)
        assert [s["metric"]["name"] for s in result] == ["app.example.com"]
        assert float(result[0]["value"][1]) >= 1
        streak = prom.values("apiclub_certificate_renewal_consecutive_failures", "name")
        attempts = re.findall(
            r"app\.example\.com: obtaining a certificate failed \(attempt (\d+)\)", api.log()
        )
        assert attempts, api.log()
        assert streak["app.example.com"] == float(attempts[-1]), "the log and the metric agree"
        assert prom.values("apiclub_certificate_renewal_last_success", "name") == {
            "app.example.com": 0.0
        }
        last = prom.values("apiclub_certificate_renewal_last_attempt_timestamp_seconds", "name")
        assert started <= last["app.example.com"] <= time.time()
        orders = prom.query("apiclub_acme_order_duration_seconds_count")
        assert float(orders[0]["value"][1]) >= 1
        # The stand-in serves meanwhile, from the local CA: the issuer label says so.
        info = prom.query('apiclub_certificate_info{name="app.example.com"}')
        assert [s["metric"]["issuer"].startswith("apiclub local CA") for s in info] == [True]
