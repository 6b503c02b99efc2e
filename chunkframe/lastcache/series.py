"""Which series a call names: a dataset's devices and measurements, checked against a snapshot."""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import cachetools
import numpy as np
import pandas as pd

from ..core.devices import device_key, typed_device
from ..core.errors import NoTimeColumnError
from ..core.model import DatasetMeta

if TYPE_CHECKING:
    from ..read.reader import Snapshot

__all__ = ["SeriesNames", "require_time", "listlike", "dedupe"]


def require_time(meta: DatasetMeta, consequence: str) -> str:
    """The dataset's time column; :class:`NoTimeColumnError` (saying ``consequence``) if it
    has none."""
    if meta.time_column is None:
        raise NoTimeColumnError(meta.id, consequence)
    return meta.time_column


def listlike(value: Any) -> bool:
    """Whether ``value`` is a collection of devices or columns rather than one."""
    return isinstance(value, (list, tuple, set, frozenset, np.ndarray, pd.Index, pd.Series))


def dedupe(items: Iterable[Any]) -> list[Any]:
    """``items`` without repeats, in first-seen order."""
    return list(dict.fromkeys(items))


class SeriesNames:
    """Devices and measurements of datasets, from their snapshots; device lists are kept per
    dataset version in a small LRU (``local_datasets`` datasets).

    Parameters
    ----------
    local_datasets : int
        How many datasets' device lists this process keeps.
    """

    def __init__(self, local_datasets: int = 256) -> None:
        self._devices: cachetools.LRUCache[str, tuple[tuple[int, int], int, dict[str, Any]]] = (
            cachetools.LRUCache(local_datasets))
        self._mutex = threading.Lock()

    @staticmethod
    def measurements(snap: Snapshot) -> list[str]:
        """Every column but the time and device columns, in schema order."""
        meta = snap.meta
        return [n for n in snap.schema.names if n not in (meta.time_column, meta.device_column)]

    def select_measurements(self, snap: Snapshot, columns: Sequence[str] | str | None
                            ) -> list[str]:
        """``columns`` (one, a list, or None: all) checked to be measurements of the dataset;
        a ``KeyError`` naming the column, what it is instead and the measurements otherwise."""
        measurements = self.measurements(snap)
        if columns is None:
            return measurements
        cols = [columns] if isinstance(columns, str) or not listlike(columns) else list(columns)
        meta = snap.meta
        for c in cols:
            if c in measurements:
                continue
            role = ("the time column" if c == meta.time_column else
                    "the device column" if c == meta.device_column and c is not None else None)
            why = f"{c!r} is {role}, not a measurement" if role else f"no measurement {c!r}"
            raise KeyError(f"dataset {meta.id!r} has {why}; measurements are {measurements!r}")
        return dedupe(cols)

    def devices(self, snap: Snapshot) -> dict[str, Any]:
        """Device key → typed device value, sorted by value, from the chunk statistics.

        Kept per dataset with the chunks it was read from: after an append, only the new
        chunks' statistics are read (the table of a generation only grows)."""
        with self._mutex:
            hit = self._devices.get(snap.meta.id)
        if hit is not None and hit[0] == snap.stamp:
            return hit[2]
        dcol = snap.meta.device_column
        typ = snap.schema.field(dcol).type if dcol is not None else None
        first, keys = 0, set()
        if hit is not None and hit[0][0] == snap.meta.generation and hit[1] <= len(snap.chunks):
            first, keys = hit[1], set(hit[2])
        keys |= {k for i in range(first, len(snap.chunks)) for k in snap.chunks[i].stats}
        typed = {k: typed_device(k, typ) for k in keys}
        try:
            order = sorted(keys, key=lambda k: typed[k])
        except TypeError:
            order = sorted(keys)
        devices = {k: typed[k] for k in order}
        with self._mutex:
            self._devices[snap.meta.id] = (snap.stamp, len(snap.chunks), devices)
        return devices

    def select_devices(self, snap: Snapshot, device: Any) -> list[str]:
        """Keys of ``device`` (one, a list, or None: all); a ``KeyError`` naming an unknown
        device, near names and the known ones otherwise."""
        known = self.devices(snap)
        meta = snap.meta
        if meta.device_column is None:
            if device is not None:
                raise KeyError(
                    f"dataset {meta.id!r} has no device column, so its series belong to no "
                    f"device; call without device= (got {device!r})")
            return list(known)
        if device is None:
            return list(known)
        items = list(device) if listlike(device) else [device]
        dtype = snap.schema.field(meta.device_column).type
        keys = [device_key(d, dtype) for d in items]
        unknown = [d for d, k in zip(items, keys, strict=True) if k not in known]
        if unknown:
            names = list(known)
            close = difflib.get_close_matches(device_key(unknown[0]), names, n=3, cutoff=0.5)
            hint = f"; did you mean {[known[k] for k in close]!r}" if close else ""
            shown = [known[k] for k in names[:10]]
            more = f" (and {len(names) - 10} more)" if len(names) > 10 else ""
            raise KeyError(
                f"dataset {meta.id!r} has no device {unknown[0]!r} in its device column "
                f"{meta.device_column!r}{hint}. Known devices: {shown!r}{more}")
        return dedupe(keys)
