"""The background loop that keeps every certificate in service fresh; it never raises.

Modelled on certmagic's maintenance: the default leaf (or the operator's files) is checked
every `check_interval`, each ACME name at once and then every `store_check_interval` (or
sooner, when its backoff ends). A failure is logged and retried while the current
certificate, or stand-in, stays in service; the server never goes down over a renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from apiclub.errors import ApiclubError
from apiclub.tls.cache import CertCache
from apiclub.tls.managed import ManagedCert
from apiclub.units import MINUTE, SECOND

logger = logging.getLogger("apiclub.tls")

RENEW_CHECK_INTERVAL = 10 * MINUTE
# How often each ACME certificate is checked: due for renewal, or renewed in the store by
# another process (`apiclub certs renew`), which is then served within this interval.
STORE_CHECK_INTERVAL = 30 * SECOND


class Maintenance:
    """Runs `renew_local` and each of `cache.managed` on their own schedules until stopped.

    `renew_local` renews (or reloads) the default certificate and publishes it; it blocks,
    so it runs in a thread, as does each ACME order.
    """

    def __init__(
        self,
        cache: CertCache,
        renew_local: Callable[[], object],
        *,
        check_interval: timedelta = RENEW_CHECK_INTERVAL,
        store_check_interval: timedelta = STORE_CHECK_INTERVAL,
    ) -> None:
        self.cache = cache
        self.renew_local = renew_local
        self.check_interval = check_interval
        self.store_check_interval = store_check_interval

    async def run(self, stop: asyncio.Event) -> None:
        """Keep every certificate fresh until `stop` is set; never raises."""
        cancel = threading.Event()
        loops = [
            self._maintain_acme(managed, stop, cancel) for managed in self.cache.managed.values()
        ]
        if self.cache.local is not None:
            loops.append(self._maintain_local(stop))

        async def cancel_on_stop() -> None:
            await stop.wait()
            cancel.set()  # interrupts an order's polling in its thread

        watcher = asyncio.create_task(cancel_on_stop())
        try:
            await asyncio.gather(*loops)
        finally:
            watcher.cancel()

    async def _maintain_local(self, stop: asyncio.Event) -> None:
        interval = self.check_interval.total_seconds()
        while not await _stopped(stop, interval):
            try:
                await asyncio.to_thread(self.renew_local)
                await asyncio.to_thread(self.cache.repair_live)
            except ApiclubError as exc:  # names the file and the fix: no traceback needed
                self._log_renewal_failure(exc)
            except Exception:
                logger.exception("certificate renewal failed; retrying in %s", self.check_interval)

    def _log_renewal_failure(self, exc: ApiclubError) -> None:
        current = self.cache.local
        serving = "nothing"
        if current is not None:
            serial, until = current.leaf.serial_number, current.not_after
            serving = f"serial {serial:x}, valid until {until:%Y-%m-%d %H:%M} UTC"
        logger.error(
            "certificate renewal failed: %s; still serving the certificate in memory (%s); "
            "retrying in %s",
            exc,
            serving,
            self.check_interval,
        )

    async def _maintain_acme(
        self, managed: ManagedCert, stop: asyncio.Event, cancel: threading.Event
    ) -> None:
        interval = self.store_check_interval.total_seconds()
        while not stop.is_set():
            try:
                if await asyncio.to_thread(managed.maintain_once, cancel):
                    self.cache.publish()
                    _log_serving(managed)
                await asyncio.to_thread(self.cache.repair_live)
            except Exception:  # maintain_once logs its own failures; this is a last resort
                logger.exception("%s: certificate maintenance failed", managed.name)
            wait = interval
            if managed.due():
                wait = min(interval, max(managed.backoff.remaining(), 0.01))
            if await _stopped(stop, wait):
                return


def _log_serving(managed: ManagedCert) -> None:
    if managed.current is None or managed.is_standin:
        return
    logger.info(
        "%s: now serving certificate serial %x, valid until %s (no restart needed)",
        managed.name,
        managed.current.leaf.serial_number,
        f"{managed.current.not_after:%Y-%m-%d %H:%M} UTC",
    )


async def _stopped(stop: asyncio.Event, timeout: float) -> bool:
    """Wait up to `timeout` seconds for `stop`; tell whether it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=timeout)
    return stop.is_set()
