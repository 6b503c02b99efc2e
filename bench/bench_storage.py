"""Issue 25's storage benchmark: bytes stored and a full read → pandas, chunkframe vs peers.

Two tables, in one run, each tool with its defaults:

* ``flights``: the real-looking 336,776 x 19 table (data/samples/make_samples.py), 4 text
  columns of few distinct values (carrier, origin, dest, tailnum);
* ``synthetic``: the issues' frame plus a float, 10M x 8 (``--rows`` for fewer).

chunkframe is measured with its defaults (``compression="auto"``: none on this local store;
text columns dictionary-encoded where they measure smaller), with ``compression="zstd"``,
and with ``encodings`` all ``"plain"`` (how chunks were stored before issue 25). Peers:
Parquet (pyarrow, snappy), Lance and ArcticDB (LMDB) where installed. A full read is the
best of 3 with the OS page cache warm and chunkframe's own caches cleared before each.

An overwrite of each table with identical data is measured too: the files its dataset
holds before and after (both versions kept; the overwrite shares every chunk file).

    python bench/bench_storage.py [--rows 10000000] [--write bench/results_storage.md]
    python bench/bench_storage.py --tables flights --overwrite-only   # that alone, quickly
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from common import CHUNK_ROWS, ROOT, frame, redis, workdir
from servers import MotoProcess

import chunkframe as cf

sys.path.insert(0, str(ROOT / "data" / "samples"))
from make_samples import flights  # noqa: E402

MiB = 2**20


def du(path: Path) -> int:
    """Bytes of the files under ``path``."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def best(fn: Callable[[], object], repeat: int = 3, before: Callable[[], object] | None = None
         ) -> float:
    out = []
    for _ in range(repeat):
        if before is not None:
            before()
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def measure(name: str, df: pd.DataFrame, client: cf.Client, work: Path) -> list[tuple[str, float, float]]:
    """(tool, MiB stored, seconds of a full read) for ``df``."""
    rows: list[tuple[str, float, float]] = []
    variants: list[tuple[str, dict[str, Any]]] = [
        ("chunkframe (defaults)", {}),
        ("chunkframe compression=\"lz4\"", {"compression": "lz4"}),
        ("chunkframe compression=\"zstd\"", {"compression": "zstd"}),
        ("chunkframe plain (before issue 25)", {"encodings": dict.fromkeys(df.columns, "plain"),
                                                "compression": None}),
    ]
    for label, kw in variants:
        ds_id = f"{name}-{len(rows)}"
        ds = client.ingest(df, ds_id, chunk_rows=CHUNK_ROWS, progress=False, **kw)
        stored = int(ds.chunks["bytes"].sum())
        back = ds.to_pandas()
        assert back.equals(df) or pd.testing.assert_frame_equal(back, df) is None
        del back
        t = best(ds.to_pandas, before=lambda: client.reader.clear())
        rows.append((f"{label} [{ds.meta.compression or 'uncompressed'}]", stored / MiB, t))
        client.drop(ds_id, force=True)

    path = work / f"{name}.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    rows.append(("Parquet (pyarrow, snappy)", du(path) / MiB,
                 best(lambda: pq.read_table(path).to_pandas())))
    try:
        import lance
    except ImportError:
        pass
    else:
        lpath = work / f"{name}.lance"
        lance.write_dataset(pa.Table.from_pandas(df, preserve_index=False), str(lpath))
        lds = lance.dataset(str(lpath))
        rows.append(("Lance", du(lpath) / MiB, best(lambda: lds.to_table().to_pandas())))
    try:
        from arcticdb import Arctic
    except ImportError:
        pass
    else:
        apath = work / f"{name}-arctic"
        lib = Arctic(f"lmdb://{apath}?map_size=16GB").get_library("bench", create_if_missing=True)
        lib.write(name, for_arctic(df))
        rows.append(("ArcticDB (LMDB)", du(apath) / MiB, best(lambda: lib.read(name).data)))
    return rows


def for_arctic(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` as ArcticDB takes it: no categoricals nor pandas' NA dtypes."""
    arc = df.copy()
    for c in arc.columns:
        dt = arc[c].dtype
        if isinstance(dt, (pd.CategoricalDtype, pd.StringDtype)) or pd.api.types.is_object_dtype(dt):
            arc[c] = arc[c].astype(object).where(arc[c].notna(), None)
        elif isinstance(dt, pd.api.extensions.ExtensionDtype) and dt.kind in "iuf":
            arc[c] = arc[c].astype("float64")
        elif isinstance(dt, pd.BooleanDtype):
            arc[c] = arc[c].astype(object)
    return arc


def overwrite_identical(name: str, df: pd.DataFrame, client: cf.Client, work: Path) -> str:
    """The markdown row of an overwrite of ``df`` with the same data, chunkframe's
    defaults: the dataset's files (both versions kept) before and after, and its time."""
    ds_id = f"{name}-overwrite"
    client.ingest(df, ds_id, chunk_rows=CHUNK_ROWS, progress=False)
    where = work / "store" / ds_id
    before = du(where)
    t = time.perf_counter()
    ds = client.ingest(df, ds_id, chunk_rows=CHUNK_ROWS, mode="overwrite", progress=False)
    seconds = time.perf_counter() - t
    after = du(where)
    shared = int(ds.storage(progress=False)["shared_bytes"].sum())
    assert ds.to_pandas().equals(df) or pd.testing.assert_frame_equal(ds.to_pandas(), df) is None
    client.drop(ds_id, force=True)
    return (f"| {name} | {before / MiB:.1f} | {after / MiB:.1f} | "
            f"{(after - before) / before:.2%} (≤ 1 %) | {shared / MiB:.1f} | {seconds:.3f} s |\n")


OVERWRITE_HEADER = ("| table | stored MiB | after an identical overwrite | added | "
                    "column bytes shared (MiB) | overwrite time |\n| --- | --- | --- | --- | --- | --- |\n")


def s3_reads(df: pd.DataFrame, server_url: str, work: Path) -> str:
    """First full read from S3 (moto over loopback), a second one after the chunk cache is
    cleared (from the local tier), the same read from a local store, and the bytes the
    second read downloaded."""
    import s3fs

    moto = MotoProcess().start()
    try:
        opts = {"endpoint_url": moto.endpoint, "key": "testing", "secret": "testing"}
        s3fs.S3FileSystem(**opts).mkdir("bench")
        s3 = cf.connect(store="s3://bench/chunks", redis=server_url, catalog=work / "s3.db",
                        home=work / "s3home", storage_options=opts, prefix="s3")
        local = cf.connect(store=work / "lstore", redis=server_url, catalog=work / "l.db",
                           home=work / "lhome", prefix="local")
        ds = s3.ingest(df, "s3", chunk_rows=CHUNK_ROWS, progress=False)
        lds = local.ingest(df, "local", chunk_rows=CHUNK_ROWS, progress=False)
        first = time.perf_counter()
        ds.to_pandas()
        first = time.perf_counter() - first
        fetches = s3.reader.fetches
        again = best(ds.to_pandas, before=lambda: s3.reader.clear(metadata=False))
        downloaded = s3.reader.fetches - fetches
        from_local = best(lds.to_pandas, before=lambda: local.reader.clear(metadata=False))
        arctic = _arctic_first_read(df, moto)
        peer = (f"÷ ArcticDB on the same S3, first read of a new handle, {arctic:.3f} s = "
                f"{first / arctic:.2f} (≤ 1.0)" if arctic else "arcticdb not installed")
        return (f"| S3 (moto), {ds.meta.compression}: first full read | {first:.3f} s | "
                f"{peer} |\n"
                f"| second read after eviction (local tier) | {again:.3f} s | "
                f"÷ local store {from_local:.3f} s = {again / from_local:.2f} (≤ 1.2) |\n"
                f"| chunks downloaded by the second reads | {downloaded} | (target 0) |\n")
    finally:
        moto.stop()


def _arctic_first_read(df: pd.DataFrame, moto: MotoProcess) -> float | None:
    """Seconds of ArcticDB's first full read of ``df`` from ``moto``'s S3, by a handle that
    has read nothing yet (None without arcticdb)."""
    try:
        from arcticdb import Arctic
    except ImportError:
        return None
    import s3fs

    s3fs.S3FileSystem(endpoint_url=moto.endpoint, key="testing", secret="testing").mkdir("arc")
    host, port = moto.endpoint.split("//")[1].rsplit(":", 1)
    uri = f"s3://{host}:arc?port={port}&access=testing&secret=testing"
    Arctic(uri).get_library("bench", create_if_missing=True).write("s3", for_arctic(df))
    began = time.perf_counter()
    got = Arctic(uri)["bench"].read("s3").data
    took = time.perf_counter() - began
    assert len(got) == len(df)
    return took


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=10_000_000, help="rows of the synthetic table")
    p.add_argument("--write", help="write the markdown table to this file too")
    p.add_argument("--s3-rows", type=int, default=2_000_000,
                   help="rows of the synthetic table read from S3 (moto); 0: skip")
    p.add_argument("--tables", default="flights,synthetic",
                   help="the tables to measure, comma-separated (flights, synthetic)")
    p.add_argument("--overwrite-only", action="store_true",
                   help="measure only the overwrite with identical data (no peers, no S3)")
    args = p.parse_args()
    work = workdir("storage")
    server = redis()
    out = [f"`python bench/bench_storage.py {' '.join(sys.argv[1:]) or f'--rows {args.rows}'}` "
           f"on {os.cpu_count()} cores, "
           f"load {' '.join(f'{x:.1f}' for x in os.getloadavg())}; chunk_rows {CHUNK_ROWS:,}.\n"]
    try:
        client = cf.connect(store=work / "store", redis=server.url, catalog=work / "cat.db",
                            home=work)
        tables: list[tuple[str, Callable[[], pd.DataFrame]]] = [
            ("flights", flights),
            ("synthetic", lambda: frame(args.rows).assign(
                d=np.random.default_rng(8).normal(size=args.rows))),
        ]
        tables = [(n, m) for n, m in tables if n in args.tables.split(",")]
        overwrites = []
        for name, make in tables:
            df = make()
            overwrites.append(overwrite_identical(name, df, client, work))
            print(OVERWRITE_HEADER + overwrites[-1], flush=True)
            if args.overwrite_only:
                continue
            results = measure(name, df, client, work)
            arctic = next((r for r in results if r[0].startswith("ArcticDB")), None)
            out.append(f"\n**{name}**, {len(df):,} x {len(df.columns)}\n\n"
                       "| tool | stored MiB | ÷ ArcticDB | full read → pandas | ÷ ArcticDB |\n"
                       "| --- | --- | --- | --- | --- |\n")
            for tool, mib, secs in results:
                ratio_s = f"{mib / arctic[1]:.2f}" if arctic else "-"
                ratio_t = f"{secs / arctic[2]:.2f}" if arctic else "-"
                out.append(f"| {tool} | {mib:.1f} | {ratio_s} | {secs:.3f} s | {ratio_t} |\n")
            print("".join(out[-1 - len(results):]), flush=True)
            del df
        out.append("\n**An overwrite with identical data** (defaults; shared chunks, "
                   "both versions kept)\n\n" + OVERWRITE_HEADER + "".join(overwrites))
        if args.s3_rows and not args.overwrite_only:
            out.append(f"\n**S3**, the synthetic table, {args.s3_rows:,} rows\n\n"
                       "| measure | chunkframe | |\n| --- | --- | --- |\n")
            out.append(s3_reads(frame(args.s3_rows), server.url, work))
            print(out[-1], flush=True)
    finally:
        server.stop()
    md = "".join(out)
    print(md)
    if args.write:
        Path(args.write).write_text("# Storage benchmark (issue 25)\n\n" + md)


if __name__ == "__main__":
    main()
