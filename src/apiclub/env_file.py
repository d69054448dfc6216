"""An environment file (`--env-file`, APICLUB_ENV_FILE): settings re-read at every start.

systemd's `EnvironmentFile=` is read when the service starts, not at `systemctl reload`; a
file that apiclub reads itself is what lets a reload (SIGHUP) pick up changed settings: each
new worker reads it at its own start. The format is systemd's and Docker's: `KEY=VALUE` lines,
`#` comments, blank lines, optional `export `, a value optionally in single or double quotes.
"""

from __future__ import annotations

import re
from pathlib import Path

from apiclub.errors import ConfigError

_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")


def read_env_file(path: Path) -> dict[str, str]:
    """The variables `path` sets.

    Raises:
        ConfigError: the file cannot be read, or a line is not `KEY=VALUE`.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"APICLUB_ENV_FILE={str(path)!r} cannot be read: {exc}; give a readable file of "
            "KEY=VALUE lines, or unset it"
        ) from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.fullmatch(stripped)
        if match is None:
            raise ConfigError(
                f"APICLUB_ENV_FILE={str(path)!r} line {number} is not KEY=VALUE: "
                f"{stripped[:60]!r}; fix or comment it out (#)"
            )
        key, value = match.group(1), match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values
