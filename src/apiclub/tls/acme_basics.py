"""What the rest of `tls/` needs to know of ACME without importing the `acme` package.

`acme` (with `requests`, `urllib3` and `josepy`) is a large part of a cold start to import
(docs/performance.md); a server whose names are all local never needs it. The certificate manager
and the renewal loop name these; only `acme_client` imports `acme`, when an order starts.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from apiclub.errors import CertificateError

POLL_INTERVAL = timedelta(seconds=1)
"""How often an order's authorizations are polled."""


class AcmeError(CertificateError):
    """The ACME server refused or could not be reached; says why and when to try again."""

    def __init__(self, what: str, problem_type: str, detail: str, retry_after: float | None):
        wait = ""
        if retry_after:  # the operator running `apiclub certs ...` should know too
            wait = f"; the server asks to wait {timedelta(seconds=round(retry_after))} first"
        super().__init__(f"{what}: {problem_type}: {detail}{wait}")
        self.problem_type = problem_type
        self.detail = detail
        self.retry_after = retry_after
        """Seconds the server asked us to wait (Retry-After), or None."""


def directory_id(url: str) -> str:
    """A file-name-safe id of a directory URL (certmagic's issuer key), e.g.
    `acme-v02.api.letsencrypt.org-directory`: certificates of staging and production never mix.
    """
    parts = urlsplit(url)
    raw = f"{parts.netloc}{parts.path}".replace(":", "-").replace("/", "-")
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in raw).strip("-.") or "acme"
