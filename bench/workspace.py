"""The benchmark's scratch directory: the shared certificate and the seeded databases."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.certs import CertFiles, make_mkcert_like
from bench.seed import seed_apiclub, seed_tutorial

NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class Workspace:
    """Where every stack keeps its files, and what they share (certificate, seeded data)."""

    root: Path
    mkcert: CertFiles
    tutorial_db: Path
    apiclub_db: Path

    def stack_dir(self, key: str) -> Path:
        return self.root / key


def create_workspace(tasks: int) -> Workspace:
    """A new world-traversable temporary directory with the certificate and both databases.

    World-traversable: nginx started as root runs its workers as another user, and they must
    reach the temp paths under each prefix.
    """
    root = Path(tempfile.mkdtemp(prefix="apiclub-bench-"))
    root.chmod(0o755)
    mkcert = make_mkcert_like(root / "mkcert", NAMES)
    seed = root / "seed"
    seed.mkdir()
    seed_tutorial(seed / "tutorial.db", tasks)
    apiclub_db = seed_apiclub(seed / "apiclub", tasks)
    return Workspace(root, mkcert, seed / "tutorial.db", apiclub_db)
