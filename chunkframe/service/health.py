"""Background health: the recoverer's dry run, repeated in a thread of the service."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..core.errors import InvalidArgumentError

if TYPE_CHECKING:
    import pandas as pd  # the CLI imports this module to parse options: pandas stays out

__all__ = ["HealthMonitor", "check_interval"]

log = logging.getLogger("chunkframe.service")

_FIELDS = ("dataset", "problem", "action", "detail")


def check_interval(seconds: Any) -> float:
    """``seconds`` between two background checks as a float (0: no checks), or an
    :class:`InvalidArgumentError` saying what a valid value is."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
            or not math.isfinite(seconds) or seconds < 0:
        raise InvalidArgumentError(
            f"the health check interval must be a finite number of seconds >= 0 (0 turns the "
            f"background check off), got {seconds!r}; e.g. --health-interval 60")
    return float(seconds)


class HealthMonitor:
    """Runs ``check`` (the recoverer's dry run: a report DataFrame with ``dataset, problem,
    action, detail`` columns) every ``interval`` seconds in a daemon thread, and keeps the
    last report for ``/v1/health?detail=1``.

    It never repairs anything (``check`` is a dry run) and never blocks a request:
    :meth:`report` only reads the last finished report. A check that raises is reported
    (``error``) and the next one runs on schedule; the thread never dies of it.
    """

    def __init__(self, check: Callable[[], pd.DataFrame], interval: float) -> None:
        self.check = check
        self.interval = check_interval(interval)
        self._last: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start checking now and then every ``interval`` seconds (not if it is 0)."""
        if self.interval == 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="chunkframe-health",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (a check under way finishes first, up to ``timeout`` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run_once(self) -> dict[str, Any]:
        """Run one check now and keep its report (also when it fails); return it."""
        started = time.monotonic()
        at = datetime.now(UTC).isoformat()
        try:
            df = self.check()
            problems = [{k: _plain(row[k]) for k in _FIELDS}
                        for row in df.to_dict("records")]
            report: dict[str, Any] = {"checked_at": at, "clean": not problems,
                                      "problems": problems, "error": None}
        except Exception as exc:  # noqa: BLE001 - reported in the health detail, logged
            log.warning("the background health check failed: %s: %s", type(exc).__name__, exc)
            report = {"checked_at": at, "clean": False, "problems": [],
                      "error": f"{type(exc).__name__}: {exc}"}
        report["seconds"] = round(time.monotonic() - started, 3)
        self._last = report
        return report

    def report(self) -> dict[str, Any]:
        """The last check's report with the schedule: ``interval``, ``checked_at`` (None
        before the first check), ``clean``, ``problems``, ``error``, ``seconds``."""
        last = self._last or {"checked_at": None, "clean": None, "problems": [],
                              "error": None, "seconds": None}
        return {"interval": self.interval, **last}

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval)


def _plain(value: Any) -> Any:
    """A report cell as JSON data (numpy scalars as Python ones)."""
    return value.item() if hasattr(value, "item") else value
