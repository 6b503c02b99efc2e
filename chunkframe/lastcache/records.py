"""Last-cache records: sortable time keys, typed value payloads, and the bytes stored in Redis.

A record is a 20-digit time key (``time + 2**63`` zero-padded, so Lua compares int64
nanoseconds exactly, without doubles) followed by msgpack ``[time, type code, value]``, or
``~`` (:data:`NO_VALUE`): "this series has no value". Values are msgpack, never pickle.
"""

from __future__ import annotations

import datetime as _dt
import decimal
from typing import Any

import msgpack
import pandas as pd
import pyarrow as pa

__all__ = [
    "SEP", "NO_VALUE", "KEY_LEN", "time_key", "time_from_key", "value_payload",
    "value_from_payload", "encode_record", "decode_record", "field_name",
]

SEP = "\x1f"
"""Separates device and measurement in a field of the last hash."""
NO_VALUE = b"~"
"""Record of a series known to have no non-null value."""
KEY_LEN = 20
"""Length of a time key: the first bytes of every record with a time."""
_OFFSET = 1 << 63


def time_key(t: int) -> str:
    """``t`` (int64 ns, or the raw integer of an integer time column) as 20 sortable digits.

    >>> time_key(0)
    '09223372036854775808'
    """
    return f"{int(t) + _OFFSET:020d}"


def time_from_key(key: str | bytes) -> int:
    """The time a :func:`time_key` (or a record starting with one) stands for.

    >>> time_from_key(time_key(-5))
    -5
    """
    return int(key[:KEY_LEN]) - _OFFSET


def value_payload(col: pa.ChunkedArray | pa.Array, row: int) -> tuple[str, Any]:
    """(type code, msgpack-able payload) of one non-null value of an Arrow column."""
    s = col[row]
    t = col.type
    if pa.types.is_dictionary(t):
        s, t = s.value, t.value_type
    if pa.types.is_boolean(t):
        return "b", bool(s.as_py())
    if pa.types.is_integer(t):
        return "i", int(s.as_py())
    if pa.types.is_floating(t):
        return "f", float(s.as_py())
    if pa.types.is_string(t) or pa.types.is_large_string(t) or str(t) == "string_view":
        return "s", s.as_py()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "y", bytes(s.as_py())
    if pa.types.is_timestamp(t):
        return "T", [int(s.value), t.unit, t.tz]
    if pa.types.is_duration(t):
        return "D", [int(s.value), t.unit]
    if pa.types.is_date(t):
        return "d", s.as_py().isoformat()
    if pa.types.is_time(t):
        return "t", s.as_py().isoformat()
    if pa.types.is_decimal(t):
        return "M", str(s.as_py())
    value = s.as_py()
    try:
        msgpack.packb(value, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        return "r", repr(value)
    return "x", value


def value_from_payload(code: str, payload: Any) -> Any:
    """The Python/pandas value of a :func:`value_payload` (``Timestamp``, ``Decimal``, ...)."""
    if code == "T":
        value, unit, tz = payload
        return pd.Timestamp(value, unit=unit, tz=tz)
    if code == "D":
        return pd.Timedelta(payload[0], unit=payload[1])
    if code == "d":
        return _dt.date.fromisoformat(payload)
    if code == "t":
        return _dt.time.fromisoformat(payload)
    if code == "M":
        return decimal.Decimal(payload)
    return payload  # b, i, f, s, y, x, r: msgpack gives the Python value back


def encode_record(t: int, code: str | None = None, payload: Any = None) -> bytes:
    """The stored form of ``(t, value)``: time key + msgpack ``[t, code, payload]``.

    ``code=None`` encodes a null value: only the time key, which the Lua rules ignore.

    >>> decode_record(encode_record(5, "f", 1.5))
    (5, 1.5)
    """
    head = time_key(t).encode("ascii")
    if code is None:
        return head
    return head + msgpack.packb([int(t), code, payload], use_bin_type=True)


def decode_record(raw: bytes) -> tuple[int, Any] | None:
    """``(time, value)`` of a stored record; None for the no-value marker."""
    if raw == NO_VALUE or len(raw) <= KEY_LEN:
        return None
    t, code, payload = msgpack.unpackb(raw[KEY_LEN:], raw=False)
    return int(t), value_from_payload(code, payload)


def field_name(device: str, measurement: str) -> str:
    """The field of series ``(device, measurement)`` in a dataset's last hash."""
    return f"{device}{SEP}{measurement}"
