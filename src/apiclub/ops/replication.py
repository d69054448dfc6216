"""The replication metrics of `serve --replicate`: what the Litestream supervisor knows, read
at each scrape (the serve parent runs it, so no multiprocess files are involved).

An operator needs one question answered: "is the replica more than N seconds behind, or is
the replicator down?" (deploy/prometheus/alerts.yml asks it):

- `apiclub_replication_up`: 1 while the Litestream child runs, 0 while it is being restarted.
- `apiclub_replication_lag_seconds`: seconds of the database's writes the replica lacks, at
  the last check (`backup.replica_watch`; 0 when it holds the last write).
- `apiclub_replication_replica_reachable`: 1 when the last check could read the replica.
- `apiclub_replication_last_check_timestamp_seconds`: when that check ran (a stuck check
  shows as an old timestamp).
- `apiclub_replication_restarts_total` and `apiclub_replication_errors_total`: Litestream
  restarts, and the lines it logged at ERROR.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from apiclub.backup.replicator import Replicator


class ReplicationCollector(Collector):
    """Samples of one `Replicator`, taken when /metrics is read."""

    def __init__(self, replicator: Replicator) -> None:
        self.replicator = replicator

    def collect(self) -> Iterator[Metric]:
        state, health = self.replicator.state, self.replicator.watch.health
        yield GaugeMetricFamily(
            "apiclub_replication_up",
            "1 while the Litestream child replicating the database runs, 0 while it is down.",
            value=1.0 if state.running else 0.0,
        )
        if health.lag is not None:
            yield GaugeMetricFamily(
                "apiclub_replication_lag_seconds",
                "Seconds of database writes the replica lacks, at the last check.",
                value=health.lag,
            )
        if health.reachable is not None:
            yield GaugeMetricFamily(
                "apiclub_replication_replica_reachable",
                "1 when the last check could read the replica, 0 when it could not.",
                value=1.0 if health.reachable else 0.0,
            )
        if health.checked_at is not None:
            yield GaugeMetricFamily(
                "apiclub_replication_last_check_timestamp_seconds",
                "Unix time of the last check of the replica.",
                value=health.checked_at,
            )
        yield CounterMetricFamily(
            "apiclub_replication_restarts",
            "Times the Litestream child was started again after it exited.",
            value=max(0, state.starts - 1),
        )
        yield CounterMetricFamily(
            "apiclub_replication_errors",
            "Lines Litestream logged at ERROR (failed syncs, unreachable replica).",
            value=state.errors,
        )
