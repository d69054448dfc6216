"""`python -m bench.first_answer REV...`: seconds from `git clone` to the first HTTPS answer.

What a newcomer waits for: clone the repository at REV into a new folder, run `make dev`, and
poll `https://localhost:PORT/` (verified against the new local CA) until it answers 200. The
installers' caches are emptied for each run (`--warm` keeps them), so the figure is a fresh
machine's. Prints one line per revision and run; compare revisions measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEADLINE = 600.0  # seconds: a clone that has not answered by then counts as failed
POLL = 0.1  # seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} is missing: install it (Debian: apt-get install {name})")
    return found


def answered(url: str, root: Path) -> bool:
    if not root.exists():
        return False
    context = ssl.create_default_context(cafile=str(root))
    try:
        with urllib.request.urlopen(url, context=context, timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except (OSError, ssl.SSLError):
        return False


def first_answer(rev: str, *, warm: bool) -> float:
    """Seconds from `git clone` of `rev` to its first verified 200."""
    with tempfile.TemporaryDirectory(prefix="apiclub-first-") as scratch:
        work = Path(scratch)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("APICLUB_", "DB_FILE"))}
        if not warm:
            env["PIP_NO_CACHE_DIR"] = "1"
            env["UV_CACHE_DIR"] = str(work / "uv-cache")
        port = free_port()
        env["APICLUB_HTTPS_PORT"] = str(port)
        env["APICLUB_HTTP_PORT"] = str(free_port())
        clone = work / "apiclub"
        started = time.monotonic()
        git, make = tool("git"), tool("make")
        subprocess.run([git, "clone", "--quiet", str(REPO), str(clone)], check=True, env=env)  # noqa: S603
        subprocess.run([git, "-C", str(clone), "checkout", "--quiet", rev], check=True)  # noqa: S603
        dev = subprocess.Popen(  # noqa: S603 - our own make target
            [make, "dev"],
            cwd=clone,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            url = f"https://localhost:{port}/"
            while time.monotonic() - started < DEADLINE:
                if dev.poll() is not None:
                    raise SystemExit(f"{rev}: make dev exited {dev.returncode} before answering")
                if answered(url, clone / "data" / "ca" / "root.pem"):
                    return time.monotonic() - started
                time.sleep(POLL)
            raise SystemExit(f"{rev}: no answer within {DEADLINE:.0f} s")
        finally:
            os.killpg(dev.pid, signal.SIGTERM)
            dev.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revs", nargs="+", help="git revisions to compare (e.g. be2e936 HEAD)")
    parser.add_argument("--rounds", type=int, default=1, help="runs per revision, interleaved")
    parser.add_argument("--warm", action="store_true", help="keep pip's and uv's caches")
    args = parser.parse_args()
    for round_ in range(1, args.rounds + 1):
        for rev in args.revs:
            seconds = first_answer(rev, warm=args.warm)
            cache = "warm" if args.warm else "cold"
            sys.stdout.write(
                f"round {round_} {rev}: {seconds:.1f} s to the first answer ({cache})\n"
            )
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
