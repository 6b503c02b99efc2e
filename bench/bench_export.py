"""Export benchmark: ``ds.export(x.parquet)`` against pandas' read_parquet + to_parquet.

    python bench/bench_export.py

Builds a deterministic 2,000,000-row x 7-column frame (time, categorical device, three floats,
an int, short strings), ingests it in 65,536-row chunks against a private redis-server, then
measures in fresh child processes (so each memory reading starts clean):

* time: ``ds.export("x.parquet")`` vs ``pd.read_parquet(same data as one Parquet file)`` +
  ``df.to_parquet(...)``, best of 3 each; target ratio <= 1.2;
* memory: peak RSS above the level before the export starts (sampled every 1 ms) in a
  process that has exported one chunk before (the target), and in a fresh process, with
  the peaks of Arrow's pools and tracemalloc's, vs the size of 3 chunks; target <= 3 chunks.

Prints a markdown table and writes it to ``bench/results_export.md``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

ROWS = 2_000_000
CHUNK_ROWS = 65_536
REPEAT = 3


def build_frame(rows: int = ROWS, seed: int = 20260101):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    devices = [f"dev-{i:04d}" for i in range(500)]
    words = np.array(["ok", "warn", "fail", "idle", "boot", "sleep", "sync", "retry", "lost"])
    return pd.DataFrame({
        "time": pd.date_range("2026-01-01", periods=rows, freq="250ms", tz="UTC"),
        "device": pd.Categorical.from_codes(rng.integers(0, len(devices), rows), devices),
        "temperature": rng.normal(21.0, 3.0, rows),
        "humidity": rng.uniform(20, 80, rows),
        "pressure": rng.normal(1013, 8, rows),
        "count": rng.integers(0, 1_000_000, rows),
        "status": words[rng.integers(0, len(words), rows)],
    })


class RssSampler:
    """Peak resident set size of this process, sampled every ``interval`` seconds."""

    def __init__(self, interval: float = 0.001):
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self.start = self.proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def delta(self) -> int:
        return self.peak - self.start


def child(config: dict) -> dict:
    """Measured runs in a fresh process: ``export``, ``export_quarter``, ``writer`` (a bare
    ``pq.ParquetWriter`` writing the decoded chunks) or ``baseline`` (pandas).

    Warm-up ``warm``: "tiny" exports 10 rows (imports and code paths only: the first full
    export then also pays one-time set-up of Arrow's allocator and Parquet's encoders);
    "chunk" exports one whole chunk first, as any process that has exported before.
    Then one run under the RSS sampler (with the Arrow pools' peaks), one under tracemalloc
    (Python heap), then the timed runs.
    """
    import gc
    import tracemalloc

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    pools = {"default": pa.default_memory_pool(), "system": pa.system_memory_pool()}
    work = Path(config["work"])
    what = config["what"]
    if what in ("export", "export_quarter", "writer"):
        import chunkframe as cf

        client = cf.connect(store=work / "store", redis=config["redis"],
                            catalog=work / "catalog.db", home=work, prefix="bench")
        ds = client.open("bench")
        stop = len(ds) // 4 if what == "export_quarter" else None
        warm_rows = 10 if config["warm"] == "tiny" else CHUNK_ROWS
        ds.export(str(work / "warm.parquet"), start=0, stop=warm_rows, progress=False)
        if what == "writer":
            snap = ds._snap()
            tables = [client.reader.chunk(snap, i, cache=False).table
                      for i in range(len(snap.chunks))]

            def run() -> None:
                with pq.ParquetWriter(work / "writer.parquet", tables[0].schema,
                                      compression="snappy") as w:
                    for t in tables:
                        w.write_table(t)
        else:
            def run() -> None:
                ds.export(str(work / f"{what}.parquet"), stop=stop, progress=False)
    else:
        pd.read_parquet(work / "base.parquet", columns=["count"])

        def run() -> None:
            df = pd.read_parquet(work / "base.parquet")
            df.to_parquet(work / "y.parquet")

    gc.collect()
    before = {k: p.bytes_allocated() for k, p in pools.items()}
    with RssSampler() as rss:
        run()
    arrow_peak = {k: p.max_memory() - before[k] for k, p in pools.items()}
    gc.collect()
    tracemalloc.start()
    run()
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    times = []
    for _ in range(config["repeat"]):
        gc.collect()
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return {"best": min(times), "times": times, "rss_delta": rss.delta,
            "arrow_peak": arrow_peak, "py_peak": py_peak,
            "pool": pools["default"].backend_name}


RETURN_FREED = {"MALLOC_MMAP_THRESHOLD_": "131072", "MIMALLOC_PURGE_DELAY": "0",
                "ARROW_DEFAULT_MEMORY_POOL": "system"}
"""Allocator settings under which freed memory goes back to the OS at once, so RSS shows
what is live rather than what glibc/mimalloc keep for reuse."""


def run_child(what: str, work: Path, redis_url: str, env: dict | None = None,
              warm: str = "chunk") -> dict:
    config = {"what": what, "work": str(work), "redis": redis_url, "repeat": REPEAT,
              "warm": warm}
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(config)],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"{what} child failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def mb(n: float) -> str:
    return f"{n / 2**20:.1f} MB"


def main() -> None:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from servers import RedisProcess

    import chunkframe as cf

    redis = RedisProcess().start()
    try:
        with tempfile.TemporaryDirectory(prefix="cf-bench-export-") as tmp:
            work = Path(tmp)
            df = build_frame()
            client = cf.connect(store=work / "store", redis=redis.url,
                                catalog=work / "catalog.db", home=work, prefix="bench")
            t = time.perf_counter()
            ds = client.ingest(df, "bench", chunk_rows=CHUNK_ROWS, progress=False)
            ingest_s = time.perf_counter() - t
            df.to_parquet(work / "base.parquet")
            del df

            exp = run_child("export", work, redis.url)
            quarter = run_child("export_quarter", work, redis.url)
            fresh = run_child("export", work, redis.url, warm="tiny")
            writer_fresh = run_child("writer", work, redis.url, warm="tiny")
            base = run_child("baseline", work, redis.url)
            exp_freed = run_child("export", work, redis.url, RETURN_FREED, warm="tiny")
            base_freed = run_child("baseline", work, redis.url, RETURN_FREED)

            # same content: the export reads back equal to the dataset
            back = pd.read_parquet(work / "export.parquet")
            pd.testing.assert_frame_equal(back, ds.to_pandas().reset_index(drop=True))
            del back
            snap = ds._snap()
            chunk_table_bytes = sum(
                client.reader.chunk(snap, i, cache=False).table.nbytes
                for i in range(len(snap.chunks))) / len(snap.chunks)
            chunk_stored_bytes = ds.meta.nbytes / ds.meta.chunks
            chunk = max(chunk_table_bytes, chunk_stored_bytes)
            three = 3 * chunk
            ratio = exp["best"] / base["best"]
            rows = [
                ("data", f"{ROWS:,} rows x 7 columns, {ds.meta.chunks} chunks of "
                         f"{CHUNK_ROWS:,} rows; chunk {mb(chunk_stored_bytes)} stored, "
                         f"{mb(chunk_table_bytes)} decoded; 3 chunks = {mb(three)}", "", ""),
                ("ingest (setup)", f"{ingest_s:.2f} s", "", ""),
                ("`ds.export(x.parquet)` vs `pd.read_parquet` + `df.to_parquet` (best of "
                 f"{REPEAT})", f"{exp['best']:.3f} s", f"{base['best']:.3f} s",
                 f"{ratio:.2f} (target <= 1.2)"),
                ("**peak RSS above start of the export** (process warmed by exporting one "
                 "chunk)", mb(exp["rss_delta"]), mb(base["rss_delta"]),
                 f"**{exp['rss_delta'] / chunk:.2f} chunks** (target <= 3)"),
                ("the same, exporting a quarter of the rows", mb(quarter["rss_delta"]), "",
                 f"{quarter['rss_delta'] / chunk:.2f} chunks"),
                ("peak RSS above start, first export in a fresh process (10-row warm-up)",
                 mb(fresh["rss_delta"]), "", f"{fresh['rss_delta'] / chunk:.2f} chunks"),
                ("  for scale: a bare `pq.ParquetWriter` writing the decoded chunks, first "
                 "write in a fresh process (one-time allocator and encoder set-up)",
                 mb(writer_fresh["rss_delta"]), "",
                 f"{writer_fresh['rss_delta'] / chunk:.2f} chunks"),
                ("first export in a fresh process, allocators returning freed memory at once "
                 f"({', '.join(f'{k}={v}' for k, v in RETURN_FREED.items())})",
                 mb(exp_freed["rss_delta"]), mb(base_freed["rss_delta"]),
                 f"{exp_freed['rss_delta'] / chunk:.2f} chunks"),
                (f"peak of Arrow's default pool ({exp['pool']}) / system pool (the writers') "
                 "during the export", f"{mb(exp['arrow_peak']['default'])} / "
                 f"{mb(exp['arrow_peak']['system'])}",
                 f"{mb(base['arrow_peak']['default'])} / {mb(base['arrow_peak']['system'])}", ""),
                ("tracemalloc peak (Python heap; chunks are read into pooled pages outside it)",
                 mb(exp["py_peak"]), mb(base["py_peak"]), f"{exp['py_peak'] / chunk:.2f} chunks"),
                ("output file", mb((work / "export.parquet").stat().st_size),
                 mb((work / "y.parquet").stat().st_size),
                 f"{pq.ParquetFile(work / 'export.parquet').num_row_groups} row groups vs "
                 f"{pq.ParquetFile(work / 'y.parquet').num_row_groups}"),
            ]
    finally:
        redis.stop()

    lines = ["# Export benchmark", "",
             f"python {platform.python_version()}, pandas {pd.__version__}, "
             f"pyarrow {pa.__version__}, {os.cpu_count()} CPUs, {platform.machine()}; "
             "measured in fresh child processes; chunk size is the larger of stored and "
             "decoded bytes.", "",
             "| measure | chunkframe export | pandas baseline | ratio |",
             "| --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines += ["", f"export runs: {', '.join(f'{t:.3f}' for t in exp['times'])} s; "
              f"baseline runs: {', '.join(f'{t:.3f}' for t in base['times'])} s"]
    text = "\n".join(lines) + "\n"
    print(text)
    (HERE / "results_export.md").write_text(text)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child(json.loads(sys.argv[2]))))
    else:
        main()
