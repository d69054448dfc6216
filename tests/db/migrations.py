"""The ids of the real migrations, read from their files (as Piccolo finds them)."""

from __future__ import annotations

import re
from pathlib import Path

import piccolo_migrations

MIGRATION_IDS = sorted(
    match[1]
    for path in Path(piccolo_migrations.__file__).parent.glob("apiclub_*.py")
    if (match := re.search(r'^ID = "(.+)"$', path.read_text(), re.MULTILINE))
)
"""In the order they apply (Piccolo sorts ids, which are timestamps)."""
RECORDED = [(migration_id, "apiclub") for migration_id in MIGRATION_IDS]
"""The rows of Piccolo's `migration` table (name, app_name) once all are applied."""
