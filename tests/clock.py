"""A monotonic clock that moves only when a test says so: staleness windows without sleeping."""

from __future__ import annotations

import math
import time
from types import ModuleType
from typing import Any

import pytest


class FakeClock:
    """Stands in for a module's ``time``: ``monotonic()`` stays put until :meth:`advance`, and
    ``sleep()`` advances it at once (the seconds asked are kept in ``slept``); the rest
    (``time()``...) is the real module's."""

    def __init__(self) -> None:
        # never behind the real clock (times it gave out stay in the past), and a whole
        # number of seconds, so that windows such as 0.5 s add up exactly
        self.now = float(math.ceil(time.monotonic()))
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def fake_clock(monkeypatch: pytest.MonkeyPatch, *modules: ModuleType,
               name: str = "time") -> FakeClock:
    """One :class:`FakeClock` replacing the ``time`` module (as imported under ``name``) in
    each of ``modules``, for this test."""
    clock = FakeClock()
    for module in modules:
        monkeypatch.setattr(module, name, clock)
    return clock
