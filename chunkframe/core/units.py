"""Quantities as people read them: byte sizes for every repr and the command line."""

from __future__ import annotations

__all__ = ["format_bytes"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(n: float | None) -> str:
    """``n`` bytes in binary units (1 KiB = 1,024 B), one decimal above bytes; ``-`` when
    unknown (None or NaN). The one byte formatter of chunkframe's reprs and CLI.

    >>> format_bytes(512), format_bytes(1536), format_bytes(3 * 2**30), format_bytes(None)
    ('512 B', '1.5 KiB', '3.0 GiB', '-')
    """
    if n is None or n != n:  # None or NaN
        return "-"
    size = float(n)
    for unit in _UNITS[:-1]:
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} {_UNITS[-1]}"
