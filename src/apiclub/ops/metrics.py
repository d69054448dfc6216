"""The Prometheus metrics of one process, and how observed events become samples.

Under `--workers N` every worker writes its samples to prometheus-client's multiprocess files
(`ops.multiproc`) and the parent's admin listener sums them; in one process the registry here
is served directly. Gauges name their multiprocess mode: `livesum` for in-flight requests (a
dead worker's requests are gone), `mostrecent` for per-name renewal state (the last worker to
try knows best).
"""

from __future__ import annotations

import platform
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from apiclub import __version__

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds; the API answers in about a millisecond on loopback, a slow disk makes it tens."""
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
"""Writes per group commit (`db.sqlite.group_commit.MAX_BATCH` bounds it)."""
ORDER_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
"""Seconds per ACME order: a few with Let's Encrypt, minutes when a validation retries."""


class Metrics:
    """Every metric apiclub records, in `registry` (a private one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "apiclub_http_requests",
            "HTTP requests answered by the API, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "apiclub_http_request_duration_seconds",
            "Time from the request's arrival to its last body byte sent, by method and route.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "apiclub_http_requests_in_flight",
            "Requests being answered right now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.tls_handshakes = Counter(
            "apiclub_tls_handshakes",
            "TLS handshakes that reached the certificate choice (SNI).",
            registry=r,
        )
        self.tls_handshake_failures = Counter(
            "apiclub_tls_handshake_failures",
            "TLS handshakes that failed (bad client, no shared cipher, untrusted certificate).",
            registry=r,
        )
        self.redirect_answers = Counter(
            "apiclub_redirect_answers",
            "Answers of the port-80 listener: redirect, refused or ACME challenge.",
            ["kind"],
            registry=r,
        )
        self.rate_limit_rejections = Counter(
            "apiclub_rate_limit_rejections",
            "Requests refused with 429 by the rate limit.",
            registry=r,
        )
        self.auth_rejections = Counter(
            "apiclub_auth_rejections",
            "Requests refused with 401 (missing or wrong bearer token).",
            registry=r,
        )
        self.commit_batch = Histogram(
            "apiclub_db_commit_batch_size",
            "Writes committed together in one SQLite transaction (group commit).",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.commit_latency = Histogram(
            "apiclub_db_commit_duration_seconds",
            "Time of one group commit, BEGIN IMMEDIATE to COMMIT.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.db_unavailable = Counter(
            "apiclub_db_unavailable_answers",
            "503 answers because the database was busy or unavailable.",
            ["reason"],
            registry=r,
        )
        self.renewals = Counter(
            "apiclub_certificate_renewal_attempts",
            "ACME orders (first issuance or renewal) per name, by outcome (ok, failed).",
            ["name", "outcome"],
            registry=r,
        )
        self.renewal_last_attempt = Gauge(
            "apiclub_certificate_renewal_last_attempt_timestamp_seconds",
            "Unix time of the last ACME order attempt for the name.",
            ["name"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.renewal_last_ok = Gauge(
            "apiclub_certificate_renewal_last_success",
            "1 if the last ACME order attempt for the name succeeded, 0 if it failed.",
            ["name"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.renewal_failures = Gauge(
            "apiclub_certificate_renewal_consecutive_failures",
            "ACME order attempts for the name that failed in a row (0 after a success).",
            ["name"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.order_duration = Histogram(
            "apiclub_acme_order_duration_seconds",
            "Duration of ACME order attempts, successful or not.",
            buckets=ORDER_BUCKETS,
            registry=r,
        )
        self.build_info = Gauge(
            "apiclub_build_info",
            "Always 1; the labels say which apiclub and Python run.",
            ["version", "python"],
            registry=r,
            multiprocess_mode="max",
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request (the request middleware calls this).

        The labelled children are kept per (method, route, status): `labels()` takes a lock
        and builds a key each time, the largest part of this call's cost on the request path.
        """
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if status == 429:
            self.rate_limit_rejections.inc()
        elif status == 401:
            self.auth_rejections.inc()

    def handle(self, event: str, fields: Mapping[str, object]) -> None:
        """An `apiclub.observe` listener: turn one event into samples."""
        if event == "tls.handshake":
            self.tls_handshakes.inc()
        elif event == "tls.handshake_failed":
            self.tls_handshake_failures.inc()
        elif event == "db.commit":
            self.commit_batch.observe(_number(fields, "batch"))
            self.commit_latency.observe(_number(fields, "seconds"))
        elif event == "redirect.answer":
            self.redirect_answers.labels(str(fields["kind"])).inc()
        elif event == "db.unavailable":
            self.db_unavailable.labels(str(fields["reason"])).inc()
        elif event == "cert.renewal":
            self._renewal(fields)

    def _renewal(self, fields: Mapping[str, object]) -> None:
        name, ok = str(fields["name"]), bool(fields["ok"])
        self.renewals.labels(name, "ok" if ok else "failed").inc()
        self.renewal_last_attempt.labels(name).set(_number(fields, "at"))
        self.renewal_last_ok.labels(name).set(1 if ok else 0)
        self.renewal_failures.labels(name).set(_number(fields, "failures"))
        self.order_duration.observe(_number(fields, "seconds"))


def _number(fields: Mapping[str, object], key: str) -> float:
    value = fields[key]
    if not isinstance(value, int | float):
        raise TypeError(f"event field {key}={value!r} is not a number")
    return float(value)
