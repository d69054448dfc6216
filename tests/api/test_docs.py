"""The docs page loads no third-party file without an integrity hash (issue 14)."""

from __future__ import annotations

import re

import httpx
import pytest

from apiclub.api.docs import INTEGRITY

pytestmark = pytest.mark.anyio

TAG = re.compile(r"<(script|link)\b[^>]*>", re.IGNORECASE)
URL = re.compile(r"""\b(?:src|href)=["']([^"']+)["']""", re.IGNORECASE)


def unpinned_third_party(page: str) -> list[str]:
    """The tags of `page` that load a file from another origin without `integrity=`."""
    found = []
    for tag in TAG.finditer(page):
        text = tag.group(0)
        url = URL.search(text)
        if url is None or not re.match(r"(?i)(https?:)?//", url.group(1)):
            continue  # inline, or our own origin
        if "integrity=" not in text or 'crossorigin="anonymous"' not in text:
            found.append(text)
    return found


def test_the_check_finds_an_unpinned_script() -> None:
    page = (
        '<script src="https://cdn.example/x.js" crossorigin></script>'
        "<link rel='icon' href='https://cdn.example/i.png'>"
        '<script src="/local.js"></script><script>inline()</script>'
    )
    assert len(unpinned_third_party(page)) == 2


@pytest.mark.parametrize("path", ["/schema", "/schema/swagger"])
async def test_the_docs_page_pins_every_third_party_file(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    page = response.text
    assert "SwaggerUIBundle" in page
    assert unpinned_third_party(page) == []
    for url, digest in INTEGRITY.items():
        assert f'"{url}" integrity="{digest}"' in page


@pytest.mark.parametrize("path", ["/schema/redoc", "/schema/elements", "/schema/rapidoc"])
async def test_unpinnable_renderers_are_not_served(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 404


async def test_the_openapi_document_is_still_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "apiclub"
