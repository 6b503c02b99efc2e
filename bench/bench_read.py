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
from common import CHUNK_ROWS, ROOT, frame, per_call, redis, table, workdir

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
        t_get = per_call(ds.get, sns)
        t_iloc = per_call(lambda s: df.iloc[s], sns)
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
        t_first = float(np.median([cold_get(s) for s in touch]))
        t_floor = float(np.median([raw_floor(s) for s in touch]))
        rows.append(("first touch of a chunk (cache cold, page cache warm)",
                     f"{t_first * 1e3:.2f} ms",
                     f"read + CRC32C + `ipc.open_file().read_all()` + row {t_floor * 1e3:.2f} ms",
                     f"{t_first / t_floor:.2f} (≤ 1.3)"))

        # batch reads
        many = rng.integers(0, len(df), 10_000)
        ds.get_many(many)
        t_many = min(_timed(lambda: ds.get_many(many)) for _ in range(5))
        t_iloc_many = min(_timed(lambda: df.iloc[many]) for _ in range(5))
        rows.append(("warm `get_many` of 10,000 random sns", f"{t_many * 1e3:.2f} ms",
                     f"`df.iloc[list]` {t_iloc_many * 1e3:.2f} ms",
                     f"{t_many / t_iloc_many:.2f} (≤ 1.5)"))
        gathered = ["time", "device", "a", "b", "c", "n"]  # all but the string column
        t_num = min(_timed(lambda: ds.get_many(many, columns=gathered)) for _ in range(5))
        positions = [df.columns.get_loc(c) for c in gathered]
        t_iloc_num = min(_timed(lambda: df.iloc[many, positions]) for _ in range(5))
        rows.append(("  the same without the text column",
                     f"{t_num * 1e3:.2f} ms", f"`df.iloc[list, cols]` {t_iloc_num * 1e3:.2f} ms",
                     f"{t_num / t_iloc_num:.2f}"))
        t_text = min(_timed(lambda: ds.get_many(many, columns=["s"])) for _ in range(5))
        t_iloc_text = min(_timed(lambda: df.iloc[many, [df.columns.get_loc("s")]])
                          for _ in range(5))
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
            t_lance_many = min(_timed(lambda: lds.take(many)) for _ in range(5))
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

        t_scan = min(_timed(lambda: [None for _ in ds.iter_chunks()]) for _ in range(3))
        t_read_pq = min(_timed(lambda: pd.read_parquet(pq_path)) for _ in range(3))
        rows.append(("full scan: `iter_chunks()` vs `pd.read_parquet` of the whole file",
                     f"{t_scan:.3f} s", f"{t_read_pq:.3f} s", f"{t_scan / t_read_pq:.2f}"))
    finally:
        server.stop()
    md = table(rows)
    print(md)
    (ROOT / "bench" / "results_read.md").write_text(md)


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
