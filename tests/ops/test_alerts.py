"""`promtool test rules` on the shipped alert rules: each alert fires on a recorded series that
should raise it, and stays quiet on its twin that should not."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.helpers import SHIPPED, need_tool

DAY = 86400


def series(name: str, labels: str, values: str) -> dict[str, str]:
    return {"series": f"{name}{{{labels}}}", "values": values}


def cert(name: str, not_before: float, not_after: float) -> list[dict[str, str]]:
    return [
        series(
            "apiclub_certificate_not_before_timestamp_seconds",
            f'name="{name}"',
            f"{not_before:.0f}x40",
        ),
        series(
            "apiclub_certificate_expiry_timestamp_seconds", f'name="{name}"', f"{not_after:.0f}x40"
        ),
    ]


CASES: dict[str, dict[str, Any]] = {
    # A 90-day certificate with 6 days left fires; with 10 days left it does not.
    "ApiclubCertificateExpiresSoon": {
        "series": cert("soon.example", 6 * DAY - 90 * DAY, 6 * DAY)
        + cert("fine.example", 10 * DAY - 90 * DAY, 10 * DAY)
        # A 6-day certificate: 1.5 days left is under a third of its life, 5 days is not
        # (though both are under 7 days).
        + cert("short.example", 1.5 * DAY - 6 * DAY, 1.5 * DAY)
        + cert("young.example", 5 * DAY - 6 * DAY, 5 * DAY),
        "fires": [
            {"name": "soon.example", "severity": "critical"},
            {"name": "short.example", "severity": "critical"},
        ],
    },
    # Two failures in a row fire; one failure, then a success, does not.
    "ApiclubCertificateRenewalFailing": {
        "series": [
            series(
                "apiclub_certificate_renewal_consecutive_failures", 'name="bad.example"', "0 1 2x30"
            ),
            series(
                "apiclub_certificate_renewal_consecutive_failures", 'name="ok.example"', "0 1 0x30"
            ),
        ],
        "fires": [{"name": "bad.example", "severity": "warning"}],
    },
    # 10% of answers 5xx on one instance fires; 1% on another does not.
    "ApiclubHighErrorRatio": {
        "series": [
            series("apiclub_http_requests_total", 'instance="a",route="/",status="200"', "0+90x40"),
            series("apiclub_http_requests_total", 'instance="a",route="/",status="503"', "0+10x40"),
            series("apiclub_http_requests_total", 'instance="b",route="/",status="200"', "0+99x40"),
            series("apiclub_http_requests_total", 'instance="b",route="/",status="500"', "0+1x40"),
        ],
        "fires": [{"instance": "a", "severity": "warning"}],
    },
    # Readiness going 1 0 1 0 ... flaps; one restart (1 0 1) within the window does not.
    "ApiclubReadinessFlapping": {
        "series": [
            series("apiclub_ready", 'instance="a"', "1 0 1 0 1 0 1 0 1 0 1 0 1 0 1 0 1 0 1 0 1x20"),
            series("apiclub_ready", 'instance="b"', "1x10 0 1x28"),
        ],
        "fires": [{"instance": "a", "severity": "warning"}],
    },
    # A replica behind by more than a minute for good fires; one behind for the last minute
    # only (pending: `for: 2m`) does not.
    "ApiclubReplicationLagging": {
        "series": [
            series("apiclub_replication_lag_seconds", 'instance="a"', "0 1 30 70+10x37"),
            series("apiclub_replication_lag_seconds", 'instance="b"', "0x19 90x20"),
        ],
        "fires": [{"instance": "a", "severity": "critical"}],
    },
    # Litestream down (a), the replica unreadable (b), the check stuck (c) fire; a healthy
    # replicator (d), and one down for the last minute only (e, `for: 2m`), do not.
    "ApiclubReplicationDown": {
        "series": [
            series("apiclub_replication_up", 'instance="a"', "1x5 0x35"),
            series("apiclub_replication_replica_reachable", 'instance="a"', "1x40"),
            series("apiclub_replication_last_check_timestamp_seconds", 'instance="a"', "0+60x40"),
            series("apiclub_replication_up", 'instance="b"', "1x40"),
            series("apiclub_replication_replica_reachable", 'instance="b"', "1x5 0x35"),
            series("apiclub_replication_last_check_timestamp_seconds", 'instance="b"', "0+60x40"),
            series("apiclub_replication_up", 'instance="c"', "1x40"),
            series("apiclub_replication_replica_reachable", 'instance="c"', "1x40"),
            series(
                "apiclub_replication_last_check_timestamp_seconds", 'instance="c"', "0+60x5 300x35"
            ),
            series("apiclub_replication_up", 'instance="d"', "1x40"),
            series("apiclub_replication_replica_reachable", 'instance="d"', "1x40"),
            series("apiclub_replication_last_check_timestamp_seconds", 'instance="d"', "0+60x40"),
            series("apiclub_replication_up", 'instance="e"', "1x19 0x20"),
            series("apiclub_replication_replica_reachable", 'instance="e"', "1x40"),
            series("apiclub_replication_last_check_timestamp_seconds", 'instance="e"', "0+60x40"),
        ],
        "fires": [
            {"instance": "a", "severity": "critical"},
            {"instance": "b", "severity": "critical"},
            {"instance": "c", "severity": "critical"},
        ],
    },
    # Three restarts within 15 minutes fire; one restart does not.
    "ApiclubReplicationRestarting": {
        "series": [
            series("apiclub_replication_restarts_total", 'instance="a"', "0x10 1 2 3 4x27"),
            series("apiclub_replication_restarts_total", 'instance="b"', "0x10 1x30"),
        ],
        "fires": [{"instance": "a", "severity": "warning"}],
    },
}


def rule_test(alert: str, case: dict[str, Any], fires: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": case["series"],
        "alert_rule_test": [
            {
                "eval_time": "20m",
                "alertname": alert,
                "exp_alerts": [{"exp_labels": {"alertname": alert, **labels}} for labels in fires],
            }
        ],
    }


def run_promtool(tmp_path: Path, tests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    promtool = need_tool("promtool")
    # The shipped rules as they are, but for their annotations: promtool compares those too,
    # and the firing logic (expr, for, labels) is what these tests are about.
    rules = yaml.safe_load((SHIPPED / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    rules_path = tmp_path / "alerts.yml"
    rules_path.write_text(yaml.safe_dump(rules))
    path = tmp_path / "alerts_test.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(rules_path)],
                "evaluation_interval": "1m",
                "tests": tests,
            }
        )
    )
    return subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )


def test_shipped_rules_are_valid() -> None:
    promtool = need_tool("promtool")
    checked = subprocess.run(
        [promtool, "check", "rules", str(SHIPPED / "alerts.yml")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = subprocess.run(
        [promtool, "check", "config", str(SHIPPED / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert config.returncode == 0, config.stdout + config.stderr


@pytest.mark.parametrize("alert", sorted(CASES))
def test_alert_fires_on_its_series_and_not_on_the_twin(tmp_path: Path, alert: str) -> None:
    case = CASES[alert]
    result = run_promtool(tmp_path, [rule_test(alert, case, case["fires"])])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("alert", sorted(CASES))
def test_expecting_silence_where_it_fires_fails(tmp_path: Path, alert: str) -> None:
    """The twin: the same series with "nothing fires" expected makes promtool fail, so the
    test above can fail."""
    result = run_promtool(tmp_path, [rule_test(alert, CASES[alert], [])])
    assert result.returncode == 1, result.stdout + result.stderr
    assert alert in result.stdout + result.stderr
