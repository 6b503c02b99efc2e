"""Notebook benchmark (issue 17): ds.plot of one week of a year of minute data, browse() steps.

``ds.plot(column, date_range=one week)`` with cold chunk caches (a new client each run)
against pandas' ``df[mask].plot()`` of the in-memory frame, measured side by side; a warm
plot of the whole year; and one ``browse()`` step to the next row with a warm cache (the
Python side of a click: the handler, the reads, the HTML and SVG of the panel). Prints a
markdown table and writes it to ``bench/results_notebook.md``.
"""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from common import alternating, redis, table, workdir  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402

import chunkframe as cf  # noqa: E402

HERE = Path(__file__).resolve().parent
MINUTES = 365 * 24 * 60
WEEK = ("2026-06-01", "2026-06-07 23:59")
RUNS = 9
STEPS = 300


def year_frame(seed: int = 17) -> pd.DataFrame:
    """A year of minute readings of 4 machines (2.1M rows): text with missing values,
    a nullable int, two floats."""
    rng = np.random.default_rng(seed)
    t = pd.date_range("2026-01-01", periods=MINUTES, freq="min", tz="UTC")
    n = 4 * MINUTES
    load = pd.array(rng.integers(0, 100, n), dtype="Int64")
    load[rng.random(n) < 0.02] = pd.NA
    note = pd.Series(rng.choice(["ok", "check belt", "oiled", None], n, p=[.9, .04, .03, .03]),
                     dtype="str")
    return pd.DataFrame({
        "time": np.repeat(t, 4),
        "machine": np.tile(["press-1", "press-2", "lathe", "mill"], MINUTES),
        "temperature": 60 + 5 * np.sin(np.arange(n) / 5_760) + rng.normal(0, 0.4, n),
        "vibration": rng.gamma(2.0, 0.5, n),
        "load": load,
        "note": note,
    })


def main() -> None:
    df = year_frame()
    tmp = workdir("notebook")
    server = redis()
    try:
        def connect() -> cf.Client:
            return cf.connect(store=tmp / "store", redis=server.url, catalog=tmp / "catalog.db",
                              home=tmp, prefix="bn")

        t = time.perf_counter()
        ds = connect().ingest(df, "year", chunk_rows=65_536, time_column="time",
                              device_column="machine", progress=False)
        ingest_s = time.perf_counter() - t
        plt.close(ds.plot("temperature", date_range=WEEK))  # imports matplotlib's parts once
        lo, hi = pd.Timestamp(WEEK[0], tz="UTC"), pd.Timestamp(WEEK[1], tz="UTC")
        chunks_read: list[int] = []

        def ours(_: int) -> float:
            cold = connect().open("year")
            t0 = time.perf_counter()
            fig = cold.plot("temperature", date_range=WEEK)
            fig.canvas.draw()  # both sides render, not only build
            took = time.perf_counter() - t0
            chunks_read.append(cold.cache_info()["misses"])
            plt.close(fig)
            return took

        def theirs(_: int) -> float:
            t0 = time.perf_counter()
            ax = df[(df["time"] >= lo) & (df["time"] <= hi)].plot(x="time", y="temperature")
            ax.figure.canvas.draw()
            took = time.perf_counter() - t0
            plt.close(ax.figure)
            return took

        mine, pandas_s = (statistics.median(d) for d in alternating([ours, theirs], range(RUNS)))

        warm = connect().open("year")
        plt.close(warm.plot("temperature", device="lathe"))  # fills the cache
        year = []
        for _ in range(5):
            t0 = time.perf_counter()
            fig = warm.plot("temperature", device="lathe")
            fig.canvas.draw()
            year.append(time.perf_counter() - t0)
            plt.close(fig)

        b = warm.browse(sn=1_000_000)
        for _ in range(20):
            b.next_button.click()
        clicks, updates = [], []
        for _ in range(STEPS):
            t0 = time.perf_counter()
            b.next_button.click()
            clicks.append(time.perf_counter() - t0)
            updates.append(b.update_seconds)
        click_ms = statistics.median(clicks) * 1e3
        p95_ms = float(np.percentile(clicks, 95)) * 1e3
        update_ms = statistics.median(updates) * 1e3
    finally:
        server.stop()

    rows = [
        ("`ds.plot('temperature', date_range=one week)`, cold cache, drawn "
         f"(median of {RUNS})", f"{mine * 1e3:.1f} ms", f"{pandas_s * 1e3:.1f} ms",
         f"**{mine / pandas_s:.2f}** (report)"),
        ("  chunks read for the week", f"{statistics.median(chunks_read):.0f} of {ds.meta.chunks}",
         "whole frame in memory", ""),
        ("`ds.plot('temperature', device='lathe')`: the whole year, warm cache (median of 5)",
         f"{statistics.median(year) * 1e3:.0f} ms", "", "(well under 1 s)"),
        (f"`browse()` ▶ step, warm cache: click to panel updated (median of {STEPS})",
         f"{click_ms:.2f} ms (p95 {p95_ms:.2f} ms)", "", f"**{click_ms:.1f} ms** (≤ 50 ms)"),
        ("  of which the widget update (`Browser.update_seconds`)", f"{update_ms:.2f} ms", "", ""),
    ]
    text = (f"# Notebook benchmark (`python bench/bench_notebook.py`)\n\n"
            f"Python {platform.python_version()}, pandas {pd.__version__}, matplotlib "
            f"{matplotlib.__version__} (Agg); {len(df):,} rows (a year of minutes × 4 machines) "
            f"in {ds.meta.chunks} chunks, ingested in {ingest_s:.1f} s. Baseline: pandas "
            "`df[mask].plot(x='time', y='temperature')` of the in-memory frame (all 4 machines' "
            "rows in the week, 40,320 points; chunkframe draws at most 5,000, min/max per "
            "bucket). Cold: a new client (empty chunk cache; the OS page cache is warm).\n\n"
            + table(rows))
    print(text)
    (HERE / "results_notebook.md").write_text(text)


if __name__ == "__main__":
    main()
