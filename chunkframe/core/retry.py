"""Retries with a deadline for a backend's transient faults, logged once per outage.

A write that meets a blip (a Redis restarting, a cluster failing over) waits it out rather
than failing the ingest; only an outage longer than the deadline reaches the caller, as the
clean error it always was. One warning marks an outage's start and one line its end, however
many calls waited through it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["retry_until", "Outages", "OUTAGES"]

T = TypeVar("T")
log = logging.getLogger("chunkframe")


class Outages:
    """Which backends are in an outage now (by name), so each is logged once, not per call."""

    def __init__(self) -> None:
        self._since: dict[str, float] = {}
        self._lock = threading.Lock()

    def begin(self, what: str, exc: BaseException, seconds: float) -> None:
        with self._lock:
            if what in self._since:
                return
            self._since[what] = time.monotonic()
        log.warning("%s is unreachable (%s); retrying for up to %g s", what, exc, seconds)

    def end(self, what: str, healed: bool) -> None:
        with self._lock:
            since = self._since.pop(what, None)
        if since is None:
            return
        took = time.monotonic() - since
        if healed:
            log.warning("%s is reachable again after %.1f s", what, took)
        else:
            log.warning("%s stayed unreachable for %.1f s: giving up", what, took)


#: the process's outages: every retrying call reports to it
OUTAGES = Outages()


def retry_until(call: Callable[[], T], *, seconds: float, transient: Callable[[BaseException], bool],
                what: str, worth_it: Callable[[], bool] = lambda: True) -> T:
    """``call()``, tried again with backoff (50 ms doubling to 1 s) while it raises an error
    ``transient`` accepts, until ``seconds`` have passed since its first failure, or
    ``worth_it()`` (asked before each new try) says no (a writer whose lock lapsed must not
    write at all); then that error is raised. ``what`` names the backend in the log."""
    if seconds <= 0:
        return call()  # retries off: the error as it comes, nothing logged
    first: float | None = None
    delay = 0.05
    while True:
        try:
            out = call()
        except Exception as exc:
            if not transient(exc):
                raise
            now = time.monotonic()
            if first is None:
                first = now
                OUTAGES.begin(what, exc, seconds)
            if now - first >= seconds or not worth_it():
                OUTAGES.end(what, healed=False)
                raise
            time.sleep(min(delay, first + seconds - now))
            delay = min(delay * 2, 1.0)
            continue
        if first is not None:
            OUTAGES.end(what, healed=True)
        return out
