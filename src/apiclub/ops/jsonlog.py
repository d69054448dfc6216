"""`--log-format json`: one JSON object per log line, for log collectors.

Field names follow Caddy's logs where one applies: `ts` (unix seconds, a float), `level`
(lowercase), `logger`, `msg`; an access line adds `request_id`, `remote_ip`, `remote_port`,
`proto`, `method`, `host`, `uri`, `status`, `size`, `duration` (seconds) and `user_agent`,
flat rather than nested under `request` so that `jq .status` works. A record's `access`
attribute (set through `extra=`) carries those fields. Nothing here adds a header: the
`Authorization` header (bearer tokens) and the database URL (its password) never reach a line,
as in the text format.
"""

from __future__ import annotations

import contextvars
import json
import logging
from typing import Any

ACCESS_FIELD = "access"
"""The `extra=` key whose dict of fields an access line merges into its object."""
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "apiclub_request_id", default=None
)
"""The id of the request being answered (set by the request middleware): application lines
logged while answering it carry it as `request_id`, so they join their access line."""


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object on one line (newlines in values are escaped)."""

    def __init__(self, *, with_pid: bool = False) -> None:
        super().__init__()
        self.with_pid = with_pid

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.with_pid:
            line["pid"] = record.process
        if (request_id := REQUEST_ID.get()) is not None:
            line["request_id"] = request_id
        fields = getattr(record, ACCESS_FIELD, None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)
