"""Progress bars: the ipywidgets form in a Jupyter kernel, tqdm's text elsewhere, nothing if off."""

from __future__ import annotations

import sys
from typing import Any, Protocol

__all__ = ["Progress", "progress_bar", "in_kernel", "UNITS"]

UNITS = ("rows", "chunks", "datasets", "B")
"""What a bar can count; ``B`` (bytes, for CSV sources) is scaled by 1024 (KB, MB...)."""


class Progress(Protocol):
    """What long work calls on its bar (a tqdm bar, or the silent stand-in)."""

    n: float
    total: float | None

    def update(self, n: float = 1) -> Any: ...

    def close(self) -> None: ...


class _Silent:
    """Stands in for a bar when progress is off: counts, shows nothing."""

    def __init__(self, total: float | None) -> None:
        self.n: float = 0
        self.total = total

    def update(self, n: float = 1) -> None:
        self.n += n

    def close(self) -> None:
        pass


def progress_bar(total: float | None, desc: str, enabled: bool | None = True,
                 unit: str = "rows") -> Progress:
    """A bar counting ``unit`` up to ``total`` (None: unknown, count and rate only).

    With a total it shows the percentage, the count (``1.2M/3.4M rows``), the elapsed time,
    the ETA and the rate; the finished bar stays on screen with its final count and rate (a
    bar closed before its total — an error — stays too, red in a notebook). In a Jupyter
    kernel it is an ipywidgets bar (``tqdm.notebook``), elsewhere text on stderr.

    Parameters
    ----------
    total : float or None
        The amount of work, in ``unit``; None when it cannot be known in advance.
    desc : str
        What is being done, e.g. ``"ingest sensors"``.
    enabled : bool or None, default True
        False: no bar (the stand-in still counts). None: a bar only in a notebook or on an
        interactive terminal (never in pipes, logs or tests).
    unit : str, default "rows"
        One of :data:`UNITS`.

    Returns
    -------
    Progress
        Call ``update(amount)`` as work is done and ``close()`` at the end.

    Raises
    ------
    ValueError
        ``unit`` is not one of :data:`UNITS`, or ``total`` is negative.

    Examples
    --------
    >>> bar = progress_bar(3, "demo", enabled=False)
    >>> bar.update(2); bar.n
    2
    """
    if unit not in UNITS:
        raise ValueError(f"progress unit {unit!r} for {desc!r} is not one of {UNITS}")
    if total is not None and total < 0:
        raise ValueError(f"progress total {total!r} for {desc!r} is negative; give the "
                         "amount of work, or None when it is unknown")
    if enabled is None:
        enabled = in_kernel() or bool(getattr(sys.stderr, "isatty", lambda: False)())
    if not enabled:
        return _Silent(total)
    if in_kernel():
        from tqdm.notebook import tqdm as bar_class
    else:
        from tqdm.std import tqdm as bar_class
    scale = {"unit_divisor": 1024} if unit == "B" else {}
    # smoothing=0: the rate is the average, so the finished bar shows the run's real rate
    bar: Progress = bar_class(total=total, desc=desc, unit=unit if unit == "B" else f" {unit}",
                              unit_scale=unit != "chunks", leave=True, dynamic_ncols=True,
                              mininterval=0.2, smoothing=0, **scale)
    return bar


def in_kernel() -> bool:
    """Whether code runs in a Jupyter kernel, where widgets (bars, the browser) can show."""
    shell_module = sys.modules.get("IPython")
    if shell_module is None:
        return False
    shell = shell_module.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None
