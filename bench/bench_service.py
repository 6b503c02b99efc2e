"""Benchmark of the GetValue service: ``chunkframe serve`` under wrk, and the remote client.

Run: ``python bench/bench_service.py`` (needs ``wrk``: ``apt-get install -y wrk``; starts its
own redis-server and ``chunkframe serve`` on loopback; temp store and catalog). Prints a
markdown table and writes it to ``bench/results_service.md``.

Measured with wrk at 32 connections for DURATION seconds each, against one server process
whose chunk cache holds the whole table (the "cached" regime):
- ``/v1/health`` (no data: the server's own ceiling) and GetValue of one value, the ratio
  of the two (target >= 0.5);
- GetValue of a whole row (JSON) of the 7-column table and of ``flights``, a real-looking
  19-column table with text, missing values and a tz-aware timestamp
  (data/samples/make_samples.py), the ratio of the latter to health (target >= 0.5), and
  1,000-row batches as Arrow IPC streams (POST, bodies from a Lua script);
- the remote client's ``ds.get(sn)`` ÷ a local warm ``ds.get(sn)``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE), str(ROOT / "data" / "samples")]  # this checkout

from common import frame, redis, workdir  # noqa: E402
from make_samples import flights  # noqa: E402
from servers import free_port  # noqa: E402

import chunkframe as cf  # noqa: E402

ROWS = 1_000_000
CHUNK_ROWS = 65_536
CONNECTIONS = 32
THREADS = 2
DURATION = 5  # seconds per wrk run (the issue asks for at least 5)
ROUNDS = 3  # the routes run in turn, ROUNDS times: this shared 2-core VM's speed drifts
BATCH = 1_000
REMOTE_CALLS = 2_000
SEED = 11

LUA_SINGLE = """
math.randomseed(%(seed)d)
request = function()
  return wrk.format("GET", "/v1/datasets/%(dataset)s/values/" .. math.random(0, %(last)d) .. "%(query)s")
end
"""

LUA_BATCH = """
math.randomseed(%(seed)d)
local bodies = {}
for b = 1, 64 do
  local sns = {}
  for i = 1, %(batch)d do sns[i] = math.random(0, %(last)d) end
  bodies[b] = '{"sns": [' .. table.concat(sns, ",") .. ']}'
end
local n = 0
request = function()
  n = n %% 64 + 1
  return wrk.format("POST", "/v1/datasets/bench/values", {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/vnd.apache.arrow.stream"}, bodies[n])
end
"""


def wrk(url: str, script: str | None, scratch: Path, name: str) -> dict[str, float]:
    """One wrk run: requests/s and latency percentiles (ms); fails on any non-2xx answer."""
    cmd = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{DURATION}s", "--latency"]
    if script is not None:
        path = scratch / f"{name}.lua"
        path.write_text(script)
        cmd += ["-s", str(path)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk {name}: errors during the run:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for pct in ("50", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)\b", out).groups()
        lat[pct] = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    return {"rps": rps, "p50": lat["50"], "p99": lat["99"]}


def median_us(fn, args) -> float:
    out = []
    for a in args:
        t = time.perf_counter()
        fn(a)
        out.append(time.perf_counter() - t)
    return statistics.median(out) * 1e6


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("bench_service.py needs wrk, a real HTTP load generator: apt-get install -y wrk "
                 "(Debian/Ubuntu) or see https://github.com/wg/wrk")
    scratch = workdir("service")
    server_redis = redis()
    prefix = "bsvc"
    settings = ["--home", str(scratch), "--store", str(scratch / "store"), "--redis",
                server_redis.url, "--catalog", str(scratch / "catalog.db"), "--prefix", prefix]
    local = cf.connect(store=scratch / "store", redis=server_redis.url,
                       catalog=scratch / "catalog.db", home=scratch, prefix=prefix)
    df = frame(ROWS)
    ds = local.ingest(df, "bench", chunk_rows=CHUNK_ROWS, progress=False)
    last = ROWS - 1
    wide = flights()
    local.ingest(wide, "flights", chunk_rows=CHUNK_ROWS, progress=False)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    env.pop("CHUNKFRAME_TOKEN", None)
    log = open(scratch / "serve.log", "wb")  # noqa: SIM115 - open for the server's lifetime
    server = subprocess.Popen([sys.executable, "-m", "chunkframe", "serve", "--port", str(port),
                               *settings], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/v1/health", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError((scratch / "serve.log").read_text()) from None
                time.sleep(0.1)
        # warm the server's caches: every chunk once
        every_chunk = list(range(0, ROWS, CHUNK_ROWS))
        for name, sns in (("bench", every_chunk), ("flights", list(range(0, len(wide),
                                                                           CHUNK_ROWS)))):
            req = urllib.request.Request(url + f"/v1/datasets/{name}/values", method="POST",
                                         data=json.dumps({"sns": sns}).encode(),
                                         headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req).read()
            for sn in sns:  # and each chunk's row getters, which a whole row uses
                urllib.request.urlopen(url + f"/v1/datasets/{name}/values/{sn}").read()
            info = json.loads(urllib.request.urlopen(url + f"/v1/datasets/{name}").read())
            assert info["cache"]["chunks"] == len(sns), info["cache"]

        routes = {
            "health": (url + "/v1/health", None),
            "value": (url, LUA_SINGLE % {"seed": SEED, "last": last, "query": "?column=a",
                                         "dataset": "bench"}),
            "row": (url, LUA_SINGLE % {"seed": SEED, "last": last, "query": "",
                                       "dataset": "bench"}),
            "wide": (url, LUA_SINGLE % {"seed": SEED, "last": len(wide) - 1, "query": "",
                                        "dataset": "flights"}),
            "batch": (url, LUA_BATCH % {"seed": SEED, "last": last, "batch": BATCH}),
        }
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in routes}
        for _ in range(ROUNDS):
            for name, (target, script) in routes.items():
                rounds[name].append(wrk(target, script, scratch, name))
        runs = {name: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99")}
                for name, rs in rounds.items()}
        ratios = [v["rps"] / h["rps"] for v, h in zip(rounds["value"], rounds["health"],
                                                        strict=True)]
        wide_ratios = [w["rps"] / h["rps"] for w, h in zip(rounds["wide"], rounds["health"],
                                                             strict=True)]
        info = json.loads(urllib.request.urlopen(url + "/v1/datasets/bench").read())
        misses_after = info["cache"]["misses"]
        warm_misses = len(every_chunk) + -(-len(wide) // CHUNK_ROWS)  # one per chunk warmed

        # the remote client against a local warm read, one call at a time, alternating
        rng = np.random.default_rng(SEED)
        sns = [int(x) for x in rng.integers(0, ROWS, REMOTE_CALLS)]
        remote = cf.connect(url).open("bench")
        for sn in sns[:200]:
            remote.get(sn)
            ds.get(sn)
        local_row, remote_row, local_val, remote_val = [], [], [], []
        for i in range(0, REMOTE_CALLS, 100):
            part = sns[i:i + 100]
            local_row.append(median_us(ds.get, part))
            remote_row.append(median_us(remote.get, part))
            local_val.append(median_us(lambda s: ds.get(s, "a"), part))
            remote_val.append(median_us(lambda s: remote.get(s, "a"), part))
        lr, rr = statistics.median(local_row), statistics.median(remote_row)
        lv, rv = statistics.median(local_val), statistics.median(remote_val)
    finally:
        server.terminate()
        server.wait(30)
        log.close()
        server_redis.stop()

    h, v, r, w, b = runs["health"], runs["value"], runs["row"], runs["wide"], runs["batch"]

    def line(name: str, run: dict[str, float], extra: str = "") -> str:
        return (f"| {name} | {run['rps']:,.0f} | {run['p50']:.2f} | {run['p99']:.2f} | "
                f"{extra} |")

    text = "\n".join([
        "# Service benchmark (`python bench/bench_service.py`)",
        "",
        f"Python {platform.python_version()}, {os.cpu_count()} cores (shared), pandas "
        f"{__import__('pandas').__version__}; one `chunkframe serve` process (uvicorn, 1 worker) "
        f"and wrk 4.1 (`-t{THREADS} -c{CONNECTIONS} -d{DURATION}s`) on the same machine, over "
        f"loopback; the five routes run in turn, {ROUNDS} rounds, medians shown (ratios: the "
        "median of each round's value ÷ health); "
        f"table {ROWS:,} rows × {df.shape[1]} columns in {len(every_chunk)} chunks "
        f"of 65,536 rows, and `flights`, {len(wide):,} rows × {wide.shape[1]} columns (text "
        "with missing values, nullable integers, floats with NaN, a tz-aware timestamp), all "
        "in the server's chunk cache (warmed first); serial numbers drawn at random over the "
        f"whole table; {misses_after - warm_misses} chunk-cache misses (the client's "
        "counter) during the wrk runs.",
        "",
        "| route (wrk, 32 connections) | req/s | p50 ms | p99 ms | note |",
        "| --- | --- | --- | --- | --- |",
        line("`GET /v1/health` (no data)", h, "the server's ceiling"),
        line("GetValue, one value `GET .../values/{sn}?column=a` (JSON)", v,
             f"**÷ health = {statistics.median(ratios):.2f}** (target ≥ 0.5; rounds: "
             + ", ".join(f"{x:.2f}" for x in ratios) + ")"),
        line("GetValue, a row `GET .../values/{sn}` (JSON, 7 columns)", r,
             f"÷ health = {r['rps'] / h['rps']:.2f}"),
        line("GetValue, a `flights` row (JSON, 19 columns: text, missing values, timestamps)",
             w, f"**÷ health = {statistics.median(wide_ratios):.2f}** (target ≥ 0.5; rounds: "
             + ", ".join(f"{x:.2f}" for x in wide_ratios) + ")"),
        line(f"{BATCH:,}-row batch `POST .../values`, Arrow IPC stream", b,
             f"{b['rps'] * BATCH:,.0f} rows/s"),
        "",
        "| one call at a time, warm (median of 20 medians of 100 random sns) | µs per call |",
        "| --- | --- |",
        f"| local `ds.get(sn)` | {lr:.1f} |",
        f"| remote `ds.get(sn)` (`cf.connect(url)`, row as typed JSON) | {rr:.1f} |",
        f"| **remote ÷ local, `get(sn)`** (report; HTTP's cost expected) | **{rr / lr:.0f}×** |",
        f"| local `ds.get(sn, 'a')` | {lv:.1f} |",
        f"| remote `ds.get(sn, 'a')` | {rv:.1f} |",
        f"| remote ÷ local, `get(sn, 'a')` | {rv / lv:.0f}× |",
        "",
    ])
    print(text)
    (HERE / "results_service.md").write_text(text)


if __name__ == "__main__":
    main()
