"""retry_until: transient faults retried to a deadline, others raised at once, one log line
when an outage starts and one when it ends, however many calls wait through it."""

from __future__ import annotations

import logging
import threading

import pytest

from chunkframe.core.retry import retry_until


class Flaky:
    """Fails ``times`` times with ``error``, then answers ``"ok"``."""

    def __init__(self, times: int, error: Exception) -> None:
        self.left, self.error, self.calls = times, error, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.left:
            self.left -= 1
            raise self.error
        return "ok"


def transient(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionError)


def said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "chunkframe"]


def test_a_blip_is_retried_and_logged_as_one_outage(caplog) -> None:
    call = Flaky(3, ConnectionError("refused"))
    with caplog.at_level(logging.WARNING, logger="chunkframe"):
        assert retry_until(call, seconds=5, transient=transient, what="db") == "ok"
    assert call.calls == 4
    went, back = said(caplog)  # two lines, not one per failed call
    assert went == "db is unreachable (refused); retrying for up to 5 s"
    assert back.startswith("db is reachable again after ")


def test_an_error_that_is_not_transient_is_raised_at_once(caplog) -> None:
    call = Flaky(1, ValueError("bad"))
    with pytest.raises(ValueError, match="bad"):
        retry_until(call, seconds=5, transient=transient, what="db")
    assert call.calls == 1 and not said(caplog)


def test_past_the_deadline_the_last_error_is_raised(caplog) -> None:
    call = Flaky(10_000, ConnectionError("down"))
    with caplog.at_level(logging.WARNING, logger="chunkframe"), \
            pytest.raises(ConnectionError, match="down"):
        retry_until(call, seconds=0.3, transient=transient, what="db")
    assert 2 <= call.calls < 100  # backoff: not a busy loop
    assert "stayed unreachable" in said(caplog)[-1] and "giving up" in said(caplog)[-1]


def test_worth_it_stops_the_retries_early() -> None:
    call = Flaky(10_000, ConnectionError("down"))
    with pytest.raises(ConnectionError):
        retry_until(call, seconds=60, transient=transient, what="db", worth_it=lambda: False)
    assert call.calls == 1


def test_retries_off_raise_the_first_error_unlogged(caplog) -> None:
    call = Flaky(1, ConnectionError("down"))
    with caplog.at_level(logging.WARNING, logger="chunkframe"), pytest.raises(ConnectionError):
        retry_until(call, seconds=0, transient=transient, what="db")
    assert call.calls == 1 and not said(caplog)


def test_calls_waiting_through_one_outage_log_it_once(caplog) -> None:
    gate = threading.Event()

    def blocked() -> str:
        if not gate.is_set():
            raise ConnectionError("down")
        return "ok"

    out: list[str] = []
    with caplog.at_level(logging.WARNING, logger="chunkframe"):
        threads = [threading.Thread(target=lambda: out.append(retry_until(
            blocked, seconds=30, transient=transient, what="shared"))) for _ in range(4)]
        for t in threads:
            t.start()
        while not said(caplog):  # the outage is noticed (a condition, not a duration)
            threading.Event().wait(0.01)
        gate.set()
        for t in threads:
            t.join()
    assert out == ["ok"] * 4
    went = [m for m in said(caplog) if "unreachable" in m]
    back = [m for m in said(caplog) if "reachable again" in m]
    assert len(went) == 1 and len(back) == 1
