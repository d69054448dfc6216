"""Snapshot, restore and replication of a 1M-task database (issue #16): time and size.

    python -m bench.backup                  # 1,000,000 tasks (bench.scale_data's cached file)
    python -m bench.backup --size 100000    # another size

Prints a markdown table for docs/performance.md. Every step is the code an operator runs:
`take_snapshot` (`apiclub backup`, verification included), `restore_snapshot`
(`apiclub restore`, verification included), Litestream's first full sync of the file to a
`file://` replica (`litestream replicate -once -force-snapshot`, the configuration
`serve --replicate` writes), and `restore_replica` (`apiclub restore --from`,
`integrity_check` included). Also against `rclone serve s3` on 127.0.0.1 when rclone exists.
Last, `GET /` latency over TLS from a real `apiclub serve` on the file: alone, beside
`apiclub backup` run in a loop by other processes, and with `--backup-every 2s` (snapshots in
the server's own thread): what the event loop feels, and what the thread adds to the disk's
and CPU's own contention.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TypeVar

from tests.backup.s3server import s3_server

from apiclub.backup.litestream import (
    child_environment,
    litestream_binary,
    restore_replica,
    write_config,
)
from apiclub.backup.restore import restore_snapshot
from apiclub.backup.snapshot import take_snapshot
from apiclub.settings import Settings
from bench.scale_data import CACHE, build

T = TypeVar("T")
MB = 1e6


def timed(step: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = step()
    return result, time.perf_counter() - started


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def first_sync(settings: Settings, work: Path) -> float:
    """Seconds of Litestream's first full sync of the database to the replica."""
    config = work / "litestream.yml"
    write_config(settings, config)
    _, seconds = timed(
        lambda: subprocess.run(  # noqa: S603 (our own arguments)
            [litestream_binary(), "replicate", "-config", str(config), "-once", "-force-snapshot"],
            env=child_environment(settings),
            check=True,
            capture_output=True,
            timeout=3600,
        )
    )
    return seconds


@contextmanager
def rclone_s3(root: Path) -> Iterator[str | None]:
    """The S3 server the tests use (`rclone serve s3`), or None where rclone is missing."""
    rclone = shutil.which("rclone", path=str(Path(sys.executable).parent)) or shutil.which("rclone")
    if rclone is None:
        yield None
        return
    with s3_server(root) as server:
        os.environ["AWS_ACCESS_KEY_ID"] = server.access_key
        os.environ["AWS_SECRET_ACCESS_KEY"] = server.secret_key
        yield server.url("bench", "db")


def latencies(data: Path, seconds: float, *extra: str) -> list[float]:
    """`GET /` one after another for `seconds` against `apiclub serve` on `data`."""
    import ssl

    import httpx

    env = {k: v for k, v in os.environ.items() if not k.startswith("APICLUB_")}
    process = subprocess.Popen(  # noqa: S603 (our own interpreter)
        [
            sys.executable,
            "-m",
            "apiclub",
            "serve",
            "--data-dir",
            str(data),
            "--https-port",
            "0",
            "--http-port",
            "0",
            "--log-level",
            "WARNING",
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        banner = process.stdout.readline() if process.stdout is not None else ""
        found = re.search(r"localhost:(\d+)/", banner)
        if found is None:
            raise SystemExit(f"apiclub serve did not start: {banner!r}")
        port = int(found.group(1))
        context = ssl.create_default_context(cafile=str(data / "ca/root.pem"))
        samples: list[float] = []
        with httpx.Client(verify=context) as client:
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                client.get(f"https://localhost:{port}/").raise_for_status()
                samples.append(time.perf_counter() - started)
        return samples
    finally:
        process.terminate()
        process.wait(60)


def latencies_beside_backups(data: Path, work: Path, seconds: float) -> list[float]:
    """`latencies` while `apiclub backup` runs again and again in processes of its own."""
    stop = threading.Event()

    def back_up() -> None:
        while not stop.is_set():
            target = work / "external.tar"
            subprocess.run(  # noqa: S603 (our own interpreter)
                [
                    sys.executable,
                    "-m",
                    "apiclub",
                    "backup",
                    "--data-dir",
                    str(data),
                    "--to",
                    str(target),
                ],
                capture_output=True,
                check=True,
            )
            target.unlink()

    thread = threading.Thread(target=back_up)
    thread.start()
    try:
        return latencies(data, seconds)
    finally:
        stop.set()
        thread.join()


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50, p99 = ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)]
    return f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.0f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backup", description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    source, _ = build(args.size, CACHE)
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="apiclub-bench-backup-") as tmp:
        work = Path(tmp)
        data = work / "data"
        data.mkdir(mode=0o700)
        shutil.copy(source, data / "api.db")
        settings = Settings(data_dir=data)
        db_size = size_of(data / "api.db")
        rows.append(("database file", "", f"{db_size / MB:.1f} MB"))
        for name in ("snap.tar", "snap.tar.gz"):
            snap, seconds = timed(partial(take_snapshot, settings, work / name))
            rows.append(
                (
                    f"`apiclub backup --to {name}` (copy + verify)",
                    f"{seconds:.2f} s",
                    f"{snap.size / MB:.1f} MB",
                )
            )
        target = Settings(data_dir=work / "restored")
        _, seconds = timed(lambda: restore_snapshot(target, work / "snap.tar"))
        rows.append(("`apiclub restore snap.tar` (verify + swap)", f"{seconds:.2f} s", ""))
        replicas = [("file", f"file://{work / 'replica'}")]
        with rclone_s3(work / "s3") as s3:
            if s3 is not None:
                replicas.append(("s3 (rclone serve s3)", s3))
            for label, url in replicas:
                replicated = Settings(data_dir=data, replicate=url)
                seconds = first_sync(replicated, work)
                size = size_of(work / "replica") if label == "file" else size_of(work / "s3")
                rows.append(
                    (f"Litestream first sync to {label}", f"{seconds:.2f} s", f"{size / MB:.1f} MB")
                )
                into = Settings(data_dir=work / f"from-{label.split()[0]}")
                _, seconds = timed(partial(restore_replica, into, url))
                rows.append((f"`apiclub restore --from` {label}", f"{seconds:.2f} s", ""))
        quiet = latencies(data, 10.0)
        beside = latencies_beside_backups(data, work, 10.0)
        snapping = latencies(data, 10.0, "--backup-every", "2s", "--backup-dir", str(work / "b"))
        taken = len(list((work / "b").glob("apiclub-*.tar")))
        rows.append(("`GET /` over TLS, no snapshots (10 s)", percentiles(quiet), ""))
        rows.append(
            ("`GET /` beside `apiclub backup` in a loop (other processes)", percentiles(beside), "")
        )
        rows.append(
            (
                f"`GET /` with `--backup-every 2s` ({taken} kept of the 10 s)",
                percentiles(snapping),
                "",
            )
        )
    print(f"{args.size:,} tasks\n")  # noqa: T201 (the report)
    print("| step | time | size |\n| --- | --- | --- |")  # noqa: T201
    for row in rows:
        print(f"| {' | '.join(row)} |")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
