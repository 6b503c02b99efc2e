"""The catalog on PostgreSQL beside SQLite: what one coordinator's catalog writes and reads cost."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from common import workdir
from servers import PostgresProcess, postgres_bin_dir

from chunkframe.core.model import ChunkMeta, DatasetMeta
from chunkframe.storage.catalog import Catalog

HERE = Path(__file__).resolve().parent
CHUNKS = 1_000  # a 65M-row dataset at 65,536 rows a chunk
ROUNDS = 7


def meta(dataset: str, version: int, chunks: int) -> DatasetMeta:
    return DatasetMeta(id=dataset, generation=1, rows=chunks * 65_536, chunks=chunks,
                       nbytes=chunks * 2**20, schema="{}", chunk_rows=65_536, fingerprint="f",
                       time_column="time", device_column="device", version=version,
                       created=1.0, updated=1.0 + version)


def chunk_table(n: int) -> list[ChunkMeta]:
    stats = {"dev-001": [1_767_225_600_000_000_000, 1_767_225_606_553_500_000]}
    ranges = {"a": [-4.1, 4.2], "b": [-4.0, 4.3], "n": [0, 999_999]}
    return [ChunkMeta(i, i * 65_536, 65_536, f"d/g1/c{i}-f1.arrow", "crc32c:0badf00d", 2**20,
                      stats, ranges) for i in range(n)]


def median_ms(fn, rounds: int = ROUNDS) -> float:
    out = []
    for r in range(rounds):
        t = time.perf_counter()
        fn(r)
        out.append(time.perf_counter() - t)
    return statistics.median(out) * 1e3


def measure(catalog: Catalog) -> dict[str, float]:
    table = chunk_table(CHUNKS)
    catalog.claim("big", 1)
    catalog.claim("small", 1)
    return {
        "commit": median_ms(lambda r: catalog.commit(meta("big", r + 1, CHUNKS), table, 1)),
        "append": median_ms(lambda r: catalog.commit(meta("small", r + 1, 1), table[:1], 1,
                                                     kind="append"), 50),
        "claim": median_ms(lambda r: catalog.claim("small", 1), 50),
        "generation": median_ms(lambda r: catalog.reserve_generation("small"), 50),
        "get": median_ms(lambda r: catalog.get("big"), 50),
        "chunks": median_ms(lambda r: catalog.chunks("big", 1)),
    }


def main() -> None:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise SystemExit("PostgreSQL's binaries are missing: apt-get install postgresql")
    server = PostgresProcess(bin_dir, durable=True).start()
    try:
        pg = measure(Catalog(server.url(server.database())))
    finally:
        server.stop()
    lite = measure(Catalog(workdir("catalog") / "catalog.db"))
    rows = [
        (f"commit of a {CHUNKS:,}-chunk table (median of {ROUNDS})", "commit"),
        ("commit of a 1-chunk append (median of 50)", "append"),
        ("claim of a fencing token (median of 50)", "claim"),
        ("reserve a generation (median of 50)", "generation"),
        ("get a dataset's record (median of 50)", "get"),
        (f"read a {CHUNKS:,}-chunk table (median of {ROUNDS})", "chunks"),
    ]
    lines = [
        "# Catalog benchmark (`python bench/bench_catalog.py`)", "",
        "A private PostgreSQL 15 on 127.0.0.1 (fsync on, default settings) and a SQLite file "
        "(WAL, synchronous=FULL), both on the local disk; one process, one connection.", "",
        "| measure | SQLite | PostgreSQL | PostgreSQL ÷ SQLite |", "| --- | --- | --- | --- |",
    ]
    for label, key in rows:
        lines.append(f"| {label} | {lite[key]:.2f} ms | {pg[key]:.2f} ms | "
                     f"{pg[key] / lite[key]:.2f} |")
    per_chunk = pg["commit"] / CHUNKS * 1e3
    lines += ["", f"Per chunk row of a commit on PostgreSQL: {per_chunk:.0f} µs, i.e. about "
              f"{1e6 / per_chunk:,.0f} chunk rows a second for one coordinator; small commits "
              f"(an append of one chunk): about {1e3 / pg['append']:,.0f} a second."]
    (HERE / "results_catalog.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
