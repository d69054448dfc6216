"""The API's access log as structured fields, for `--log-format json` (`ops.jsonlog`).

Hypercorn hands its logger the request scope, the response start message and the duration;
this builds Caddy's access-log fields from them. The URI is the raw path as sent, escaped
(`percent_escape`), with the query string: a decoded `%0a` cannot break the line, and JSON
escapes whatever else. Of the headers only Host and User-Agent are read.
"""

from __future__ import annotations

import logging
from typing import Any

from apiclub.ops.jsonlog import ACCESS_FIELD
from apiclub.server.access_log import AccessLogger
from apiclub.server.metrics_middleware import REQUEST_ID_KEY
from apiclub.server.redirect import percent_escape


class JsonAccessLogger(AccessLogger):
    """A Hypercorn `Logger` whose access lines carry their fields (config.logger_class)."""

    async def access(self, request: Any, response: Any, request_time: float) -> None:
        if self.access_logger is not None and self.access_logger.isEnabledFor(logging.INFO):
            fields = access_fields(request, response, request_time)
            self.access_logger.info("handled request", extra={ACCESS_FIELD: fields})


def access_fields(request: Any, response: Any, request_time: float) -> dict[str, object]:
    """Caddy's access-log fields for one request."""
    client = request.get("client") or ("", 0)
    host, user_agent = "", ""
    for name, value in request.get("headers", ()):
        if name in (b"host", b":authority") and not host:
            host = value.decode("latin-1")
        elif name == b"user-agent":
            user_agent = value.decode("latin-1")
    raw_path = request.get("raw_path") or request.get("path", "/").encode()
    uri = percent_escape(raw_path)
    if query := request.get("query_string"):
        uri += "?" + percent_escape(query)
    status, size = 0, 0
    if response is not None:
        status = int(response["status"])
        for name, value in response.get("headers", ()):
            if name.lower() == b"content-length":
                size = int(value)
    version = request.get("http_version", "1.1")
    return {
        "request_id": request.get(REQUEST_ID_KEY, ""),
        "remote_ip": client[0],
        "remote_port": client[1] if len(client) > 1 else 0,
        "proto": f"HTTP/{version}",
        "method": request.get("method", "GET"),
        "host": host,
        "uri": uri,
        "status": status,
        "size": size,
        "duration": round(request_time, 6),
        "user_agent": user_agent,
    }
