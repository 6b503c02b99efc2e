"""Range-read benchmark: a one-day ``ds.to_pandas(date_range=...)`` against pandas' mask.

    python bench/bench_range.py

A year of minute readings (525,600 rows x 7 columns: a UTC time, a categorical station,
three floats, an int and short strings), ingested in 10,000-row chunks (53 chunks) against
a private redis-server. For 25 days spread over the year, in turn:

* chunkframe: ``ds.to_pandas(date_range=(day, day + 23:59:59))`` with a cold chunk cache
  (``reader.clear(metadata=False)``; the OS page cache is warm, as it is for any file read
  twice), counting the chunks fetched and skipped;
* pandas: ``df[(df.time >= a) & (df.time <= b)]`` on the frame in memory.

Each measure is taken twice and the second kept (the first warms code paths).

Target (issue 16): median ratio <= 1.0 and at most 2 chunks fetched per day. Also shown: the
same read with the metadata cache cold too (a fresh snapshot from Redis), a ``where=`` on a
float column whose min/max skip chunks (median of 5), and ``to_arrow``. Writes ``bench/results_range.md``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from common import redis, table, workdir  # noqa: E402

ROWS = 365 * 24 * 60
CHUNK_ROWS = 10_000
DAYS = 25


def build_frame(rows: int = ROWS, seed: int = 16) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = np.array(["ok", "warn", "fail", "idle", "sync"])
    minutes = np.arange(rows)
    return pd.DataFrame({
        "time": pd.date_range("2025-01-01", periods=rows, freq="min", tz="UTC"),
        "station": pd.Categorical.from_codes(rng.integers(0, 12, rows),
                                             [f"st-{i:02d}" for i in range(12)]),
        "temperature": 10 + 12 * np.sin(2 * np.pi * minutes / rows) + rng.normal(0, 2, rows),
        "humidity": rng.uniform(20, 90, rows),
        "pressure": rng.normal(1013, 8, rows),
        "count": rng.integers(0, 1_000, rows),
        "status": pd.Series(words[rng.integers(0, len(words), rows)], dtype="str"),
    })


def main() -> None:
    import chunkframe as cf

    df = build_frame()
    server = redis()
    try:
        work = workdir("range")
        client = cf.connect(store=work / "store", redis=server.url, catalog=work / "c.db",
                            home=work, prefix="bench")
        ds = client.ingest(df, "minutes", chunk_rows=CHUNK_ROWS, time_column="time",
                           progress=False)
        reader = client.reader
        days = pd.date_range("2025-01-03", "2025-12-28", periods=DAYS, tz="UTC").normalize()
        ds.to_pandas()  # the page cache holds the chunk files (warm), as for any re-read

        ours, cold_meta, base, fetched, skipped = [], [], [], [], []
        for day in days:
            a, b = day, day + pd.Timedelta("23:59:59")
            for _ in range(2):  # the first round warms code paths; keep the second
                reader.clear(metadata=False)
                f0, s0 = reader.fetches, reader.skipped
                t = time.perf_counter()
                got = ds.to_pandas(date_range=(a, b))
                t_ours = time.perf_counter() - t
                f1, s1 = reader.fetches - f0, reader.skipped - s0
                t = time.perf_counter()
                want = df[(df.time >= a) & (df.time <= b)]
                t_base = time.perf_counter() - t
                reader.clear()
                t = time.perf_counter()
                ds.to_pandas(date_range=(a, b))
                t_cold = time.perf_counter() - t
            pd.testing.assert_frame_equal(got, want)
            day_rows = len(want)
            ours.append(t_ours)
            base.append(t_base)
            cold_meta.append(t_cold)
            fetched.append(f1)
            skipped.append(s1)

        # where= on the temperature: its per-chunk min/max leave out the cold months' chunks
        hot = pc.field("temperature") > 28
        runs, base_runs = [], []
        for _ in range(5):
            reader.clear(metadata=False)
            f0, s0 = reader.fetches, reader.skipped
            t = time.perf_counter()
            got = ds.to_pandas(where=hot)
            runs.append(time.perf_counter() - t)
            where_fetched, where_skipped = reader.fetches - f0, reader.skipped - s0
            t = time.perf_counter()
            want = df[df.temperature > 28]
            base_runs.append(time.perf_counter() - t)
        pd.testing.assert_frame_equal(got, want)
        t_where, t_where_base = statistics.median(runs), statistics.median(base_runs)

        reader.clear(metadata=False)
        a, b = days[10], days[10] + pd.Timedelta("23:59:59")
        t_arrow = statistics.median(
            _timed(lambda: ds.to_arrow(date_range=(a, b)), reader) for _ in range(9))
        nchunks = ds.meta.chunks
    finally:
        server.stop()

    med = statistics.median
    ratio = med(ours) / med(base)
    rows = [
        (f"one-day date_range, chunk cache cold (median of {DAYS} days; "
         f"{day_rows:,} of {ROWS:,} rows)",
         f"{med(ours) * 1e3:.2f} ms", f"{med(base) * 1e3:.2f} ms", f"{ratio:.2f} (≤ 1.0)"),
        ("chunks fetched per day (max) / skipped (median)", f"{max(fetched)} / {med(skipped):.0f} "
         f"of {nchunks}", "-", f"{max(fetched)} (≤ 2)"),
        ("same, metadata cache cold too", f"{med(cold_meta) * 1e3:.2f} ms",
         f"{med(base) * 1e3:.2f} ms", f"{med(cold_meta) / med(base):.2f}"),
        ("one-day `to_arrow(date_range=...)`", f"{t_arrow * 1e3:.2f} ms",
         f"{med(base) * 1e3:.2f} ms", f"{t_arrow / med(base):.2f}"),
        (f"`where=pc.field('temperature') > 28` ({where_fetched} fetched, {where_skipped} "
         "skipped by min/max)", f"{t_where * 1e3:.1f} ms", f"{t_where_base * 1e3:.1f} ms",
         f"{t_where / t_where_base:.2f}"),
    ]
    text = (
        "# Range reads (issue 16)\n\n"
        f"{ROWS:,} minute rows x 7 columns in {nchunks} chunks of {CHUNK_ROWS:,}; baseline: "
        "pandas' `df[(df.time >= a) & (df.time <= b)]` (or `df[df.temperature > 28]`) on the "
        "frame in memory. Chunk cache cold, page cache warm.\n\n" + table(rows)
    )
    (HERE / "results_range.md").write_text(text)
    print(text)


def _timed(fn, reader) -> float:  # type: ignore[no-untyped-def]
    reader.clear(metadata=False)
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
