"""Benchmark of cf.find: one keyword over 1,000 contexts, vs looping ctx.search over them.

Run ``python bench/bench_find.py`` (starts a private redis-server through
``tests/servers.py``). Both sides go through the public API of one client (``cf.find``;
``cf.context(id).search``), the loop on contexts already in the client's memory (its best
case) and, for reference, cold; then again on a Redis Cluster of 3 masters on loopback
(where the index is written beside the entries' scripts, slot by slot; ``--no-cluster``
skips it). Prints a markdown table and writes ``bench/results_find.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bench_context import entry_value, fmt_us  # noqa: E402

import chunkframe as cf  # noqa: E402


def loop_search(ids: list[str], word: str) -> pd.DataFrame:
    """What a user would write without cf.find: search every context, stack the hits."""
    parts = []
    for cid in ids:
        found = cf.context(cid).search(word)
        if len(found):
            found.insert(0, "context", cid)
            parts.append(found)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def timed(fn, repeats: int) -> tuple[float, object]:  # noqa: ANN001
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, default=1_000)
    parser.add_argument("--per-context", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results_find.md"))
    parser.add_argument("--no-cluster", dest="cluster", action="store_false",
                        help="skip the run on a Redis Cluster of 3 masters (TCP on loopback)")
    args = parser.parse_args()

    from servers import RedisClusterProcess, RedisProcess

    server = RedisProcess().start()
    home = Path(tempfile.mkdtemp(prefix="cf-bench-find-"))
    try:
        rows = run(server.url, home, args)
        version = server.client().info("server").get("redis_version", "?")
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
    if args.cluster:
        cluster = RedisClusterProcess(masters=3).start()
        home = Path(tempfile.mkdtemp(prefix="cf-bench-find-"))
        try:
            rows.update({f"cluster of 3: {k}": v
                         for k, v in run(cluster.url, home, args).items()})
        finally:
            cluster.stop()
            shutil.rmtree(cluster.dir, ignore_errors=True)
            shutil.rmtree(home, ignore_errors=True)

    env = (f"{platform.python_implementation()} {platform.python_version()}, pandas "
           f"{pd.__version__}, redis-py {redis.__version__}, redis-server {version}")
    text = "\n".join([
        "# Search across contexts (`bench/bench_find.py`)", "",
        f"{env}, {os.cpu_count()} CPUs shared with other work (load average "
        f"{os.getloadavg()[0]:.1f} at the end). Redis over a unix socket, AOF on"
        + ("; then a Redis Cluster of 3 masters over TCP on loopback, no persistence"
           if args.cluster else "") + ". Both sides "
        f"of each ratio run back to back; medians of {args.repeats} runs.", "",
        "| measure | value |", "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in rows.items()), "",
    ])
    print(text)
    Path(args.out).write_text(text)


def run(url: str, home: Path, args: argparse.Namespace) -> dict[str, str]:
    cf.connect(store=home / "store", redis=url, catalog=home / "catalog.db", home=home,
               prefix="benchfind")
    rng = random.Random(7)
    ids = [f"ctx-{c:04d}" for c in range(args.contexts)]
    t0 = time.perf_counter()
    for cid in ids:
        cf.context(cid).put_many(((f"e{j}", entry_value(rng)) for j in range(args.per_context)),
                                 type="DATA")
    setup = time.perf_counter() - t0
    # a word of most contexts, one of some, one of a handful (status, airport, flight code)
    words = {"common": "delayed", "medium": "aex", "rare": None}
    rare = cf.context(ids[0]).search("delayed")
    words["rare"] = (rare["value"].iloc[0] if len(rare) else entry_value(rng)).split()[0].lower()

    out: dict[str, str] = {
        "contexts × entries": f"{args.contexts:,} × {args.per_context} (type DATA, "
                              f"~6 keywords each)",
        "setup through `put_many` (index written with the entries)":
            f"{setup:.2f} s ({args.contexts * args.per_context / setup:,.0f} entries/s)",
    }
    ratios = []
    for label, word in words.items():
        assert word is not None
        loop_search(ids, word)                                  # loads every context
        warm, looped = timed(lambda w=word: loop_search(ids, w), args.repeats)
        found_t, found = timed(lambda w=word: cf.find(w), args.repeats)
        assert isinstance(found, pd.DataFrame) and isinstance(looped, pd.DataFrame)
        assert len(found) == len(looped), (word, len(found), len(looped))
        cf.connect(store=home / "store", redis=url, catalog=home / "catalog.db", home=home,
                   prefix="benchfind")                         # a new client: nothing loaded
        cold, _ = timed(lambda w=word: loop_search(ids, w), 1)
        ratio = found_t / warm
        ratios.append(ratio)
        ctxs = found["context"].nunique()
        out[f"{label} keyword {word!r}: hits (contexts)"] = f"{len(found):,} ({ctxs:,})"
        out[f"{label}: `cf.find`"] = fmt_us(found_t)
        out[f"{label}: loop of `ctx.search`, contexts in memory / cold"] = \
            f"{fmt_us(warm)} / {fmt_us(cold)}"
        out[f"{label}: **ratio find ÷ loop (in memory)** (target ≤ 0.05)"] = f"**{ratio:.4f}**"
    out["worst ratio"] = f"**{max(ratios):.4f}**"
    return out


if __name__ == "__main__":
    main()
