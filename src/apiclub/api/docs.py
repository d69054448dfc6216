"""The interactive API docs at /schema: Swagger UI, its third-party files pinned by hash.

Litestar's default pages load scripts from CDNs with no Subresource Integrity: a CDN (or
anyone who takes over the URL; Redoc's is `latest`) could run any script in the page, with the
page's origin, i.e. with a user's access to the API. Here the one page is Swagger UI at a fixed
version, and each of its files carries its SHA-384 (`integrity=`, W3C SRI): the browser refuses
a file whose bytes differ. The hashes were computed from the `swagger-ui-dist` package of that
version on the npm registry, which jsDelivr serves unchanged. No favicon from a CDN either.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.openapi.plugins import SwaggerRenderPlugin

SWAGGER_UI_VERSION = "5.18.2"
_CDN = f"https://cdn.jsdelivr.net/npm/swagger-ui-dist@{SWAGGER_UI_VERSION}"
INTEGRITY = {
    f"{_CDN}/swagger-ui-bundle.js": (
        "sha384-NXtFPpN61oWCuN4D42K6Zd5Rt2+uxeIT36R7kpXBuY9tLnZorzrJ4ykpqwJfgjpZ"
    ),
    f"{_CDN}/swagger-ui-standalone-preset.js": (
        "sha384-qr68CD0cvHa88PmVu7e1a58Ego4qvKtcvcLdS2a8Mo5zILI01gyIV9jVwJk7X2NU"
    ),
    f"{_CDN}/swagger-ui.css": (
        "sha384-rcbEi6xgdPk0iWkAQzT2F3FeBJXdG+ydrawGlfHAFIZG7wU6aKbQaRewysYpmrlW"
    ),
}
"""File URL -> its Subresource Integrity value (base64 SHA-384 of the npm package's file)."""


class PinnedSwaggerRenderPlugin(SwaggerRenderPlugin):
    """Litestar's Swagger UI page with `integrity=` on every file it loads (module docstring)."""

    def __init__(self) -> None:
        super().__init__(version=SWAGGER_UI_VERSION, path="/swagger", favicon="")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        page = super().render(request, openapi_schema)
        for url, digest in INTEGRITY.items():
            pinned = f'integrity="{digest}" crossorigin="anonymous"'.encode()
            for tag in (f'src="{url}" crossorigin'.encode(), f'href="{url}"'.encode()):
                if tag in page:
                    page = page.replace(tag, tag.split(b" ")[0] + b" " + pinned)
                    break
            else:  # Litestar's template changed: better no page than an unpinned script
                raise RuntimeError(f"the Swagger UI page no longer names {url}")
        return page
