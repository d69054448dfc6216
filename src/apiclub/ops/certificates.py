"""Per-name certificate metrics, read at scrape time from what is served (`certs/live/`).

Read from the live files rather than from one process's memory: under `--workers N` the
parent serves /metrics while the workers renew, and each publish rewrites `certs/live/<name>/`
(`tls.live`), so the files say what every worker serves. The numbers are those of
`apiclub certs list`: notAfter and the issuer's common name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from apiclub.tls import keys

logger = logging.getLogger("apiclub.ops")


@dataclass(frozen=True)
class ServedCert:
    """What a handshake for `name` gets, as the metrics show it."""

    name: str
    issuer: str
    serial: str
    not_before: float
    not_after: float


def issuer_name(cert: x509.Certificate) -> str:
    """The issuer's common name, as `apiclub certs list` prints it (its whole DN without one)."""
    common = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(common[0].value) if common else cert.issuer.rfc4514_string()


def read_served(data_dir: Path, names: Sequence[str]) -> list[ServedCert]:
    """The served certificate of each name that has one in `certs/live/`."""
    served = []
    for name in names:
        path = data_dir / keys.live_cert(name)
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            logger.warning("metrics: cannot read %s: %s", path, exc)
            continue
        served.append(
            ServedCert(
                name=name,
                issuer=issuer_name(cert),
                serial=f"{cert.serial_number:x}",
                not_before=cert.not_valid_before_utc.timestamp(),
                not_after=cert.not_valid_after_utc.timestamp(),
            )
        )
    return served


class CertificateCollector(Collector):
    """`apiclub_certificate_*` gauges for the names of one data directory."""

    def __init__(self, data_dir: Path, names: Sequence[str]) -> None:
        self.data_dir = data_dir
        self.names = tuple(names)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        expiry = GaugeMetricFamily(
            "apiclub_certificate_expiry_timestamp_seconds",
            "notAfter of the certificate served for the name, as unix time.",
            labels=["name"],
        )
        start = GaugeMetricFamily(
            "apiclub_certificate_not_before_timestamp_seconds",
            "notBefore of the certificate served for the name (its lifetime is the difference).",
            labels=["name"],
        )
        info = GaugeMetricFamily(
            "apiclub_certificate_info",
            "Always 1: the issuer and serial of the certificate served for the name.",
            labels=["name", "issuer", "serial"],
        )
        for cert in read_served(self.data_dir, self.names):
            expiry.add_metric([cert.name], cert.not_after)
            start.add_metric([cert.name], cert.not_before)
            info.add_metric([cert.name, cert.issuer, cert.serial], 1)
        yield expiry
        yield start
        yield info
