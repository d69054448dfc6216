"""`apiclub serve --workers N`: the supervisor, with the admin listener beside it when asked."""

from __future__ import annotations

from collections.abc import Callable

from apiclub.server.launcher import Server
from apiclub.server.workers import Supervisor
from apiclub.settings import Settings


def run_supervised(settings: Settings, on_ready: Callable[[Server], None] | None) -> int:
    """Run the workers until a stop; the parent serves /metrics, /livez, /readyz if
    `metrics_port` is set (`server.admin.SupervisorAdmin`). Returns the exit status."""
    supervisor = Supervisor(settings, on_ready=on_ready)
    if not settings.metrics_port:
        return supervisor.run()
    from apiclub.server.admin import SupervisorAdmin  # prometheus-client: only when asked

    try:
        admin = SupervisorAdmin(supervisor)
    except BaseException:
        supervisor.server.close()
        raise
    supervisor.server.admin_port = admin.port
    return admin.run()
