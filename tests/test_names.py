from __future__ import annotations

import pytest

from apiclub.names import is_local_name, is_private_name, parse_host


@pytest.mark.parametrize(
    "name",
    [
        "localhost",
        "127.0.0.1",
        "::1",
        "[::1]",
        "10.0.0.5",
        "api.localhost",
        "app.test",
        "nas.local",
        "db.internal",
        "router",
        "printer.home.arpa",
        "LOCALHOST.",
    ],
)
def test_local_names(name: str) -> None:
    assert is_local_name(name)


@pytest.mark.parametrize("name", ["example.com", "api.example.org", "localhost.com", "test.io"])
def test_public_names(name: str) -> None:
    assert not is_local_name(name)


@pytest.mark.parametrize(
    "name", ["localhost", "127.0.0.1", "[::1]", "10.0.0.5", "fd00::1", "db.internal", "router"]
)
def test_private_names(name: str) -> None:
    assert is_private_name(name)


@pytest.mark.parametrize("name", ["api.example.com", "93.184.215.14", "2001:4860::1"])
def test_public_names_and_global_addresses_are_not_private(name: str) -> None:
    assert not is_private_name(name)


def test_parse_host_takes_names_up_to_253_characters_only() -> None:
    longest = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters, RFC 1035's limit
    assert parse_host(f"{longest.upper()}:80") == longest
    assert parse_host(f"x{longest}") is None
