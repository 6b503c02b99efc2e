"""Benchmark of the context cache: keyword search vs a pandas scan, memory per entry, cold load.

The cache records every change in a SQLite catalog, as a client's does (durable contexts);
single ``put`` latency is measured with and without that record.

Run ``python bench/bench_context.py`` (starts a private redis-server through
``tests/servers.py``) or ``python bench/bench_context.py --redis redis://host:6379/0``
(uses a fresh key prefix and deletes its keys afterwards). Prints a markdown table and
writes it to ``bench/results_context.md``.
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
import uuid
from pathlib import Path

import pandas as pd
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from chunkframe.contextcache import ContextCache  # noqa: E402
from chunkframe.storage.catalog import Catalog  # noqa: E402

CARRIERS = ["AA", "UA", "DL", "WN", "B6", "AS", "NK", "F9", "HA", "G4",
            "SY", "MX", "XP", "QX", "OO", "YX", "9E", "MQ", "OH", "ZW"]
AIRPORTS = [f"{a}{b}{c}" for a in "ABCDEFGHIJKLMNOPQRST" for b in "AEIOU" for c in "XYZ"]  # 300
STATUSES = ["on-time", "delayed", "cancelled", "diverted", "boarding"]


def entry_value(rng: random.Random) -> str:
    carrier = rng.choice(CARRIERS)
    return (f"{carrier}{rng.randrange(1, 10_000)} {rng.choice(AIRPORTS)} "
            f"{rng.choice(AIRPORTS)} {rng.choice(STATUSES)} gate{rng.randrange(1, 90)}")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def wait_for_redis_background_work(client: redis.Redis, limit: float = 120.0) -> float:
    """Wait until Redis has no AOF rewrite or RDB save running; return the seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        info = client.info("persistence")
        if not info.get("aof_rewrite_in_progress") and not info.get("rdb_bgsave_in_progress"):
            break
        time.sleep(0.2)
    return time.perf_counter() - t0


def median_seconds(samples: list[float]) -> float:
    return statistics.median(samples)


def fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:,.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", help="redis URL; default: start a private redis-server")
    parser.add_argument("--contexts", type=int, default=1_000)
    parser.add_argument("--per-context", type=int, default=1_000)
    parser.add_argument("--searches", type=int, default=3_000)
    parser.add_argument("--scans", type=int, default=15)
    parser.add_argument("--cold-entries", type=int, default=10_000)
    parser.add_argument("--cold-repeats", type=int, default=5)
    parser.add_argument("--puts", type=int, default=300)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results_context.md"))
    args = parser.parse_args()

    server = None
    if args.redis:
        client = redis.Redis.from_url(args.redis)
    else:
        from servers import RedisProcess

        server = RedisProcess().start()
        client = server.client()
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    rng = random.Random(42)
    try:
        rows = run(client, prefix, rng, args)
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(server.dir, ignore_errors=True)
        else:
            for key in client.scan_iter(match=f"{prefix}:*", count=10_000):
                client.delete(key)

    env = (f"{platform.python_implementation()} {platform.python_version()}, pandas "
           f"{pd.__version__}, redis-py {redis.__version__}, redis-server "
           f"{rows.pop('_server')}, {os.cpu_count()} CPUs, {platform.machine()}")
    lines = [
        "# Context cache benchmark (`bench/bench_context.py`)",
        "",
        f"{env}. Redis over a unix socket, AOF on.",
        "",
        "| measure | value |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in rows.items()),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    Path(args.out).write_text(text)


def run(client: redis.Redis, prefix: str, rng: random.Random,
        args: argparse.Namespace) -> dict[str, str]:
    n_ctx, per = args.contexts, args.per_context
    total = n_ctx * per
    home = Path(tempfile.mkdtemp(prefix="cfbench-"))
    record = Catalog(home / "catalog.db")  # the durable copy, as a client's cache has
    cache = ContextCache(client, prefix=prefix, max_bytes=8 * 2**30, record=record)

    # -- single puts, with and without the durable record --------------------------------
    put_times: dict[str, list[float]] = {}
    put_rng = random.Random(7)  # its own: the other measures see the same data as before
    for name, c in (("recorded", cache),
                    ("redis only", ContextCache(client, prefix=prefix, max_bytes=8 * 2**30))):
        ctx = c.context(f"puts-{name.replace(' ', '-')}")
        samples = put_times[name] = []
        for i in range(args.puts):
            value = entry_value(put_rng)
            t = time.perf_counter()
            ctx.put(f"p{i}", value)
            samples.append(time.perf_counter() - t)
        c.invalidate(ctx.context_id)  # out of the memory measured below

    # -- setup: public API, one put_many (one MULTI/EXEC) per context --------------------
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    for c in range(n_ctx):
        cache.context(f"ctx-{c:04d}").put_many(
            ((f"e{j}", entry_value(rng)) for j in range(per)), type="DATA")
    setup = time.perf_counter() - t0
    rss1 = rss_bytes()
    frame = cache.contexts(include_stored=False)
    assert len(frame) == n_ctx and int(frame["entries"].sum()) == total, "not all in memory"
    measured = int(frame["memory_bytes"].sum())

    # -- the pandas baseline: every entry in one DataFrame, a string column to scan ------
    t0 = time.perf_counter()
    parts = []
    for c in range(n_ctx):
        items = cache.context(f"ctx-{c:04d}").to_frame()
        items.insert(0, "context_id", f"ctx-{c:04d}")
        parts.append(items)
    df = pd.concat(parts, ignore_index=True)
    df["text"] = (df["key"] + " " + df["value"].astype(str)).str.lower()
    build = time.perf_counter() - t0
    assert len(df) == total

    # the 1M writes make redis-server rewrite its AOF in a forked child; on a small machine
    # that child competes for the CPU, so measure once it is done
    waited = wait_for_redis_background_work(client)

    # random (context, keyword) pairs, keywords taken from that context's own entries
    queries = []
    for _ in range(args.searches):
        c = rng.randrange(n_ctx)
        value = df.at[c * per + rng.randrange(per), "value"]
        queries.append((f"ctx-{c:04d}", rng.choice(value.split()).lower()))

    search_times, hits = [], []
    for cid, word in queries:
        ctx = cache.context(cid)
        t = time.perf_counter()
        found = ctx.search(word)
        search_times.append(time.perf_counter() - t)
        hits.append(len(found))
    assert min(hits) >= 1

    scan_times, one_ctx_times = [], []
    for cid, word in queries[: args.scans]:
        t = time.perf_counter()
        found = df[df["text"].str.contains(word, regex=False)]
        scan_times.append(time.perf_counter() - t)
        assert len(found) >= 1
        sub = df[df["context_id"] == cid]
        t = time.perf_counter()
        sub[sub["text"].str.contains(word, regex=False)]
        one_ctx_times.append(time.perf_counter() - t)

    search_med, scan_med = median_seconds(search_times), median_seconds(scan_times)

    # -- cold load of a 10k-entry context ------------------------------------------------
    cold_id = "cold-10k"
    cache.context(cold_id).put_many(
        ((f"e{j}", entry_value(rng)) for j in range(args.cold_entries)), type="DATA")
    cold = []
    for _ in range(args.cold_repeats):
        fresh = ContextCache(client, prefix=prefix, max_bytes=8 * 2**30).context(cold_id)
        t = time.perf_counter()
        n = len(fresh)
        cold.append(time.perf_counter() - t)
        assert n == args.cold_entries

    server = client.info("server").get("redis_version", "?")
    shutil.rmtree(home, ignore_errors=True)
    return {
        "_server": str(server),
        "entries / contexts": f"{total:,} / {n_ctx:,} (type DATA, ~6 keywords each)",
        f"single `put`, median of {args.puts}: recorded in the catalog (SQLite, "
        "synchronous=FULL) / Redis only":
            f"{fmt_us(median_seconds(put_times['recorded']))} / "
            f"{fmt_us(median_seconds(put_times['redis only']))}",
        "setup through `put_many` (1 transaction per context, recorded in the catalog)":
            f"{setup:.1f} s ({total / setup:,.0f} entries/s)",
        f"`Context.search` median over {len(search_times):,} random (context, keyword)":
            f"{fmt_us(search_med)} (p90 {fmt_us(statistics.quantiles(search_times, n=10)[-1])}, "
            f"median {statistics.median(hits):.0f} hits)",
        f"pandas `str.contains` over all {total:,} entries, median of {len(scan_times)}":
            f"{fmt_us(scan_med)} (string dtype {df['text'].dtype})",
        "**ratio search ÷ pandas scan** (target ≤ 0.01)": f"**{search_med / scan_med:.5f}**",
        "pandas `str.contains` over the one context's rows only (for reference)":
            fmt_us(median_seconds(one_ctx_times)),
        "memory per entry, from metrics (serialised key + value + index)":
            f"{measured / total:.1f} B ({measured / 2**20:,.1f} MiB total)",
        "process RSS growth per entry during setup (Python objects)":
            f"{(rss1 - rss0) / total:.0f} B",
        f"cold load of a {args.cold_entries:,}-entry context (fresh cache, first `len()`)":
            f"median {fmt_us(median_seconds(cold))}, min {fmt_us(min(cold))} "
            f"of {len(cold)}",
        "pandas baseline frame build (via `to_frame()`)": f"{build:.1f} s",
        "wait for Redis' background AOF rewrite before timing": f"{waited:.1f} s",
    }


if __name__ == "__main__":
    main()
