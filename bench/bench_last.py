"""Benchmark of last values: cached ``ds.last()`` against pandas on the same in-memory frame,
and the chunks a cold miss reads after a delete.

Run: ``python bench/bench_last.py`` (starts its own redis-server; temp store and catalog).
Prints a markdown table and writes it to ``bench/results_last.md``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from servers import RedisProcess  # noqa: E402

import chunkframe as cf  # noqa: E402

ROWS = 2_000_000
DEVICES = 100
MEASUREMENTS = ["m0", "m1", "m2", "m3"]
SEED = 7


def make_frame(rows: int = ROWS, seed: int = SEED) -> pd.DataFrame:
    """Readings every 10 ms from a random one of DEVICES devices: 4 float measurements."""
    rng = np.random.default_rng(seed)
    data = {
        "time": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(
            np.arange(rows, dtype=np.int64) * 10, unit="ms"),
        "device": pd.Series([f"dev{i:03d}" for i in rng.integers(0, DEVICES, rows)], dtype="str"),
    }
    for m in MEASUREMENTS:
        data[m] = rng.normal(size=rows)
    return pd.DataFrame(data)


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms"


def main() -> None:
    server = RedisProcess().start()
    tmp = Path(tempfile.mkdtemp(prefix="cf-bench-last-"))
    try:
        client = cf.connect(store=tmp / "store", redis=server.url, catalog=tmp / "catalog.db",
                            home=tmp, prefix="bench")
        lv = client.last_values
        df = make_frame()
        t0 = time.perf_counter()
        ds = client.ingest(df, "last-bench", time_column="time", device_column="device",
                           progress=False)
        ingest_s = time.perf_counter() - t0
        chunks = ds.meta.chunks

        # pandas on the in-memory frame
        expected = df.sort_values("time").groupby("device").last()
        pandas_s = median_seconds(lambda: df.sort_values("time").groupby("device").last(), 5)

        # cold: every series computed from the data (newest chunks first), cache filled
        client.reader.clear(metadata=False)
        reads0, fetch0 = lv.counters["chunk_reads"], client.reader.fetches
        t0 = time.perf_counter()
        got = ds.last()
        cold_s = time.perf_counter() - t0
        cold_reads = lv.counters["chunk_reads"] - reads0
        cold_fetches = client.reader.fetches - fetch0

        # correctness against pandas
        for d, m, t, v in got.itertuples(index=False):
            assert v == expected.loc[d, m] and t == expected.loc[d, "time"], (d, m)
        assert len(got) == DEVICES * len(MEASUREMENTS)

        # cached: one Redis round trip (state check) + the cached frame
        ds.last()
        cached_s = median_seconds(ds.last, 300)
        cached_one_s = median_seconds(lambda: ds.last("dev042", "m1"), 300)
        state_s = median_seconds(lambda: lv._read_state(ds.id), 300)
        other = cf.Client(client.settings)
        ods = other.open(ds.id)
        ods.last()
        other_s = median_seconds(ods.last, 300)

        # delete the recent data of one device, then a cold last() of it
        dev = "dev042"
        tmax = df["time"].iloc[-1]
        start = tmax - pd.Timedelta(seconds=60)  # ~60 of this device's rows
        dropped = ds.delete(dev, date_range=(start, None)).last_values_dropped
        client.reader.clear(metadata=False)
        reads0, fetch0 = lv.counters["chunk_reads"], client.reader.fetches
        t0 = time.perf_counter()
        after = ds.last(dev)
        del_cold_s = time.perf_counter() - t0
        del_reads = lv.counters["chunk_reads"] - reads0
        del_fetches = client.reader.fetches - fetch0
        keep = df[(df["device"] == dev) & (df["time"] < start)]
        assert set(after["time"]) == {keep["time"].iloc[-1]}, after

        # and a deeper delete: the device's last ~12 minutes (over a whole chunk of 65,536 rows)
        start2 = tmax - pd.Timedelta(minutes=12)
        ds.delete(dev, date_range=(start2, None))
        client.reader.clear(metadata=False)
        reads0 = lv.counters["chunk_reads"]
        after2 = ds.last(dev)
        deep_reads = lv.counters["chunk_reads"] - reads0
        keep2 = df[(df["device"] == dev) & (df["time"] < start2)]
        assert set(after2["time"]) == {keep2["time"].iloc[-1]}, after2

        # appends: the commit hook reads back only chunks whose stats can change a last value
        in_order = make_frame(10_000, seed=2)
        in_order["time"] = in_order["time"] + (tmax - in_order["time"].iloc[0]) + pd.Timedelta(
            seconds=1)
        late = make_frame(10_000, seed=3)
        late["time"] = late["time"] + pd.Timedelta(hours=1)  # inside the old range
        hook_s: list[float] = []
        hook = lv.after_commit

        def timed_hook(*args):
            t = time.perf_counter()
            hook(*args)
            hook_s.append(time.perf_counter() - t)

        client.commit_hooks[client.commit_hooks.index(hook)] = timed_hook
        w0 = lv.counters["write_chunk_reads"]
        t0 = time.perf_counter()
        ds.append(in_order, progress=False)
        app_in_s = time.perf_counter() - t0
        w_in = lv.counters["write_chunk_reads"] - w0
        w0 = lv.counters["write_chunk_reads"]
        t0 = time.perf_counter()
        ds.append(late, progress=False)
        app_late_s = time.perf_counter() - t0
        w_late = lv.counters["write_chunk_reads"] - w0
        reads0 = lv.counters["chunk_reads"]
        final = ds.last()
        assert lv.counters["chunk_reads"] == reads0  # the hook kept every entry current
        exp_final = pd.concat([df, in_order, late]).sort_values("time", kind="stable") \
            .groupby("device").last()
        for d, m, t, v in final.itertuples(index=False):
            if d == dev:
                continue  # its deleted ranges are not in the pandas frame
            assert v == exp_final.loc[d, m] and t == exp_final.loc[d, "time"], (d, m)

        rows = [
            ("rows × series", f"{ROWS:,} rows, {DEVICES} devices × {len(MEASUREMENTS)} "
                              f"measurements, {chunks} chunks of 65,536 rows"),
            ("ingest (for reference)", f"{ingest_s:.2f} s"),
            ("pandas `sort_values(time).groupby(device).last()` (median of 5)", ms(pandas_s)),
            ("`ds.last()` cold: computed from data, cache filled", ms(cold_s)),
            ("  chunks read by the cold `ds.last()`", f"{cold_reads} (fetched {cold_fetches})"),
            ("`ds.last()` cached (median of 300)", ms(cached_s)),
            ("**cached `ds.last()` ÷ pandas** (target ≤ 0.01)", f"**{cached_s / pandas_s:.5f}**"),
            ("`ds.last('dev042', 'm1')` cached (median of 300)", ms(cached_one_s)),
            ("  of which the per-call Redis state check (one EVALSHA)", ms(state_s)),
            ("`ds.last()` cached in a second client (median of 300)", ms(other_s)),
            ("delete of dev042's last 60 s: cached entries dropped", str(dropped)),
            ("  cold `last('dev042')` after it: chunks read (target ≤ 2)",
             f"{del_reads} (fetched {del_fetches}), {ms(del_cold_s)}"),
            ("delete of dev042's last 12 min: cold `last('dev042')` chunks read", str(deep_reads)),
            ("append 10,000 in-order rows: chunks read back by the hook",
             f"{w_in}; hook {ms(hook_s[0])} of the {app_in_s * 1e3:.0f} ms append"),
            ("append 10,000 late (out-of-order) rows: chunks read back by the hook",
             f"{w_late}; hook {ms(hook_s[1])} of the {app_late_s * 1e3:.0f} ms append"),
        ]
        table = ["| measure | value |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in rows]
        text = ("# Last values benchmark (`python bench/bench_last.py`)\n\n"
                f"Python {sys.version.split()[0]}, pandas {pd.__version__}, "
                f"one local redis-server over a unix socket.\n\n" + "\n".join(table) + "\n")
        print(text)
        (HERE / "results_last.md").write_text(text)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
