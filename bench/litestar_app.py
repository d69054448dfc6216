"""apiclub's own Litestar app without its server, for uvicorn behind the tutorial's nginx.

Stack (c) of the benchmark: `uvicorn bench.litestar_app:app` with APICLUB_DATA_DIR set. It tells
the framework's share apart from the server's (Hypercorn, in-process TLS) in apiclub's figures.
"""

from __future__ import annotations

import os

from apiclub.api import create_app
from apiclub.settings import Settings

app = create_app(Settings.from_env(os.environ))
