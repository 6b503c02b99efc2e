"""A thread pool that an interrupt cannot leave with a worker nobody wakes at exit."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["ThreadPool"]

T = TypeVar("T")


class ThreadPool(ThreadPoolExecutor):
    """A :class:`~concurrent.futures.ThreadPoolExecutor` that shuts itself down when
    ``submit`` is interrupted, and says so (:attr:`closed`), so its owner starts another.

    ``submit`` starts a worker when none is idle, and registers it for the wake-up the
    interpreter sends every worker at exit only after ``Thread.start`` returns. ``start``
    waits for the new thread to run, which on a busy machine takes long enough for a
    Ctrl-C or SIGTERM to land in between: the ``KeyboardInterrupt`` then leaves a live,
    non-daemon worker blocked on the work queue that nothing wakes, and the process hangs
    at exit after it has reported the interrupt. Shutting down puts the wake-up on the
    work queue itself, which every worker reads, registered or not; work already queued
    still runs first.
    """

    closed = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        try:
            return super().submit(fn, *args, **kwargs)
        except BaseException:
            self.shutdown(wait=False)
            raise

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.closed = True
        super().shutdown(wait, cancel_futures=cancel_futures)
