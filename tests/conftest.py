"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.tools import MISSING


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, the loop Hypercorn serves on in production."""
    return "asyncio"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Close with what was skipped, grouped: the tools missing and how to install them first."""
    tools: Counter[tuple[str, str]] = Counter()
    others: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        if not (isinstance(longrepr, tuple) and len(longrepr) == 3):
            continue
        reason = str(longrepr[2]).removeprefix("Skipped: ")
        if (found := MISSING.match(reason)) is not None:
            tools[(found["tool"], found["fix"])] += 1
        else:
            others[reason] += 1
    if tools:
        terminalreporter.section("skipped for missing tools")
        for (tool, fix), count in sorted(tools.items()):
            terminalreporter.line(f"{count:4d} skipped: {tool} is missing: {fix}")
        terminalreporter.line(
            "`sudo make test-deps` installs every Debian package the tests use "
            "(tests/system-packages.txt); under CI=true these skips are failures."
        )
    if others:
        terminalreporter.section("skipped for other reasons")
        for reason, count in sorted(others.items()):
            terminalreporter.line(f"{count:4d} skipped: {reason}")
