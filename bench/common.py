"""Shared set-up of the benchmarks: the 2M × 7 frame, real servers, timing helpers."""

from __future__ import annotations

import atexit
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from servers import RedisProcess  # noqa: E402

CHUNK_ROWS = 65_536


def frame(rows: int = 2_000_000, devices: int = 100, seed: int = 42) -> pd.DataFrame:
    """time, categorical device, 3 floats, an int and short strings — the issues' frame."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "time": pd.date_range("2026-01-01", periods=rows, freq="100ms"),
        "device": pd.Categorical.from_codes(rng.integers(0, devices, rows),
                                            [f"dev-{i:03d}" for i in range(devices)]),
        "a": rng.normal(size=rows),
        "b": rng.normal(size=rows),
        "c": rng.normal(size=rows),
        "n": rng.integers(0, 1_000_000, rows),
        "s": pd.Series(rng.choice(["ok", "warn", "fail", "idle"], rows), dtype="str"),
    })


def workdir(name: str) -> Path:
    """A scratch directory, removed when the benchmark exits (they hold GBs of chunks)."""
    path = Path(tempfile.mkdtemp(prefix=f"cfb-{name}-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def redis() -> RedisProcess:
    """A private redis-server (same binary as the embedded default)."""
    return RedisProcess().start()


def timed(fn: Callable[..., object], *args: Any) -> float:
    """Seconds one call of ``fn(*args)`` takes."""
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def alternating(fns: Sequence[Callable[[Any], float]], args: Iterable[Any]) -> list[list[float]]:
    """Durations of each ``fn(x)`` (each returns its own), run in turn on every ``x``.

    A tool and its baseline are measured side by side rather than one after the other:
    this 2-core VM's speed drifts by up to 1.5x for seconds at a time, and the disk's
    write-back by more, so back-to-back blocks of runs compare different machines.
    """
    out: list[list[float]] = [[] for _ in fns]
    for x in args:
        for durations, fn in zip(out, fns, strict=True):
            durations.append(fn(x))
    return out


def per_call(fn: Callable[[int], object], args: list[int]) -> float:
    """Median seconds per call of ``fn(a)`` over ``args`` (timed one by one)."""
    out = []
    for a in args:
        t = time.perf_counter()
        fn(a)
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def table(rows: list[tuple[str, str, str, str]]) -> str:
    """Markdown table: measure | chunkframe | baseline | ratio."""
    head = "| measure | chunkframe | baseline | ratio (target) |\n| --- | --- | --- | --- |\n"
    return head + "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows) + "\n"


def arctic_library(df: pd.DataFrame, work: Path, symbol: str) -> Any:
    """An ArcticDB (LMDB, under ``work``) library holding ``df`` as ``symbol``, indexed by
    its time and its device as text (ArcticDB takes no categoricals); None without
    arcticdb."""
    try:
        from arcticdb import Arctic
    except ImportError:
        return None
    lib = Arctic(f"lmdb://{work / 'arctic'}?map_size=16GB").get_library(
        "bench", create_if_missing=True)
    arc = df.set_index("time")
    arc["device"] = arc["device"].astype(str)
    lib.write(symbol, arc)
    return lib
