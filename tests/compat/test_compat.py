"""The compat layer checks what it patches: versions, attributes, copied sources."""

from __future__ import annotations

import inspect
import logging
import ssl
from pathlib import Path

import httpx
import pytest
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.protocol.h11 import H11Protocol

from apiclub.compat import patches as compat
from apiclub.compat.registry import Fits, Patch, Target, source_hash
from tests.processes import run_apiclub, served


def test_every_patch_fits_the_locked_versions() -> None:
    assert compat.problems() == {}


def test_a_serving_process_has_every_patch_in_place(tmp_path: Path) -> None:
    compat.install()
    assert compat.installed() == [patch.name for patch in compat.PATCHES]


def shadowed_hypercorn(tmp_path: Path, version: str) -> dict[str, str]:
    """An environment in which `importlib.metadata` reports Hypercorn `version`.

    A distribution found earlier on `sys.path` wins: this is what a newer Hypercorn installed
    beside ours looks like to the version check.
    """
    info = tmp_path / "shadow" / f"hypercorn-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: hypercorn\nVersion: {version}\n")
    return {"PYTHONPATH": str(info.parent)}


def test_serve_refuses_a_hypercorn_the_patches_were_not_written_for(tmp_path: Path) -> None:
    result = run_apiclub(
        "serve",
        "--https-port",
        "0",
        "--http-port",
        "0",
        data_dir=tmp_path / "data",
        env=shadowed_hypercorn(tmp_path, "0.19.0"),
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "hypercorn 0.19.0 is not the 0.18 it was written for" in lines[0]
    assert "APICLUB_ALLOW_UNPATCHED=1" in lines[0]


def test_the_operator_may_run_unpatched_with_a_warning(tmp_path: Path) -> None:
    env = shadowed_hypercorn(tmp_path, "0.19.0") | {"APICLUB_ALLOW_UNPATCHED": "1"}
    with served(tmp_path / "data", env=env) as api:
        verified = ssl.create_default_context(cafile=str(api.root))
        answer = httpx.get(api.url + "/", verify=verified, timeout=10)
        assert answer.status_code == 200
        log = api.log()
    assert "running without apiclub's patch 'tls-close-errors'" in log
    assert "hypercorn 0.19.0 is not the 0.18" in log


def test_a_method_gone_upstream_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    compat.install()
    monkeypatch.delattr(H11Protocol, "_send_h11_event")
    found = compat.problems()
    assert found["h11-coalesce"] == ["hypercorn.protocol.h11.H11Protocol._send_h11_event is gone"]


def test_install_refuses_when_a_patch_does_not_fit(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    compat.uninstall()
    try:
        monkeypatch.delattr(H11Protocol, "_send_h11_event")
        with pytest.raises(compat.CompatError, match="'h11-coalesce' does not fit"):
            compat.install()
        assert compat.installed() == []
        monkeypatch.setenv(compat.ALLOW_UNPATCHED, "1")
        with caplog.at_level(logging.WARNING, "apiclub.compat"):
            compat.install()
        assert "h11-coalesce" not in compat.installed()
        assert "running without apiclub's patch 'h11-coalesce'" in caplog.text
    finally:
        monkeypatch.undo()
        compat.uninstall()
        compat.install()
    assert "h11-coalesce" in compat.installed()


def test_a_copied_body_that_changed_upstream_is_found() -> None:
    read_data = Target(
        TCPServer,
        "_read_data",
        copied_from=source_hash(
            inspect.getsource(
                TCPServer._close  # stands for the source the patch was copied from
            )
        ),
    )
    assert read_data.problem(TCPServer._read_data) == (
        "hypercorn.asyncio.tcp_server.TCPServer._read_data changed since the patch copied it"
    )
    upstream = next(p for p in compat.PATCHES if p.name == "reads-after-lost-transport")
    assert upstream.problems() == []


def test_a_missing_name_in_cpython_source_is_found() -> None:
    import asyncio.sslproto

    target = Target(asyncio.sslproto.SSLProtocol, "get_buffer", mentions=("_no_such_buffer",))
    assert target.problem(asyncio.sslproto.SSLProtocol.get_buffer) == (
        "asyncio.sslproto.SSLProtocol.get_buffer no longer uses _no_such_buffer"
    )


def test_an_untested_python_is_found() -> None:
    assert Fits("python", ("2.7.",)).problem() is not None
    assert Fits("python", ("3.",)).problem() is None
    assert Fits("no-such-distribution", ("1.",)).problem() == (
        "no-such-distribution is not installed"
    )


def test_uninstall_puts_back_exactly_what_upstream_ships() -> None:
    patch = next(p for p in compat.PATCHES if p.name == "tls-close-errors")
    compat.uninstall()
    try:
        upstream = TCPServer._close
        assert "except (ssl.SSLError" not in inspect.getsource(upstream)
        compat.install()
        assert TCPServer._close is not upstream
        compat.uninstall()
        assert TCPServer._close is upstream
        assert not patch.installed
    finally:
        compat.install()


def test_a_patch_that_fits_installs_once() -> None:
    calls: list[int] = []

    class Owner:
        def method(self) -> int:
            return 1

    def apply() -> None:
        calls.append(1)
        Owner.method = lambda self: 2  # type: ignore[method-assign]

    patch = Patch("example", "nowhere", (), (Target(Owner, "method"),), apply)
    patch.install()
    patch.install()
    assert calls == [1] and Owner().method() == 2
    patch.remove()
    assert Owner().method() == 1


def test_the_private_members_our_subclasses_override_still_exist() -> None:
    from apiclub.compat import acme_orders, overridden

    assert overridden.problems() == []
    acme_orders.check()


def test_an_overridden_member_gone_upstream_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    from piccolo.engine.postgres import PostgresEngine

    from apiclub.compat import overridden

    monkeypatch.delattr(PostgresEngine, "_run_in_pool")
    assert overridden.problems() == ["piccolo.engine.postgres.PostgresEngine._run_in_pool is gone"]


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of `markdown`."""
    anchors = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            kept = "".join(c for c in title if c.isalnum() or c in " -_")
            anchors.add(kept.replace(" ", "-"))
    return anchors


def test_each_patch_names_its_upstream_issue_or_report() -> None:
    upstream = Path(__file__).parents[2] / "docs" / "upstream.md"
    text = upstream.read_text()
    anchors = heading_anchors(text)
    for patch in compat.PATCHES:
        if patch.upstream.startswith("https://"):
            assert patch.upstream in text, patch.name
        else:
            page, _, anchor = patch.upstream.partition("#")
            assert page == "docs/upstream.md" and anchor in anchors, patch.name
        assert f"`{patch.name}`" in text, f"{patch.name} is missing from the table"


def test_a_report_that_is_not_written_is_found() -> None:
    assert "no-such-report" not in heading_anchors("## A real report\n")
    assert "a-real-report" in heading_anchors("## A real report\n")


def test_each_patch_has_a_test_run_without_it() -> None:
    tests = Path(__file__).parents[1]
    texts = (tests / "compat" / "test_each_patch_is_needed.py").read_text() + (
        tests / "ops" / "test_metrics_events.py"  # the handshake counter, in a subprocess
    ).read_text()
    untested = [patch.name for patch in compat.PATCHES if f'"{patch.name}"' not in texts]
    assert untested == []
