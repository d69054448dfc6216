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

import json
import logging
from typing import Any

ACCESS_FIELD = "access"
"""The `extra=` key whose dict of fields an access line merges into its object."""


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
        fields = getattr(record, ACCESS_FIELD, None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)
