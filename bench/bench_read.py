"""Reads by serial number (issues 3 and 12) against pandas, raw pyarrow, Parquet and Lance.

python bench/bench_read.py [--rows N]

Two tables, each in two regimes:
* ``synthetic``: the issues' 2M x 7 frame (time, categorical, 3 floats, an int, 4 strings);
* ``flights``: a wide, real-looking 336,776 x 19 table (data/samples/make_samples.py
  ``flights``: text with missing values and thousands of distinct values, nullable ints,
  floats with NaN, tz-aware timestamps);
* ``fits``: the default 256 MB chunk cache holds the whole table;
* ``3x``: a cache a third of the table's stored size, as when the table is larger than
  memory (the reason chunkframe exists).

Memory is measured in child processes (``--child``): peak growth of private (anonymous)
RSS, and of RSS with the file-backed pages of verified maps, while reading a table 3x the
cache; and the summed PSS of 4 processes reading one dataset.

``big`` (issue 23; ``--big-rows``, default 10M, 0 to skip; ``--only big`` runs it alone
and writes nothing): the 2M frame's columns plus a fourth float (10M x 8), the default
256 MB cache, the OS page cache warm: ``get_many`` of 10k random rows against Lance
``take``, the same rows again against ``df.iloc[list]``, a single ``get`` against
``df.iloc[sn]``, and 2 of the 8 columns read whole against ArcticDB (LMDB) and Lance.
Needs pylance and ArcticDB (``pip install --no-deps arcticdb==6.28.2 attrs msgpack
packaging pytz pyyaml "protobuf<7"``); a peer that is missing is reported, not measured.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import crc32c
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from common import (
    CHUNK_ROWS,
    ROOT,
    alternating,
    arctic_library,
    frame,
    per_call,
    redis,
    table,
    timed,
    workdir,
)
from frames import all_dtypes  # tests/frames.py: on the path through common

import chunkframe as cf

sys.path.insert(0, str(ROOT / "data" / "samples"))
from make_samples import flights  # noqa: E402

BATCH = 10_000
Row = tuple[str, str, str, str]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--big-rows", type=int, default=10_000_000)
    p.add_argument("--only", choices=["big"])
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    work = workdir("read")
    server = redis()
    rows: list[Row] = []
    try:
        settings = dict(store=work / "store", redis=server.url, catalog=work / "cat.db",
                        home=work)
        client = cf.connect(**settings)
        if args.big_rows:
            big(args.big_rows, settings, work, rows)
        if args.only == "big":
            print(table(rows))
            return
        for name, df in (("synthetic", frame(args.rows)), ("flights", flights())):
            measure(name, df, client, settings, work, rows)
            del df
        # last: a second dataset of every dtype in the cache would disturb the rows above
        df = frame(args.rows)
        rng = np.random.default_rng(1)
        many = rng.integers(0, len(df), BATCH)
        mixed = all_dtypes(len(df))
        mds = client.ingest(mixed, "every-dtype", chunk_rows=CHUNK_ROWS, progress=False)
        mds.get_many(many)
        mds.get_many(many)
        t_mixed, t_iloc_mixed = best_pair(lambda: mds.get_many(many), lambda: mixed.iloc[many])
        rows.append(("warm `get_many` 10k, a 2M frame of every dtype of the core issue "
                     "(Int64 and boolean with NA, float with NaN, tz datetimes, ...)",
                     f"{t_mixed * 1e3:.2f} ms", f"`df.iloc[list]` {t_iloc_mixed * 1e3:.2f} ms",
                     f"{t_mixed / t_iloc_mixed:.2f}"))
    finally:
        server.stop()
    md = table(rows)
    print(md)
    (ROOT / "bench" / "results_read.md").write_text(md)


def measure(name: str, df: pd.DataFrame, client: cf.Client, settings: dict[str, Any],
            work: Path, rows: list[Row]) -> None:
    ds = client.ingest(df, name, chunk_rows=CHUNK_ROWS, progress=False)
    stored = int(ds.chunks["bytes"].sum())
    shape = f"{name} {len(df):,} x {len(df.columns)}"
    rows.append((f"**{shape}**: {len(ds.chunks)} chunks, {stored / 2**20:.0f} MB stored",
                 "", "", ""))
    rng = np.random.default_rng(1)
    keys, starts = list(ds.chunks["key"]), np.asarray(ds.chunks["start"])

    def chunk_of(sn: int) -> int:
        return int(np.searchsorted(starts, sn, side="right") - 1)

    def floor_chunk(i: int) -> pa.Table:
        """What any reader must do for a chunk: read the file, check it, decode it."""
        with open(client.store.path(keys[i]), "rb") as f:
            data = f.read()
        crc32c.crc32c(data)
        return pa.ipc.open_file(pa.py_buffer(data)).read_all()

    # -- fits: the default cache holds everything ----------------------------------------
    sns = [int(s) for s in rng.integers(0, len(df), 3_000)]
    for sn in sns:
        ds.get(sn)
    gets, ilocs = alternating([lambda s: timed(ds.get, s),
                               lambda s: timed(df.iloc.__getitem__, s)], sns)
    t_get, t_iloc = float(np.median(gets)), float(np.median(ilocs))
    rows.append(("warm `ds.get(sn)` (median of 3,000)", f"{t_get * 1e6:.1f} µs",
                 f"`df.iloc[sn]` {t_iloc * 1e6:.1f} µs", f"{t_get / t_iloc:.2f} (≤ 1.0)"))

    touch = [int(s) for s in rng.integers(0, len(df), 200)]

    def cold_get(sn: int) -> float:
        client.reader.clear(metadata=False)
        t = time.perf_counter()
        ds.get(sn)
        return time.perf_counter() - t

    def raw_floor(sn: int) -> float:
        t = time.perf_counter()
        i = chunk_of(sn)
        floor_chunk(i).slice(sn - int(starts[i]), 1).to_pylist()
        return time.perf_counter() - t

    for sn in touch[:20]:  # the OS page cache holds the files: what a first touch reads
        raw_floor(sn)
        cold_get(sn)
    firsts, floors = alternating([cold_get, raw_floor], touch)
    t_first, t_floor = float(np.median(firsts)), float(np.median(floors))
    rows.append(("first touch of a chunk (not cached; OS page cache warm)",
                 f"{t_first * 1e3:.2f} ms",
                 f"read + CRC32C + IPC decode + row {t_floor * 1e3:.2f} ms",
                 f"{t_first / t_floor:.2f} (≤ 1.3)"))

    many = rng.integers(0, len(df), BATCH)
    firsts_many, ilocs_many = [], []
    for rep in range(3):  # first call on cached chunks: every chunk cached, no planes yet
        client.reader.clear(metadata=False)
        for s in starts:
            ds.get(int(s))
        batch = np.random.default_rng(100 + rep).integers(0, len(df), BATCH)
        firsts_many.append(timed(ds.get_many, batch))
        ilocs_many.append(timed(df.iloc.__getitem__, batch))
    t_fm, t_fi = min(firsts_many), min(ilocs_many)
    rows.append((f"first `get_many` of {BATCH:,} random sns on cached chunks",
                 f"{t_fm * 1e3:.2f} ms", f"`df.iloc[list]` {t_fi * 1e3:.2f} ms",
                 f"{t_fm / t_fi:.2f} (≤ 3)"))
    t_fill = timed(ds.get_many, many)  # read again by a batch: the planes fill
    t_many, t_iloc_many = best_pair(lambda: ds.get_many(many), lambda: df.iloc[many])
    rows.append((f"warm `get_many` of {BATCH:,} random sns", f"{t_many * 1e3:.2f} ms",
                 f"`df.iloc[list]` {t_iloc_many * 1e3:.2f} ms",
                 f"{t_many / t_iloc_many:.2f} (≤ 1.5)"))
    rows.append(("  its second call, filling the gather planes", f"{t_fill * 1e3:.1f} ms",
                 f"cache now {ds.cache_info()['bytes'] / 2**20:.0f} MB "
                 f"(chunks: {stored / 2**20:.0f} MB)", ""))

    pq_path = work / f"{name}.parquet"
    df.to_parquet(pq_path, row_group_size=CHUNK_ROWS)
    t_scan, t_read_pq = best_pair(lambda: [None for _ in ds.iter_chunks()],
                                  lambda: pd.read_parquet(pq_path), repeat=3)
    rows.append(("full scan: `iter_chunks()` vs `pd.read_parquet` of the whole file",
                 f"{t_scan:.3f} s", f"{t_read_pq:.3f} s", f"{t_scan / t_read_pq:.2f}"))
    pf = pq.ParquetFile(pq_path)
    t_pq_row = per_call(lambda sn: pf.read_row_group(sn // CHUNK_ROWS).slice(
        sn % CHUNK_ROWS, 1).to_pylist(), touch)
    rows.append(("cold single row: first touch vs Parquet `read_row_group`",
                 f"{t_first * 1e3:.2f} ms", f"{t_pq_row * 1e3:.2f} ms",
                 f"{t_first / t_pq_row:.2f}"))

    # -- 3x: a cache a third of the table --------------------------------------------------
    cache = stored // 3
    small = cf.connect(**settings, chunk_cache_bytes=cache)
    sds = small.open(name)
    rows.append((f"*cache {cache / 2**20:.0f} MB: the table is 3x the cache*", "", "", ""))
    lds = lance_dataset(df, work / f"{name}.lance")
    batches = [np.random.default_rng(200 + k).integers(0, len(df), BATCH) for k in range(7)]
    sds.get_many(batches[-1])
    if lds is not None:
        lds.take(batches[-1].tolist())
    ours, floor, lance = [], [], []
    for batch in batches:
        ours.append(timed(sds.get_many, batch))
        touched = np.unique(np.searchsorted(starts, batch, side="right") - 1)
        t = time.perf_counter()
        for i in touched.tolist():
            floor_chunk(i)
        floor.append(time.perf_counter() - t)
        if lds is not None:
            lance.append(timed(lds.take, batch.tolist()))
    t_ours, t_floor_many = float(np.median(ours)), float(np.median(floor))
    info = sds.cache_info()
    rows.append((f"`get_many` of {BATCH:,} random sns (median of 7 batches)",
                 f"{t_ours * 1e3:.1f} ms",
                 f"read + CRC32C + decode of the chunks touched {t_floor_many * 1e3:.1f} ms",
                 f"{t_ours / t_floor_many:.2f} (≤ 1.5)"))
    if lance:
        t_lance = float(np.median(lance))
        rows.append(("  the same rows: Lance `take` (open dataset)", f"{t_ours * 1e3:.1f} ms",
                     f"{t_lance * 1e3:.1f} ms", f"{t_ours / t_lance:.2f} (≤ 1.0)"))
    else:
        rows.append(("  Lance", "-", "pylance not installed (pip install '.[bench]')", "-"))
    before = dict(sds.cache_info())
    singles = [int(s) for s in rng.integers(0, len(df), 3_000)]
    t_single = per_call(sds.get, singles)
    after = sds.cache_info()
    hits = (after["hits"] - before["hits"]) / max(
        after["hits"] + after["misses"] - before["hits"] - before["misses"], 1)
    rows.append(("3,000 random `ds.get` (median)", f"{t_single * 1e3:.3f} ms",
                 f"{hits:.0%} cache hits; first touch floor {t_floor * 1e3:.2f} ms", ""))
    assert info["total_bytes"] <= cache

    # -- memory, in child processes --------------------------------------------------------
    client.reader.clear()  # this process's maps of the files would share their pages too
    small.reader.clear()
    config = {"settings": {k: str(v) for k, v in settings.items()}, "dataset": name,
              "cache": cache, "rows": len(df), "mode": "rss"}
    rss = run_child(config)
    rows.append(("peak private (anonymous) RSS growth while reading the table 3x the cache "
                 "(20 `get_many` of 10k, 2,000 `get`, a scan; after one warm-up read of each "
                 "kind)",
                 f"{rss['anon_growth'] / 2**20:.0f} MB",
                 f"cache {cache / 2**20:.0f} MB + 96 MB",
                 f"{(rss['anon_growth'] - cache) / 2**20:+.0f} MB over the cache (≤ +96)"))
    rows.append(("  RSS growth with the verified maps' file-backed pages",
                 f"{rss['growth'] / 2**20:.0f} MB", f"table {stored / 2**20:.0f} MB stored", ""))
    one = run_children(dict(config, mode="pss", cache=2**30), 1)
    four = run_children(dict(config, mode="pss", cache=2**30), 4)
    g1, g4 = one[0]["pss_growth"], sum(c["pss_growth"] for c in four)
    rows.append(("4 processes holding the whole table in their caches: summed PSS growth",
                 f"{g4 / 2**20:.0f} MB", f"one process {g1 / 2**20:.0f} MB",
                 f"{g4 / g1:.2f} (≤ 1.5)"))
    t1, t4 = one[0]["pss"], sum(c["pss"] for c in four)
    rows.append(("  whole-process PSS (interpreter, pandas, pyarrow included)",
                 f"{t4 / 2**20:.0f} MB", f"{t1 / 2**20:.0f} MB", f"{t4 / t1:.2f}"))


def big(n: int, settings: dict[str, Any], work: Path, rows: list[Row]) -> None:
    """Issue 23's table: 10M x 8, the default cache, the OS page cache warm."""
    import os

    df = frame(n)
    df["d"] = np.random.default_rng(8).normal(size=n)
    client = cf.connect(**settings)
    ds = client.ingest(df, "big", chunk_rows=CHUNK_ROWS, progress=False)
    stored = int(ds.chunks["bytes"].sum())
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    rows.append((f"**big {n:,} x {len(df.columns)}** (issue 23): {len(ds.chunks)} chunks, "
                 f"{stored / 2**20:.0f} MB stored, cache "
                 f"{client.settings.chunk_cache_bytes / 2**20:.0f} MB; load {load}", "", "", ""))
    # the device as text for Lance: its take fails on a dictionary split over its files
    # ("Dictionary key bigger than the key type", pylance 0.x at 10M rows)
    lds = lance_dataset(df.assign(device=df["device"].astype(str)), work / "big.lance")
    lib = arctic_library(df, work, "big")
    for sn in ds.chunks["start"].tolist():  # every file in the OS page cache
        ds.get(int(sn))
    client.reader.clear(metadata=False)

    # get_many of 10k random sns, each batch new; then the same rows again
    batches = [np.random.default_rng(300 + k).integers(0, n, BATCH) for k in range(7)]
    ds.get_many(batches[-1])
    if lds is not None:
        lds.take(batches[-1].tolist())
    fns: list[Callable[[Any], float]] = [lambda b: timed(ds.get_many, b)]
    if lds is not None:
        fns.append(lambda b: timed(lds.take, b.tolist()))
    runs = alternating(fns, batches[:-1])
    t_ours = float(np.median(runs[0]))
    if lds is not None:
        t_lance = float(np.median(runs[1]))
        rows.append((f"`get_many` of {BATCH:,} random sns (median of 6 new batches)",
                     f"{t_ours * 1e3:.1f} ms", f"Lance `take` {t_lance * 1e3:.1f} ms",
                     f"{t_ours / t_lance:.2f} (≤ 0.5)"))
    else:
        rows.append(("`get_many` 10k vs Lance", f"{t_ours * 1e3:.1f} ms",
                     "pylance not installed", "-"))
    again = batches[0]
    t_again, t_iloc = best_pair(lambda: ds.get_many(again), lambda: df.iloc[again])
    rows.append(("  the same rows asked again", f"{t_again * 1e3:.1f} ms",
                 f"`df.iloc[list]` {t_iloc * 1e3:.1f} ms", f"{t_again / t_iloc:.2f} (≤ 3)"))
    singles = [int(s) for s in np.random.default_rng(9).integers(0, n, 3_000)]
    gets, ilocs = alternating([lambda s: timed(ds.get, s),
                               lambda s: timed(df.iloc.__getitem__, s)], singles)
    t_get, t_iloc1 = float(np.median(gets)), float(np.median(ilocs))
    rows.append(("single `ds.get(sn)` (median of 3,000 random)", f"{t_get * 1e6:.1f} µs",
                 f"`df.iloc[sn]` {t_iloc1 * 1e6:.1f} µs", f"{t_get / t_iloc1:.2f} (≤ 3)"))
    info = ds.cache_info()
    rows.append(("  cache after these reads", f"{info['bytes'] / 2**20:.0f} MB private",
                 f"{info['mapped_bytes'] / 2**20:.0f} MB in {info['mapped_chunks']} verified "
                 f"maps; {info['fetches']} fetches, {info['map_hits']} map hits", ""))

    # 2 of the 8 columns, the whole table
    for cols in (["a", "n"], ["time", "s"]):
        fns = [lambda _, c=cols: timed(ds.to_pandas, c)]
        names = []
        if lib is not None:
            arcols = [c for c in cols if c != "time"]  # ArcticDB's index comes with any read
            fns.append(lambda _, c=arcols: timed(lambda: lib.read("big", columns=c).data))
            names.append("ArcticDB (LMDB)")
        if lds is not None:
            fns.append(lambda _, c=cols: timed(lambda: lds.to_table(columns=c).to_pandas()))
            names.append("Lance")
        best = [min(r) for r in alternating(fns, range(3))]
        if len(best) == 1:
            rows.append((f"`to_pandas({cols})`", f"{best[0] * 1e3:.0f} ms", "no peer installed",
                         "-"))
            continue
        k = int(np.argmin(best[1:]))
        peers = ", ".join(f"{nm} {t * 1e3:.0f} ms" for nm, t in zip(names, best[1:], strict=True))
        rows.append((f"2 of 8 columns, full read: `to_pandas({cols})` (best of 3)",
                     f"{best[0] * 1e3:.0f} ms", peers,
                     f"{best[0] / best[1 + k]:.2f} ÷ {names[k]} (≤ 1.0)"))
    client.reader.clear()


def lance_dataset(df: pd.DataFrame, path: Path) -> Any:
    try:
        import lance
    except ImportError:
        return None
    lance.write_dataset(pa.Table.from_pandas(df, preserve_index=False), str(path))
    return lance.dataset(str(path))


def run_child(config: dict[str, Any]) -> dict[str, Any]:
    return run_children(config, 1)[0]


def run_children(config: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """``n`` child processes reading at once; each waits for all to be ready before it
    measures (a barrier file per child), so their shared pages are counted together."""
    barrier = Path(workdir("barrier"))
    procs = [subprocess.Popen([sys.executable, __file__, "--child",
                               json.dumps(dict(config, barrier=str(barrier), n=n, me=k))],
                              stdout=subprocess.PIPE, text=True) for k in range(n)]
    out = []
    for proc in procs:
        stdout, _ = proc.communicate(timeout=600)
        if proc.returncode:
            raise RuntimeError(f"child failed: {stdout}")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def child(config: dict[str, Any]) -> dict[str, Any]:
    import psutil

    s = config["settings"]
    client = cf.connect(store=s["store"], redis=s["redis"], catalog=s["catalog"], home=s["home"],
                        chunk_cache_bytes=config["cache"])
    ds = client.open(config["dataset"])
    # imports and first-use set-up (pyarrow.compute's kernels, pandas' Arrow conversions)
    # done before the baseline: one of each kind of read, then an empty cache
    ds.get(0)
    ds.get_many(np.arange(0, config["rows"], max(config["rows"] // 1_000, 1)))
    next(iter(ds.iter_chunks()))
    client.reader.clear(metadata=False)
    proc = psutil.Process()
    if config["mode"] == "rss":
        # sampled every millisecond by a thread (ru_maxrss would carry the parent's peak:
        # Linux keeps it across exec)
        base, base_anon = proc.memory_info().rss, anon_rss()
        peak, peak_anon = [base], [base_anon]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], proc.memory_info().rss)
                peak_anon[0] = max(peak_anon[0], anon_rss())
                time.sleep(0.001)

        sampler = threading.Thread(target=sample)
        sampler.start()
        rng = np.random.default_rng(7)
        try:
            for _ in range(20):
                ds.get_many(rng.integers(0, config["rows"], BATCH))
            for sn in rng.integers(0, config["rows"], 2_000).tolist():
                ds.get(sn)
            for _ in ds.iter_chunks():
                pass
        finally:
            done.set()
            sampler.join()
        return {"growth": peak[0] - base, "anon_growth": peak_anon[0] - base_anon}
    base = proc.memory_full_info().pss
    starts = ds.chunks["start"].tolist()
    for sn in starts:
        ds.get(sn)  # every chunk in this process's cache: mapped from the shared page cache
    barrier = Path(config["barrier"])
    (barrier / str(config["me"])).touch()
    deadline = time.monotonic() + 120
    while len(list(barrier.iterdir())) < config["n"] and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # all are mapped now
    info = proc.memory_full_info()
    result = {"pss": info.pss, "pss_growth": info.pss - base}
    (barrier / f"done-{config['me']}").touch()
    while (len([p for p in barrier.iterdir() if p.name.startswith("done")]) < config["n"]
           and time.monotonic() < deadline):
        time.sleep(0.05)  # stay mapped until every process has measured
    return result


def anon_rss() -> int:
    """This process's private anonymous resident memory (``RssAnon``): what it holds that
    no file backs; a verified map's pages are file-backed, shared and reclaimable."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def best_pair(ours: Callable[[], object], theirs: Callable[[], object], repeat: int = 7
              ) -> tuple[float, float]:
    """Best of ``repeat`` runs each, taken in turn (see common.alternating)."""
    a, b = alternating([lambda _: timed(ours), lambda _: timed(theirs)], range(repeat))
    return min(a), min(b)


if __name__ == "__main__":
    main()
