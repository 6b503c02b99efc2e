"""Quantities as people read them: byte sizes and counted nouns for every repr and message."""

from __future__ import annotations

__all__ = ["format_bytes", "plural"]

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


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``n`` (with thousands separators) and ``noun``, or its plural ``nouns`` (default:
    ``noun + "s"``) unless ``n`` is 1. The one way messages count things.

    >>> plural(1, "chunk"), plural(0, "chunk"), plural(1_234, "row"), plural(2, "entry", "entries")
    ('1 chunk', '0 chunks', '1,234 rows', '2 entries')
    """
    return f"{n:,} {noun if n == 1 else (nouns or noun + 's')}"
