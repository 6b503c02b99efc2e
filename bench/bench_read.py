"""Read speed (issue 3) against pandas, raw pyarrow, Parquet and Lance on the same data.

python bench/bench_read.py [--rows N]
"""

from __future__ import annotations

import argparse
import time

import google_crc32c
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from common import CHUNK_ROWS, ROOT, alternating, frame, per_call, redis, table, timed, workdir
from frames import all_dtypes  # tests/frames.py: on the path through common

import chunkframe as cf


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=2_000_000)
    args = p.parse_args()
    df = frame(args.rows)
    work = workdir("read")
    server = redis()
    try:
        client = cf.connect(store=work / "store", redis=server.url, catalog=work / "cat.db",
                            home=work)
        ds = client.ingest(df, "bench", chunk_rows=CHUNK_ROWS, progress=False)
        rng = np.random.default_rng(1)
        sns = [int(s) for s in rng.integers(0, len(df), 3_000)]
        rows: list[tuple[str, str, str, str]] = []

        # warm single-row reads
        for sn in sns:
            ds.get(sn)
        gets, ilocs = alternating([lambda s: timed(ds.get, s), lambda s: timed(df.iloc.__getitem__, s)],
                                  sns)
        t_get, t_iloc = float(np.median(gets)), float(np.median(ilocs))
        rows.append(("warm `ds.get(sn)` (median of 3,000)", f"{t_get * 1e6:.1f} µs",
                     f"`df.iloc[sn]` {t_iloc * 1e6:.1f} µs", f"{t_get / t_iloc:.2f} (≤ 1.0)"))

        # first touch: not in chunkframe's cache, OS page cache warm
        keys = list(ds.chunks["key"])
        starts = list(ds.chunks["start"])
        touch = [int(s) for s in rng.integers(0, len(df), 300)]

        def cold_get(sn: int) -> object:
            client.reader.clear(metadata=False)
            t = time.perf_counter()
            ds.get(sn)
            return time.perf_counter() - t

        def raw_floor(sn: int) -> object:
            i = int(np.searchsorted(starts, sn, side="right") - 1)
            t = time.perf_counter()
            with open(client.store.path(keys[i]), "rb") as f:
                data = f.read()
            google_crc32c.value(data)
            tbl = pa.ipc.open_file(pa.py_buffer(data)).read_all()
            tbl.slice(sn - starts[i], 1).to_pylist()
            return time.perf_counter() - t

        for sn in touch[:20]:  # warm the OS page cache of the files
            raw_floor(sn)
        firsts, floors = alternating([cold_get, raw_floor], touch)
        t_first, t_floor = float(np.median(firsts)), float(np.median(floors))
        rows.append(("first touch of a chunk (cache cold, page cache warm)",
                     f"{t_first * 1e3:.2f} ms",
                     f"read + CRC32C + `ipc.open_file().read_all()` + row {t_floor * 1e3:.2f} ms",
                     f"{t_first / t_floor:.2f} (≤ 1.3)"))

        # batch reads
        many = rng.integers(0, len(df), 10_000)
        for i in range(len(ds.chunks)):
            ds.get(int(ds.chunks["start"][i]))  # every chunk cached before its planes fill
        cached = ds.cache_info()["bytes"]
        t_fill = timed(ds.get_many, many)
        planes = ds.cache_info()["bytes"] - cached
        t_many, t_iloc_many = best_pair(lambda: ds.get_many(many), lambda: df.iloc[many])
        rows.append(("warm `get_many` of 10,000 random sns", f"{t_many * 1e3:.2f} ms",
                     f"`df.iloc[list]` {t_iloc_many * 1e3:.2f} ms",
                     f"{t_many / t_iloc_many:.2f} (≤ 1.5)"))
        rows.append(("  its first call, filling the gather planes of all "
                     f"{len(ds.chunks)} chunks", f"{t_fill * 1e3:.1f} ms",
                     f"the planes and text codes: {planes / 2**20:.0f} MB more in the cache "
                     f"(chunks: {cached / 2**20:.0f} MB)", ""))
        gathered = ["time", "device", "a", "b", "c", "n"]  # all but the string column
        positions = [df.columns.get_loc(c) for c in gathered]
        t_num, t_iloc_num = best_pair(lambda: ds.get_many(many, columns=gathered),
                                      lambda: df.iloc[many, positions])
        rows.append(("  the same without the text column",
                     f"{t_num * 1e3:.2f} ms", f"`df.iloc[list, cols]` {t_iloc_num * 1e3:.2f} ms",
                     f"{t_num / t_iloc_num:.2f}"))
        text_at = [df.columns.get_loc("s")]
        t_text, t_iloc_text = best_pair(lambda: ds.get_many(many, columns=["s"]),
                                        lambda: df.iloc[many, text_at])
        rows.append(("  only the text column (4 distinct values: gathered as codes)",
                     f"{t_text * 1e3:.2f} ms", f"`df.iloc[list, [s]]` {t_iloc_text * 1e3:.2f} ms",
                     f"{t_text / t_iloc_text:.2f}"))
        # other formats on the same data
        pq_path = work / "bench.parquet"
        df.to_parquet(pq_path, row_group_size=CHUNK_ROWS)
        pf = pq.ParquetFile(pq_path)

        def parquet_row(sn: int) -> object:
            g = sn // CHUNK_ROWS
            return pf.read_row_group(g).slice(sn - g * CHUNK_ROWS, 1).to_pylist()

        t_pq_row = per_call(parquet_row, touch)
        rows.append(("cold single row: chunkframe first touch vs Parquet `read_row_group`",
                     f"{t_first * 1e3:.2f} ms", f"{t_pq_row * 1e3:.2f} ms",
                     f"{t_first / t_pq_row:.2f}"))
        try:
            import lance

            lpath = work / "bench.lance"
            lance.write_dataset(pa.Table.from_pandas(df, preserve_index=False), str(lpath))
            lds = lance.dataset(str(lpath))
            lds.take([0])
            t_lance_one = per_call(lambda s: lance.dataset(str(lpath)).take([s]), touch)
            t_lance_warm = per_call(lambda s: lds.take([s]), sns[:1_000])
            t_lance_many = min(timed(lds.take, many) for _ in range(5))
            rows.append(("cold single row: chunkframe first touch vs Lance `take([sn])` "
                         "(dataset opened per call)", f"{t_first * 1e3:.2f} ms",
                         f"{t_lance_one * 1e3:.2f} ms", f"{t_first / t_lance_one:.2f} (< 1)"))
            rows.append(("warm single row: `ds.get` vs Lance `take([sn])` (open dataset)",
                         f"{t_get * 1e6:.1f} µs", f"{t_lance_warm * 1e6:.1f} µs",
                         f"{t_get / t_lance_warm:.2f}"))
            rows.append(("10,000 random rows: `get_many` vs Lance `take`",
                         f"{t_many * 1e3:.2f} ms", f"{t_lance_many * 1e3:.2f} ms",
                         f"{t_many / t_lance_many:.2f}"))
        except ImportError:
            rows.append(("Lance", "-", "pylance not installed (pip install '.[bench]')", "-"))

        t_scan, t_read_pq = best_pair(lambda: [None for _ in ds.iter_chunks()],
                                      lambda: pd.read_parquet(pq_path), repeat=3)
        rows.append(("full scan: `iter_chunks()` vs `pd.read_parquet` of the whole file",
                     f"{t_scan:.3f} s", f"{t_read_pq:.3f} s", f"{t_scan / t_read_pq:.2f}"))
        # last: a second dataset in the cache (and in memory) would disturb the rows above
        mixed = all_dtypes(len(df))
        mds = client.ingest(mixed, "every-dtype", chunk_rows=CHUNK_ROWS, progress=False)
        mds.get_many(many)
        t_mixed, t_iloc_mixed = best_pair(lambda: mds.get_many(many), lambda: mixed.iloc[many])
        rows.append(("warm `get_many` of the same sns on a frame of every dtype of the core "
                     "issue (Int64 and boolean with NA, float with NaN, tz datetimes, ...)",
                     f"{t_mixed * 1e3:.2f} ms", f"`df.iloc[list]` {t_iloc_mixed * 1e3:.2f} ms",
                     f"{t_mixed / t_iloc_mixed:.2f}"))
    finally:
        server.stop()
    md = table(rows)
    print(md)
    (ROOT / "bench" / "results_read.md").write_text(md)


def best_pair(ours, theirs, repeat: int = 7) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Best of ``repeat`` runs each, taken in turn (see common.alternating)."""
    a, b = alternating([lambda _: timed(ours), lambda _: timed(theirs)], range(repeat))
    return min(a), min(b)


if __name__ == "__main__":
    main()
