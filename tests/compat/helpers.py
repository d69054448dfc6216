"""Run a test with one compat patch left out, to prove the patch is what makes it pass."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from apiclub.compat import patches as compat


@contextmanager
def without(name: str) -> Iterator[None]:
    """Every compat patch but `name` in place for the block; all of them again after it."""
    assert name in {patch.name for patch in compat.PATCHES}, name
    compat.uninstall()
    compat.install(skip=frozenset({name}))
    try:
        assert name not in compat.installed()
        yield
    finally:
        compat.uninstall()
        compat.install()
