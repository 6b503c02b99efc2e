"""Costs that do not grow with history (issue 22): appends, fresh opens, ``versions()``, ``last()``,
the recoverer's dry run, Redis and catalog bytes per chunk, on datasets of 10 to 100,000 chunks;
Lance appends on as many fragments, ArcticDB (LMDB) appends of 100k rows to a 10M-row table, and
ingest in 1,000-row vs 65,536-row chunks.

Run: ``python bench/bench_history.py`` (sizes 10, 1,000, 10,000 and 100,000 chunks),
``--quick`` (10 and 1,000 only), or ``--sizes 10,5000``. Starts its own redis-server; every size
has its own temp home (store, SQLite catalog) and key prefix. Uses only chunkframe's public API,
so it runs unchanged across rewrites of the metadata layer. Peers: ``pip install pylance`` and
``pip install --no-deps arcticdb==6.28.2 attrs msgpack packaging pytz pyyaml "protobuf<7"``
(ArcticDB declares pandas<3 but works with pandas 3); a peer that is missing is reported, not
fatal. Prints a markdown table and writes it to ``bench/results_history.md``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from common import CHUNK_ROWS, ROOT, alternating, frame, redis, timed, workdir

import chunkframe as cf

HERE = Path(__file__).resolve().parent
SIZES = [10, 1_000, 10_000, 100_000]
QUICK_SIZES = [10, 1_000]
SMALL_ROWS = 200  # rows per chunk of the history datasets, and rows of one small append
DEVICES = 4  # rows cycle through them: every chunk holds each device, so a cold last() is cheap
DEVICE_NAMES = [f"dev-{i}" for i in range(DEVICES)]
T0 = pd.Timestamp("2026-01-01")
DATASET = "history"
TARGETS = {"append": 1.5, "open": 1.5, "lance": 2.0, "arctic": 1.0, "recover": 1.0, "ingest": 3.0}


class BuildTimeout(Exception):
    """A dataset could not be built within --build-timeout."""


def rows_frame(start: int, n: int) -> pd.DataFrame:
    """Rows ``start .. start+n`` of the history: one per second, devices in turn, one float."""
    i = np.arange(start, start + n, dtype=np.int64)
    return pd.DataFrame({
        "time": T0 + pd.to_timedelta(i, unit="s"),
        "device": pd.Categorical.from_codes((i % DEVICES).astype(np.int8), DEVICE_NAMES),
        "value": np.random.default_rng(start).normal(size=n),
    })


def frames(total: int, step: int, deadline: float, cut: list[int]) -> Iterator[pd.DataFrame]:
    """``total`` rows in frames of ``step``; raises BuildTimeout once past ``deadline``."""
    for start in range(0, total, step):
        if time.monotonic() > deadline:
            raise BuildTimeout(f"{cut[0]:,} of {total:,} rows given in time")
        n = min(step, total - start)
        yield rows_frame(start, n)
        cut[0] += n


def build_step(chunks: int) -> int:
    """Rows per frame handed to one build: at most ~10 frames, at least 500 chunks each."""
    return SMALL_ROWS * max(500, -(-chunks // 10))


def repeat(fn: Callable[[], object], n: int, budget: float) -> list[float]:
    """Seconds of up to ``n`` calls of ``fn`` (at least one; no new call once ``budget`` is spent)."""
    out: list[float] = []
    while len(out) < n and (not out or sum(out) < budget):
        out.append(timed(fn))
    return out


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"
    return f"{seconds:.2f} s"


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def checkpointed_bytes(catalog: Path) -> int:
    """The SQLite catalog's size once its WAL is checkpointed: the file plus what -wal is left."""
    with sqlite3.connect(catalog) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    db.close()
    wal = catalog.with_name(catalog.name + "-wal")
    return catalog.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def redis_bytes(server: Any, prefix: str) -> tuple[int, int]:
    """(keys, bytes): MEMORY USAGE (every element sampled) of each key under ``prefix:``."""
    r = server.client()
    keys = list(r.scan_iter(match=f"{prefix}:*", count=1000))
    return len(keys), sum(r.memory_usage(k, samples=0) or 0 for k in keys)


def settings_of(home: Path, server: Any, prefix: str) -> dict[str, Any]:
    return dict(store=str(home / "store"), redis=server.url, catalog=str(home / "catalog.db"),
                home=str(home), prefix=prefix)


# A fresh process: imports and per-process first use (one connect + open + get of a 1-chunk
# dataset elsewhere) before the clock; then a new client opens the dataset and reads one row.
_CHILD = r"""
import json, sys, time
import chunkframe as cf
a = json.loads(sys.argv[1])
w = a["warm"]
cf.connect(**w["settings"]).open(w["dataset"]).get(0, "value")
before = set(sys.modules)
t0 = time.perf_counter()
cf.connect(**a["settings"])
t1 = time.perf_counter()
ds = cf.open(a["dataset"])
value = ds.get(a["sn"], "value")
t2 = time.perf_counter()
assert value == a["value"], (value, a["value"])
print(json.dumps({"connect": t1 - t0, "open_get": t2 - t1,
                  "imported": sorted(set(sys.modules) - before)}))
"""


def fresh_open(settings: dict[str, Any], warm: dict[str, Any], sn: int, value: float) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(cf.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
    arg = json.dumps({"settings": settings, "warm": warm, "dataset": DATASET, "sn": sn,
                      "value": value})
    out = subprocess.run([sys.executable, "-c", _CHILD, arg], capture_output=True, text=True,
                         cwd=HERE, env=env, timeout=1800)
    if out.returncode:
        raise RuntimeError(f"fresh-process open failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def lance_module() -> Any:
    try:
        import lance
    except ImportError:
        return None
    return lance


def build_lance(lance: Any, uri: str, chunks: int, deadline: float) -> None:
    """A Lance dataset of ``chunks`` fragments of SMALL_ROWS rows: the same rows, few commits."""
    total, step = chunks * SMALL_ROWS, build_step(chunks)
    for start in range(0, total, step):
        if time.monotonic() > deadline:
            raise BuildTimeout(f"{start // SMALL_ROWS:,} of {chunks:,} fragments written in time")
        tbl = pa.Table.from_pandas(rows_frame(start, min(step, total - start)), preserve_index=False)
        lance.write_dataset(tbl, uri, mode="create" if start == 0 else "append",
                            max_rows_per_file=SMALL_ROWS, max_rows_per_group=SMALL_ROWS)


def measure_size(server: Any, chunks: int, args: argparse.Namespace, warm: dict[str, Any],
                 notes: list[str]) -> dict[str, Any]:
    """Every measure on one dataset of ``chunks`` chunks (``{"skipped": why}`` if not built)."""
    home, prefix = workdir(f"hist{chunks}"), f"h{chunks}"
    settings = settings_of(home, server, prefix)
    client = cf.connect(**settings)
    total = chunks * SMALL_ROWS
    cut = [0]
    deadline = time.monotonic() + args.build_timeout
    t = time.perf_counter()
    try:
        client.ingest(frames(total, build_step(chunks), deadline, cut), DATASET,
                      chunk_rows=SMALL_ROWS, time_column="time", device_column="device",
                      progress=False)
    except Exception as exc:  # the frames' BuildTimeout, however the pipeline passes it on
        if time.monotonic() <= deadline:
            raise
        why = (f"not built within --build-timeout {args.build_timeout:.0f} s ({cut[0]:,} of "
               f"{total:,} rows cut; {type(exc).__name__})")
        print(f"  {chunks:,} chunks: {why}", flush=True)
        return {"skipped": why}
    res: dict[str, Any] = {"build": time.perf_counter() - t}
    print(f"  {chunks:,} chunks built in {res['build']:.1f} s", flush=True)

    lance = lance_module()
    uri = str(workdir(f"lance{chunks}") / "history.lance")
    if lance is not None:
        t = time.perf_counter()
        try:
            build_lance(lance, uri, chunks, time.monotonic() + args.build_timeout)
            res["lance_build"] = time.perf_counter() - t
            got = len(lance.dataset(uri).get_fragments())
            if got != chunks:
                notes.append(f"Lance at {chunks:,}: {got:,} fragments written, not {chunks:,}.")
        except BuildTimeout as exc:
            lance = None
            res["lance_skipped"] = f"not built within {args.build_timeout:.0f} s ({exc})"
            notes.append(f"Lance at {chunks:,} fragments: {res['lance_skipped']}; not measured.")

    # appends, on a new client (the first call is that client's first append), in turn with Lance
    client = cf.connect(**settings)
    ds = client.open(DATASET)
    base = len(ds)
    adds = [rows_frame(base + k * SMALL_ROWS, SMALL_ROWS) for k in range(args.repeats + 1)]
    tables = [pa.Table.from_pandas(df, preserve_index=False) for df in adds]
    cf_s: list[float] = []
    lance_s: list[float] = []
    for k in range(args.repeats + 1):
        if k > 1 and sum(cf_s[1:]) > args.budget:
            break
        cf_s.append(timed(functools.partial(ds.append, adds[k], progress=False)))
        if lance is not None:
            lance_s.append(timed(functools.partial(lance.write_dataset, tables[k], uri, mode="append")))
    res["append_first"], res["append"] = cf_s[0], median(cf_s[1:])
    res["append_n"] = len(cf_s) - 1
    if lance_s:
        res["lance_first"], res["lance"] = lance_s[0], median(lance_s[1:])
    rows = len(ds)
    assert rows == base + len(cf_s) * SMALL_ROWS, (rows, base, len(cf_s))

    res["versions"] = median(repeat(ds.versions, 5, args.budget))
    res["versions_n"] = len(ds.versions())

    def cold_last() -> float:
        ds.reset_last()
        return timed(ds.last)

    colds: list[float] = []
    while len(colds) < 3 and (not colds or sum(colds) < args.budget):
        colds.append(cold_last())
    res["last_cold"] = median(colds)
    ds.last()
    res["last_warm"] = median(repeat(ds.last, 20, args.budget))

    recs: list[float] = []
    report = None
    while len(recs) < 3 and (not recs or sum(recs) < args.budget):
        t = time.perf_counter()
        report = client.recover(progress=False)
        recs.append(time.perf_counter() - t)
    res["recover"] = median(recs)
    if report is not None and len(report):
        notes.append(f"the dry-run recover at {chunks:,} chunks reported {len(report)} problem(s): "
                     f"{sorted(set(report['problem']))}.")

    sn = rows - 1
    value = float(adds[len(cf_s) - 1]["value"].iloc[-1])
    opens = []
    for _ in range(3):
        opens.append(fresh_open(settings, warm, sn, value))
        if sum(o["connect"] + o["open_get"] for o in opens) > args.budget:
            break
    res["open_get"] = median([o["open_get"] for o in opens])
    res["connect"] = median([o["connect"] for o in opens])
    imported = sorted({m for o in opens for m in o["imported"]})
    if imported:
        notes.append(f"modules first imported inside the timed open + get at {chunks:,} chunks: "
                     f"{', '.join(imported[:12])}{' ...' if len(imported) > 12 else ''}.")

    res["chunks"] = len(ds.chunks)
    keys, nbytes = redis_bytes(server, prefix)
    res["redis_keys"], res["redis_per_chunk"] = keys, nbytes / res["chunks"]
    res["catalog_per_chunk"] = checkpointed_bytes(Path(settings["catalog"])) / res["chunks"]
    print(f"  {chunks:,} chunks: append {fmt(res['append'])}, open+get {fmt(res['open_get'])}, "
          f"recover {fmt(res['recover'])}", flush=True)
    return res


def warm_dataset(server: Any) -> dict[str, Any]:
    """A 1-chunk dataset the fresh processes open first, to keep imports out of the timing."""
    home = workdir("warm")
    settings = settings_of(home, server, "warm")
    cf.connect(**settings).ingest(rows_frame(0, SMALL_ROWS), "warm", chunk_rows=SMALL_ROWS,
                                  time_column="time", device_column="device", progress=False)
    return {"settings": settings, "dataset": "warm"}


def big_append(server: Any, args: argparse.Namespace, notes: list[str]) -> dict[str, Any]:
    """Appends of --big-append rows onto a --big-rows table: chunkframe (65,536-row chunks) in
    turn with ArcticDB on LMDB (time index; the device as str, which ArcticDB takes)."""
    try:
        from arcticdb import Arctic
    except ImportError:
        Arctic = None
        notes.append("ArcticDB is not installed (pip install --no-deps arcticdb==6.28.2 attrs msgpack "
                     "packaging pytz pyyaml \"protobuf<7\"): its ratio is not measured.")
    home = workdir("big")
    settings = settings_of(home, server, "big")
    client = cf.connect(**settings)
    df = rows_frame(0, args.big_rows)
    res: dict[str, Any] = {}
    res["cf_build"] = timed(functools.partial(
        client.ingest, df, "big", chunk_rows=CHUNK_ROWS, time_column="time", device_column="device",
        progress=False))

    def for_arctic(d: pd.DataFrame) -> pd.DataFrame:
        out = d.set_index("time")
        out["device"] = out["device"].astype(str)
        return out

    lib = None
    if Arctic is not None:
        ac = Arctic(f"lmdb://{workdir('arctic')}?map_size=16GB")
        lib = ac.get_library("bench", create_if_missing=True)
        res["arctic_build"] = timed(functools.partial(lib.write, "big", for_arctic(df)))
    del df
    client = cf.connect(**settings)
    ds = client.open("big")
    n = args.big_append
    adds = [rows_frame(args.big_rows + k * n, n) for k in range(args.repeats + 1)]
    arcs = [for_arctic(d) for d in adds]
    fns: list[Callable[[int], float]] = [
        lambda k: timed(functools.partial(ds.append, adds[k], progress=False))]
    if lib is not None:
        fns.append(lambda k: timed(functools.partial(lib.append, "big", arcs[k])))
    runs = alternating(fns, range(args.repeats + 1))
    res["cf_first"], res["cf"] = runs[0][0], median(runs[0][1:])
    res["chunks"] = len(ds.chunks)
    if lib is not None:
        res["arctic_first"], res["arctic"] = runs[1][0], median(runs[1][1:])
        assert lib.get_description("big").row_count == len(ds), "ArcticDB and chunkframe differ"
    return res


def ingest_ratio(server: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The same frame ingested in 1,000-row and in 65,536-row chunks: best of 3, in turn."""
    df = frame(args.ingest_rows)
    home = workdir("ingest")
    client = cf.connect(**settings_of(home, server, "ingest"))
    n = [0]

    def run(chunk_rows: int) -> float:
        n[0] += 1
        os.sync()  # no dirty pages of the run before slowing this one's fsyncs
        return timed(functools.partial(client.ingest, df, f"i{n[0]}", chunk_rows=chunk_rows,
                                       progress=False))

    small, big = alternating([lambda _: run(1_000), lambda _: run(CHUNK_ROWS)], range(3))
    return {"rows": len(df), "cols": df.shape[1], "small": min(small), "big": min(big)}


def verdict(value: float | None, target: float, where: str = "") -> str:
    if value is None:
        return "not measured"
    ok = "met" if value <= target else "**not met**"
    return f"{ok}{f' ({where})' if where else ''}"


def report(args: argparse.Namespace, sizes: list[int], per: dict[int, dict[str, Any]],
           big: dict[str, Any], ing: dict[str, Any], notes: list[str]) -> str:
    built = [s for s in sizes if "skipped" not in per[s]]
    head = "| dataset of | " + " | ".join(f"{s:,} chunks" for s in sizes) + " |\n"
    head += "| --- |" + " --- |" * len(sizes) + "\n"

    def line(label: str, cell: Callable[[dict[str, Any]], str]) -> str:
        skipped = "not built (see below)" if label.startswith("build") else "—"
        cells = [skipped if "skipped" in per[s] else cell(per[s]) for s in sizes]
        return f"| {label} | " + " | ".join(cells) + " |\n"

    body = [
        line(f"build: one ingest of N × {SMALL_ROWS} rows", lambda r: fmt(r["build"])),
        line(f"`ds.append` of {SMALL_ROWS} rows (one chunk): first call on a new client",
             lambda r: fmt(r["append_first"])),
        line("`ds.append`, warm (median)", lambda r: f"{fmt(r['append'])} (of {r['append_n']})"),
        line("Lance `write_dataset(mode=\"append\")` of the same rows onto as many fragments: first",
             lambda r: fmt(r.get("lance_first")) or r.get("lance_skipped", "not installed")),
        line("Lance append, warm (median)", lambda r: fmt(r.get("lance"))),
        line("  build of the Lance dataset (for reference)", lambda r: fmt(r.get("lance_build"))),
        line("**append ÷ Lance** (warm; target ≤ 2.0)",
             lambda r: f"**{r['append'] / r['lance']:.2f}**" if r.get("lance") else ""),
        line("fresh process: `cf.open` + first `get` (imports excluded; median of ≤ 3)",
             lambda r: fmt(r["open_get"])),
        line("  and its `cf.connect` before them", lambda r: fmt(r["connect"])),
        line("`ds.versions()` (median of ≤ 5)",
             lambda r: f"{fmt(r['versions'])} ({r['versions_n']} versions)"),
        line("`ds.last()` cold, after `ds.reset_last()` (median of ≤ 3)", lambda r: fmt(r["last_cold"])),
        line("`ds.last()` warm (median of ≤ 20)", lambda r: fmt(r["last_warm"])),
        line("`cf.recover()` dry run (median of ≤ 3)", lambda r: fmt(r["recover"])),
        line("Redis bytes per chunk (MEMORY USAGE of the prefix's keys)",
             lambda r: f"{r['redis_per_chunk']:,.0f} ({r['redis_keys']} keys)"),
        line("catalog bytes per chunk (SQLite file + WAL after a checkpoint)",
             lambda r: f"{r['catalog_per_chunk']:,.0f}"),
    ]
    out = head + "".join(body)

    first, last = (per[built[0]], per[built[-1]]) if built else ({}, {})
    span = f"{built[-1]:,} ÷ {built[0]:,} chunks" if built else ""
    full = built and built[0] == 10 and built[-1] == 100_000
    where = "" if full else "100,000 ÷ 10 not measured"
    rows = []

    def ratio_row(label: str, a: float | None, b: float | None, target: float, where: str = "") -> None:
        r = a / b if a is not None and b else None
        rows.append((label, f"{r:.2f}" if r is not None else "", f"≤ {target}", verdict(r, target, where)))

    if len(built) > 1:
        ratio_row(f"`ds.append` of {SMALL_ROWS} rows (warm) at {span}", last["append"],
                  first["append"], TARGETS["append"], where)
        ratio_row(f"fresh-process open + first get at {span}", last["open_get"], first["open_get"],
                  TARGETS["open"], where)
    else:
        rows.append(("append / open growth", "", "≤ 1.5", "not measured (one size built)"))
    lance_sizes = [s for s in built if per[s].get("lance")]
    if lance_sizes:
        worst = max(lance_sizes, key=lambda s: per[s]["append"] / per[s]["lance"])
        missing = [s for s in SIZES if s not in lance_sizes]
        ratio_row(f"small append ÷ Lance append, worst size ({worst:,} chunks)", per[worst]["append"],
                  per[worst]["lance"], TARGETS["lance"],
                  f"not measured at {', '.join(f'{s:,}' for s in missing)}" if missing else "")
    else:
        rows.append(("small append ÷ Lance append", "", "≤ 2.0", "not measured (no Lance)"))
    ratio_row(f"{args.big_append:,}-row append onto {args.big_rows:,} rows ({big['chunks']} chunks) "
              "÷ ArcticDB `append` (LMDB)", big["cf"], big.get("arctic"), TARGETS["arctic"])
    if 10_000 in built:
        rows.append(("dry-run `recover` at 10,000 chunks, seconds", f"{per[10_000]['recover']:.2f}",
                     "≤ 1 s", verdict(per[10_000]["recover"], TARGETS["recover"])))
    elif built:
        rows.append((f"dry-run `recover` at {built[-1]:,} chunks, seconds",
                     f"{last['recover']:.2f}", "≤ 1 s at 10,000",
                     f"not measured at 10,000 ({verdict(last['recover'], TARGETS['recover'])} "
                     f"at {built[-1]:,})"))
    ratio_row(f"ingest of {ing['rows']:,} rows in 1,000-row ÷ 65,536-row chunks", ing["small"],
              ing["big"], TARGETS["ingest"])
    out += "\n| ratio (issue 22) | value | target | |\n| --- | --- | --- | --- |\n"
    out += "".join(f"| {a} | {b} | {c} | {d} |\n" for a, b, c, d in rows)

    out += (f"\n{args.big_append:,}-row appends onto {args.big_rows:,} rows, median of "
            f"{args.repeats} after a first call, in turn: chunkframe {fmt(big['cf'])} "
            f"(first {fmt(big['cf_first'])}; the {args.big_rows:,} rows ingested in "
            f"{fmt(big['cf_build'])})")
    if "arctic" in big:
        out += (f", ArcticDB {fmt(big['arctic'])} (first {fmt(big['arctic_first'])}; written in "
                f"{fmt(big['arctic_build'])})")
    out += (f". Ingest of {ing['rows']:,} rows × {ing['cols']} columns (bench/common.py `frame`), "
            f"best of 3 in turn: {fmt(ing['small'])} in 1,000-row chunks, {fmt(ing['big'])} in "
            f"{CHUNK_ROWS:,}-row chunks.\n")
    out += ("\nHistory datasets: 3 columns (time, a categorical of 4 devices, one float), "
            f"{SMALL_ROWS}-row chunks, built by one ingest each; time and device columns set, so "
            "appends keep last values current. Every size has its own store, SQLite catalog and "
            "Redis key prefix on one private redis-server (AOF, fsync always). Fresh processes "
            "first open a 1-chunk dataset elsewhere (imports, first use), then time a new "
            "`cf.connect` and `cf.open` + `get` of the last row. Per-chunk bytes divide by the "
            "chunks after the appends. Each dataset's history is one ingest plus the measured "
            "appends, so these measure growth with chunks, not with a long version history.\n")
    for s in sizes:
        if s not in built:
            notes.append(f"{s:,} chunks: {per[s]['skipped']}.")
    if notes:
        out += "\n" + "".join(f"- {n}\n" for n in notes)
    return out


def package_line() -> str:
    where = Path(cf.__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(where), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--", "chunkframe"],
                               capture_output=True, text=True, check=True).stdout.strip()
        commit += " with uncommitted changes" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "?"
    versions = [f"chunkframe {cf.__version__} from {where} (commit {commit})",
                f"Python {platform.python_version()}", f"pandas {pd.__version__}",
                f"pyarrow {pa.__version__}"]
    lance = lance_module()
    if lance is not None:
        versions.append(f"pylance {getattr(lance, '__version__', '?')}")
    try:
        import arcticdb

        versions.append(f"arcticdb {arcticdb.__version__}")
    except ImportError:
        pass
    return ", ".join(versions) + f", {os.cpu_count()} cores"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=",".join(map(str, SIZES)),
                   help="chunks of the history datasets, comma-separated (default %(default)s)")
    p.add_argument("--quick", action="store_true", help="sizes 10 and 1,000 only")
    p.add_argument("--repeats", type=int, default=5, help="warm calls after the first (appends)")
    p.add_argument("--budget", type=float, default=60.0,
                   help="seconds after which a measure stops repeating (default %(default)s)")
    p.add_argument("--build-timeout", type=float, default=600.0,
                   help="seconds to build one size before it and larger ones are skipped")
    p.add_argument("--big-rows", type=int, default=10_000_000)
    p.add_argument("--big-append", type=int, default=100_000)
    p.add_argument("--ingest-rows", type=int, default=2_000_000)
    args = p.parse_args()
    sizes = QUICK_SIZES if args.quick else sorted(int(s.replace("_", "")) for s in args.sizes.split(","))
    command = "python bench/bench_history.py" + (" --quick" if args.quick else (
        f" --sizes {','.join(map(str, sizes))}" if sizes != SIZES else ""))
    load_start = os.getloadavg()[0]
    server = redis()
    notes: list[str] = []
    per: dict[int, dict[str, Any]] = {}
    try:
        warm = warm_dataset(server)
        for s in sizes:
            if any("skipped" in per[b] for b in per):
                per[s] = {"skipped": "skipped, as a smaller size was not built in time"}
                continue
            print(f"== {s:,} chunks", flush=True)
            per[s] = measure_size(server, s, args, warm, notes)
        print(f"== {args.big_append:,}-row appends onto {args.big_rows:,} rows", flush=True)
        big = big_append(server, args, notes)
        print(f"== ingest of {args.ingest_rows:,} rows in 1,000 vs {CHUNK_ROWS:,}-row chunks", flush=True)
        ing = ingest_ratio(server, args)
    finally:
        server.stop()
    md = (f"# Costs that do not grow with history (`{command}`)\n\n"
          f"{package_line()}; one run, chunkframe and its peers measured in turn; 1-minute load "
          f"average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end.\n\n"
          + report(args, sizes, per, big, ing, notes))
    print(md)
    (ROOT / "bench" / "results_history.md").write_text(md)


if __name__ == "__main__":
    main()
