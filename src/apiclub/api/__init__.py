"""The HTTP API: a Litestar app serving the tasks contract (README, "The API").

Knows nothing of TLS or Hypercorn; `apiclub.server` serves what `create_app` returns.
"""

from __future__ import annotations

from apiclub.api.app import create_app

__all__ = ["create_app"]
