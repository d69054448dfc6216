"""prometheus-client's multiprocess mode for `--workers N`: one directory of sample files.

The library picks its value class when it is first imported, from PROMETHEUS_MULTIPROC_DIR;
the parent sets the variable (and tells the library again) before any worker forks, so every
worker writes its samples to files there, and the parent's /metrics sums them. The directory
is emptied at start (stale files of an earlier run would add to the counts) and a worker that
exits is marked dead, so its `live*` gauges (requests in flight) stop counting.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess(environ: Mapping[str, str] | None = None) -> Path:
    """Make (or empty) the sample directory and switch this process to multiprocess values.

    An operator's PROMETHEUS_MULTIPROC_DIR is used (emptied); otherwise a private temporary
    directory (0700). Call it before forking the workers.
    """
    given = (environ if environ is not None else os.environ).get(ENV)
    if given:
        path = Path(given)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(mode=0o700, parents=True)
    else:
        path = Path(tempfile.mkdtemp(prefix="apiclub-metrics-"))
    os.environ[ENV] = str(path)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return path


def multiprocess_registry(path: Path) -> CollectorRegistry:
    """A registry that sums the workers' sample files (the parent serves it)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]
    return registry


def forget_worker(pid: int, path: Path) -> None:
    """A worker exited: drop its `live*` gauge files."""
    mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


def remove_multiprocess(path: Path) -> None:
    """At exit: remove the directory and leave the variable unset."""
    shutil.rmtree(path, ignore_errors=True)
    os.environ.pop(ENV, None)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
