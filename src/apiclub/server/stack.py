"""The ASGI layers in front of the API on its listener, from the outside in.

    metrics and request id → proxy headers → HSTS or challenge answers → host check → API

`Server.serve` runs what this builds; deciding the layers is kept apart from starting and
stopping listeners, so that each can be read (and tested) alone.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from apiclub.server.asgi import ASGIApp
from apiclub.server.hosts import HostCheckMiddleware
from apiclub.server.hsts import HstsMiddleware, hsts_hosts
from apiclub.server.metrics_middleware import observe_requests
from apiclub.server.proxy import ProxyHeadersMiddleware
from apiclub.server.redirect import ChallengeMiddleware
from apiclub.settings import HstsMode, Settings, TlsMode
from apiclub.tls import CertManager

if TYPE_CHECKING:
    from apiclub.ops.metrics import Metrics

logger = logging.getLogger("apiclub.server")


def api_stack(
    app: ASGIApp, settings: Settings, cert_manager: CertManager | None, metrics: Metrics | None
) -> ASGIApp:
    """`app` behind the layers every request to the API listener passes through.

    With TLS on, HTTPS answers carry HSTS for the names it applies to. Behind a proxy (TLS
    off) with managed certificates, the proxy forwards port 80's ACME challenges here, so the
    challenge answers come first.
    """
    checked: ASGIApp = HostCheckMiddleware(app, settings.domains)
    tls = settings.tls is not TlsMode.OFF
    if cert_manager is not None and tls:
        checked = _with_hsts(checked, settings, cert_manager)
    elif cert_manager is not None:
        checked = ChallengeMiddleware(checked, cert_manager.challenges)
    if not tls and settings.hsts is HstsMode.ON:
        logger.warning(
            "APICLUB_HSTS=on is ignored with APICLUB_TLS=off: the proxy in front talks HTTPS "
            "to browsers, so it sends Strict-Transport-Security (nginx: add_header)"
        )
    proxied = ProxyHeadersMiddleware(checked, settings.trusted_proxies)
    return observe_requests(proxied, settings, metrics)


def _with_hsts(app: ASGIApp, settings: Settings, cert_manager: CertManager) -> ASGIApp:
    hosts = hsts_hosts(settings, cert_manager.acme_names)
    if not hosts:
        return app
    logger.info(
        "Strict-Transport-Security (max-age=%d s) on HTTPS answers for %s",
        settings.hsts_max_age,
        ", ".join(sorted(hosts)),
    )
    return HstsMiddleware(app, hosts, settings.hsts_max_age)
