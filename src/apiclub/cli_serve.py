"""`apiclub serve` and `apiclub reload`: the parent of the workers, or a worker, and its banner."""

from __future__ import annotations

import argparse
import os
import sys

from apiclub.settings import Settings, TlsMode


def serve_command(settings: Settings, args: argparse.Namespace) -> int:
    from apiclub.server.inherited_sockets import READY_FD_VARIABLE

    if READY_FD_VARIABLE in os.environ:  # a worker, started by the parent below
        from apiclub.server.workers import serve_worker

        return serve_worker(settings, os.environ, describe_listeners)
    from apiclub.backup.companions import BackupCompanions
    from apiclub.server.generations import Generations
    from apiclub.serving_lock import ServingLock, serving_lock_path

    # Scheduled snapshots and Litestream run once, here in the parent: started when the first
    # generation serves, stopped after the last worker closed the database (so Litestream's
    # last sync has the last commits). The parent holds the serving lock for its whole life:
    # while workers are replaced, `apiclub restore` must still be refused.
    companions = BackupCompanions(settings)
    admin = None
    if settings.metrics_port:
        from apiclub.server.admin import ParentAdmin  # prometheus-client: only when asked

        # Before the workers exist: they inherit the multiprocess directory it names.
        admin = ParentAdmin(settings)
        if companions.replicator is not None:
            from apiclub.ops.replication import ReplicationCollector

            admin.registry.register(ReplicationCollector(companions.replicator))

    def announce(banner: str) -> None:
        companions.start()
        sys.stdout.write(banner + (admin.banner() if admin is not None else ""))
        sys.stdout.flush()

    # Each worker is a fresh interpreter running this command line (generations.py).
    command = ["-m", "apiclub", *args.argv]
    lock = ServingLock(serving_lock_path(settings))
    try:
        generations = Generations(settings, command, os.environ, on_ready=announce)
        return generations.run() if admin is None else admin.run(generations)
    finally:
        companions.stop()
        if admin is not None:
            admin.close()
        lock.release()


def reload_command(settings: Settings, _: argparse.Namespace) -> int:
    from apiclub.server.pid_file import send_reload

    pid = send_reload(settings)
    sys.stdout.write(
        f"sent SIGHUP to apiclub (pid {pid}): it starts new workers and stops the old ones "
        "once those serve; its log says how it went\n"
    )
    return 0


def describe_listeners(server: object) -> str:
    """What a newcomer needs after start: the URLs and how to trust the local CA."""
    from apiclub.server.launcher import Server

    assert isinstance(server, Server)  # noqa: S101
    settings = server.settings
    name = settings.domains[0]
    host = f"[{name}]" if ":" in name else name
    if not server.tls_enabled:
        return f"apiclub serving http://{host}:{server.api_port}/ (TLS off: behind a proxy)\n"
    lines = [f"apiclub serving https://{host}:{server.api_port}/"]
    if server.redirect_port is not None:
        lines.append(f"  http://{host}:{server.redirect_port}/ redirects there")
    manager = server.cert_manager
    if manager is not None and manager.acme_names:
        lines.append(
            f"  certificates for {', '.join(manager.acme_names)} from ACME "
            f"{settings.acme_directory} (a local-CA stand-in until they arrive)"
        )
    if settings.tls in (TlsMode.AUTO, TlsMode.INTERNAL) and manager and manager.local_names:
        root = manager.root_cert_path()
        lines.append(f"  certificates from the local CA: {root}")
        lines.append(f"  trust it: curl --cacert {root} https://{host}:{server.api_port}/")
        lines.append("  or install it system-wide: apiclub ca trust")
    return "\n".join(lines) + "\n"
