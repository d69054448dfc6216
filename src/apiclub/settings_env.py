"""Reading settings from environment variables: one parser per variable, errors naming it.

`Settings.from_env` calls this; unset or empty variables are left out, so the defaults in
`Settings` apply. Which variable fills which field with which parser is `setting_table`'s.
"""

from __future__ import annotations

from collections.abc import Mapping

from apiclub.errors import ConfigError
from apiclub.setting_table import SETTINGS
from apiclub.setting_values import read_secret_file


def values_from_env(environ: Mapping[str, str]) -> dict[str, object]:
    """The `Settings` fields `environ` sets, parsed; a bad value raises ConfigError.

    Variables are read in table order, so of two filling one field the later wins
    (`APICLUB_ACME_EAB_HMAC_KEY_FILE` over `APICLUB_ACME_EAB_HMAC_KEY`).
    """
    values: dict[str, object] = {}
    for spec in SETTINGS:
        raw = environ.get(spec.env, "").strip()
        if raw:
            values[spec.field] = spec.parse(spec.env, raw)
    if "database_url_file" in values:
        # Two sources of one secret: refuse rather than pick one silently.
        if environ.get("APICLUB_DATABASE_URL", "").strip():
            raise ConfigError(
                "APICLUB_DATABASE_URL and APICLUB_DATABASE_URL_FILE are both set: keep one"
            )
        key = "APICLUB_DATABASE_URL_FILE"
        values["database_url"] = read_secret_file(key, environ[key].strip())
    return values
