"""Scale-out (issue 15): python bench/bench_scaleout.py [--rows N] [--files K]

Ingest of K CSV files through a 2-worker ``distributed.LocalCluster`` ÷ the single-process
ingest of the same files, and the coordinator's cost per chunk — its CPU time, the Redis
commands and Redis time, the catalog rows and commit time on SQLite and on a PostgreSQL
started here with fsync on (when Debian's binaries are installed) — from which the note below
works out how many chunks per second one coordinator, one Redis and one catalog can take.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

from common import frame, redis, workdir
from servers import PostgresProcess, postgres_bin_dir

import chunkframe as cf
from chunkframe.storage.catalog import Catalog

CHUNK_ROWS = 65_536
RUNS = 3


def redis_calls(r) -> tuple[int, float]:
    """Commands served and microseconds spent in them, over all commands, since the start."""
    stats = r.info("commandstats")
    return (sum(v["calls"] for v in stats.values()),
            sum(v["usec"] for v in stats.values()))


def catalog_commit_seconds(client, dataset: str, target: Catalog, copies: int) -> float:
    """Seconds per chunk row to commit ``dataset``'s chunk table, repeated ``copies`` times
    (a table of many chunks, so the transaction's fixed cost is spread), into ``target``."""
    meta = client.backends.catalog.get(dataset)
    chunks = client.backends.catalog.chunks(dataset, meta.generation)
    table, start = [], 0
    for n in range(copies * len(chunks)):
        c = chunks[n % len(chunks)]
        table.append(dataclasses.replace(c, chunk=n, start=start, key=f"{c.key}-{n}"))
        start += c.rows
    copy = dataclasses.replace(meta, id=f"{dataset}-copy-{time.monotonic_ns()}",
                               chunks=len(table), rows=start)
    target.claim(copy.id, 1)
    t = time.perf_counter()
    target.commit(copy, table, 1)
    return (time.perf_counter() - t) / len(table)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--files", type=int, default=16)
    args = p.parse_args()
    from distributed import Client, LocalCluster

    work = workdir("scaleout")
    df = frame(args.rows)
    per = -(-args.rows // args.files)
    paths = []
    for i in range(args.files):
        path = work / f"part{i:02d}.csv"
        df.iloc[i * per:(i + 1) * per].to_csv(path, index=False)
        paths.append(str(path))
    csv_mb = sum(Path(x).stat().st_size for x in paths) / 1e6
    server = redis()
    client = cf.connect(home=work / "home", redis=server.url)
    t = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    dask = Client(cluster)
    dask.submit(len, [1]).result()  # the workers are up and have imported chunkframe
    started = time.perf_counter() - t
    singles, dasks, cpu, cmds, usec = [], [], [], [], []
    try:
        for run in range(RUNS):
            t = time.perf_counter()
            one = client.ingest(str(work / "part*.csv"), f"single{run}", chunk_rows=CHUNK_ROWS,
                                progress=False)
            singles.append(time.perf_counter() - t)
            calls0, usec0 = redis_calls(client.redis)
            cpu0, t = time.process_time(), time.perf_counter()
            many = client.ingest(paths, f"dask{run}", chunk_rows=CHUNK_ROWS, engine="dask",
                                 progress=False)
            dasks.append(time.perf_counter() - t)
            cpu.append(time.process_time() - cpu0)
            calls1, usec1 = redis_calls(client.redis)
            cmds.append(calls1 - calls0)
            usec.append(usec1 - usec0)
        assert len(one) == len(many) == args.rows
        chunks = len(many.chunks)
        copies = -(-1_000 // chunks)  # about 1,000 chunk rows per commit
        commit_chunk = statistics.median(
            catalog_commit_seconds(client, "dask0", Catalog(str(work / f"copy{i}.db")), copies)
            for i in range(RUNS))
        extra = []
        bin_dir = postgres_bin_dir()
        if bin_dir is not None:
            pg = PostgresProcess(bin_dir, durable=True).start()
            try:
                target = Catalog(pg.url(pg.database()))
                extra.append(("catalog commit per chunk, PostgreSQL (fsync on)", statistics.median(
                    catalog_commit_seconds(client, "dask0", target, copies)
                    for _ in range(RUNS))))
            finally:
                pg.stop()
    finally:
        dask.close()
        cluster.close()
        server.stop()

    single, many_s = statistics.median(singles), statistics.median(dasks)
    cpu_chunk = statistics.median(cpu) / chunks
    cmds_chunk = statistics.median(cmds) / chunks
    usec_chunk = statistics.median(usec) / chunks
    rows = [
        ("data", f"{args.files} CSV files, {args.rows:,} rows × {len(df.columns)} columns, "
                 f"{csv_mb:.0f} MB; {chunks} chunks of {CHUNK_ROWS:,} rows"),
        ("LocalCluster start (not counted)", f"{started:.2f} s"),
        ("single process: `cf.ingest(glob)`", f"{single:.2f} s ({args.rows / single:,.0f} rows/s)"),
        ("2-worker LocalCluster: `cf.ingest(paths, engine='dask')`",
         f"{many_s:.2f} s ({args.rows / many_s:,.0f} rows/s)"),
        ("**speedup single ÷ Dask** (expect ≤ 2)", f"**{single / many_s:.2f}×**"),
        ("coordinator CPU per chunk (this process, which also runs the LocalCluster's "
         "scheduler)", f"{cpu_chunk * 1e3:.2f} ms"),
        ("coordinator CPU per partition (file)",
         f"{statistics.median(cpu) / args.files * 1e3:.1f} ms"),
        ("Redis commands per chunk (coordinator and workers)", f"{cmds_chunk:.1f}"),
        ("Redis time per chunk (commandstats usec)", f"{usec_chunk:.0f} µs"),
        ("catalog rows per chunk", "1 (chunks table) + 1 dataset row and 1 version per commit"),
        ("catalog commit per chunk, SQLite (a ~1,000-chunk table per commit)",
         f"{commit_chunk * 1e6:.0f} µs"),
    ] + [(name, f"{value * 1e6:.0f} µs") for name, value in extra]
    ceilings = [("one coordinator (its CPU)", 1 / cpu_chunk),
                ("one Redis (single-threaded; its time per chunk)", 1e6 / usec_chunk),
                ("one SQLite catalog (commit time per chunk)", 1 / commit_chunk)]
    ceilings += [("one PostgreSQL catalog (commit time per chunk)", 1 / value)
                 for _, value in extra]
    lines = [
        "# Scale-out (`bench/bench_scaleout.py`)\n",
        f"Medians of {RUNS} runs, each side run in turn; a private redis-server over TCP "
        "loopback, local store, SQLite catalog; the LocalCluster has 2 worker processes "
        "of 1 thread on this 2-core machine.\n",
        "| measure | value |", "| --- | --- |",
        *[f"| {a} | {b} |" for a, b in rows],
        "",
        "How far one coordinator goes, as arithmetic from the figures above (each part's "
        "chunks per second if it were the only limit; the smallest is the bottleneck). The "
        "coordinator's cost is per partition more than per chunk (task round trips: load, "
        "length, persist), so partitions of many chunks move its ceiling up; the Redis and "
        "catalog figures are per chunk.\n",
        "| part | chunks/s | rows/s at 65,536 rows per chunk |", "| --- | --- | --- |",
        *[f"| {name} | {rate:,.0f} | {rate * CHUNK_ROWS / 1e6:,.0f} M |"
          for name, rate in ceilings],
        "",
    ]
    out = "\n".join(lines)
    (Path(__file__).parent / "results_scaleout.md").write_text(out)
    print(out)


if __name__ == "__main__":
    main()
