"""One rule for integer arguments (versions, serial numbers, counts): any integral number but a bool."""

from __future__ import annotations

import numbers

from .errors import InvalidArgumentError

__all__ = ["as_integer", "integer_at_least"]


def as_integer(value: object) -> int | None:
    """``value`` as an ``int`` if it is an integral number: a Python ``int``, a numpy integer
    (what ``ds.versions()`` and numpy arrays hand out), any :class:`numbers.Integral`. A bool
    is not a number here. ``None`` for anything else (floats, strings, bools...).

    >>> import numpy as np
    >>> as_integer(np.int64(117)), as_integer(3), as_integer(True), as_integer(2.0)
    (117, 3, None, None)
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return None


def integer_at_least(value: object, what: str, minimum: int, why: str = "") -> int:
    """``value`` as an ``int`` of at least ``minimum`` (see :func:`as_integer`), else an
    :class:`InvalidArgumentError` naming ``what`` (``why``: why that minimum, in parentheses).

    >>> integer_at_least(4, "workers", 1)
    4
    >>> integer_at_least(0, "workers", 1)
    Traceback (most recent call last):
    ...
    chunkframe.core.errors.InvalidArgumentError: workers must be an integer >= 1, got 0
    """
    n = as_integer(value)
    if n is None or n < minimum:
        reason = f" ({why})" if why else ""
        raise InvalidArgumentError(f"{what} must be an integer >= {minimum}{reason}, got {value!r}")
    return n
