"""The container's HEALTHCHECK: is the API answering `GET /` with 200, right here?

Standard library only (the image has no curl). It asks the way a client would, so it checks
what matters: the listener, the TLS handshake and certificate for the first configured name
(verified against the local CA in the data directory, or the system's trust store when there
is none, e.g. for operator or ACME certificates), the Host check and the database-free route.
With APICLUB_TLS=off (behind nginx) it asks over plain HTTP on APICLUB_HTTP_PORT. When the
admin listener is on (APICLUB_METRICS_PORT, 9464 in the image), `/readyz` must answer 200 as
well, so a container draining after SIGTERM, or whose database is gone, reports unhealthy.

Exit status 0 when healthy, 1 otherwise with one line on stderr (podman keeps it in
`podman inspect --format '{{json .State.Health}}'`).
"""

from __future__ import annotations

import http.client
import os
import ssl
import sys
from collections.abc import Mapping
from pathlib import Path

TIMEOUT_SECONDS = 4.0


def check(environ: Mapping[str, str]) -> str | None:
    """Return None when `/readyz` (if on) and `GET /` answer 200, else what went wrong."""
    if (not_ready := check_ready(environ)) is not None:
        return not_ready  # its reason says more than a refused connection would
    name = (environ.get("APICLUB_DOMAINS") or "localhost").split(",")[0].strip() or "localhost"
    host = f"[{name}]" if ":" in name else name
    data_dir = Path(environ.get("APICLUB_DATA_DIR") or "data")
    connection: http.client.HTTPConnection
    if (environ.get("APICLUB_TLS") or "auto").strip().lower() == "off":
        port = int(environ.get("APICLUB_HTTP_PORT") or 8080)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_SECONDS)
    else:
        port = int(environ.get("APICLUB_HTTPS_PORT") or 8443)
        root = data_dir / "ca" / "root.pem"
        context = ssl.create_default_context(cafile=str(root) if root.is_file() else None)
        connection = _SniConnection(name, port, context)
    try:
        # Host carries the configured name, as a client sends it; the API answers 421 otherwise.
        connection.request("GET", "/", headers={"Host": host})
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"GET / on port {port} failed: {exc}"
    finally:
        connection.close()
    if response.status != 200:
        return f"GET / on port {port} answered {response.status}, not 200"
    return None


def check_ready(environ: Mapping[str, str]) -> str | None:
    """With the admin listener on (APICLUB_METRICS_PORT), `/readyz` must answer 200 too: the
    database answers, migrations are applied, and no stop is under way."""
    raw = (environ.get("APICLUB_METRICS_PORT") or "0").strip()
    if raw in ("", "0"):
        return None
    host = (environ.get("APICLUB_METRICS_HOST") or "127.0.0.1").strip()
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 (a wildcard bind answers on loopback)
        host = "127.0.0.1"
    connection = http.client.HTTPConnection(host, int(raw), timeout=TIMEOUT_SECONDS)
    try:
        connection.request("GET", "/readyz")
        response = connection.getresponse()
        body = response.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        return f"GET /readyz on port {raw} failed: {exc}"
    finally:
        connection.close()
    if response.status != 200:
        return f"GET /readyz on port {raw} answered {response.status}: {body.strip()}"
    return None


class _SniConnection(http.client.HTTPSConnection):
    """Connect to 127.0.0.1 but handshake (SNI, certificate check) for the configured name."""

    def __init__(self, server_name: str, port: int, context: ssl.SSLContext) -> None:
        super().__init__("127.0.0.1", port, timeout=TIMEOUT_SECONDS, context=context)
        self._server_name = server_name
        self._tls = context

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._tls.wrap_socket(self.sock, server_hostname=self._server_name)


def main() -> int:
    problem = check(os.environ)
    if problem is not None:
        sys.stderr.write(f"apiclub health: {problem}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
