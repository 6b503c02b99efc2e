"""Notebook benchmark (issues 17 and 27): browse() and zoom in a real browser, ds.plot against pandas.

``python bench/bench_notebook.py [--rows N] [--small N] [--no-browser]`` builds a year of
minute readings of ``N // 525,600`` machines (default 100M rows) and a small one (1M rows),
then measures, in one run:

- ``ds.plot(column, device=one machine)`` over the whole large table with cold chunk caches
  (a new client each run), drawn, against pandas plotting the same machine from the
  in-memory frame (``df[df.machine == m].plot(...)``, drawn), side by side;
- in JupyterLab driven by Debian's headless Chromium (Playwright): ``browse()`` steps on
  both datasets, click (▶, a key, PgDn) to the highlighted row changing in the DOM, timed
  in the page; and the interactive plot of one machine zoomed from the whole year to one
  hour by one wheel event: to the first redraw and to the kernel's new data drawn, with
  the chunks read against those overlapping the hour.

Prints a markdown table and writes it to ``bench/results_notebook.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from common import alternating, redis, table, workdir  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402
from pagetiming import CURRENT, STEP, WHEEL  # noqa: E402 - tests/, on the path by common

import chunkframe as cf  # noqa: E402
from chunkframe.storage.codec import checksum_matches  # noqa: E402

HERE = Path(__file__).resolve().parent
MINUTES = 365 * 24 * 60
MACHINE = "m042"
RUNS = 3
STEPS = 15
CHROMIUM = Path("/usr/bin/chromium")


def year_frame(machines: int, seed: int = 27) -> pd.DataFrame:
    """A year of minute readings of ``machines`` machines, rows in time order: a daily
    cycle of temperature with noise and one overheating minute per machine, and a load."""
    rng = np.random.default_rng(seed)
    t = pd.date_range("2026-01-01", periods=MINUTES, freq="min", tz="UTC")
    n = MINUTES * machines
    names = np.array([f"m{i:03d}" for i in range(machines)])
    day = np.arange(n) // machines % 1_440
    temperature = 60 + 5 * np.sin(2 * np.pi * day / 1_440) + rng.normal(0, 0.4, n)
    temperature[rng.integers(0, n, machines)] = 140.0
    return pd.DataFrame({
        "time": np.repeat(t, machines),
        "machine": pd.array(np.tile(names, MINUTES), dtype="str"),
        "temperature": temperature,
        "load": rng.integers(0, 100, n),
    })


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values):,.1f} ms"


# -- the browser ----------------------------------------------------------------------------

def _cells(connect: str) -> list[str]:
    return [
        f"import chunkframe as cf\nclient = {connect}\nbig = client.open('big')\n"
        "small = client.open('small')",
        "bs = small.browse(sn=len(small) // 2)\nbs",
        "bb = big.browse(sn=len(big) // 2)\nbb",
        f"z = big.plot('temperature', device={MACHINE!r}, interactive=True)\nz",
        "from chunkframe.display.plot import chunks_overlapping\n"
        "m0, s0 = big.cache_info()['misses'], big.cache_info()['skipped']\n"
        "z.view = [z.view[0], z.view[1] + 1]  # the hour in view, read again\n"
        "lo, hi = (int(v * 1e6) for v in z.view)\n"
        "overlap = len(chunks_overlapping(big.chunk_metas, lo, hi))\n"
        "print('zoom-check', z.reads[-1][1], overlap, big.cache_info()['misses'] - m0,\n"
        "      big.cache_info()['skipped'] - s0, z.reads[-1][2])",
    ]


def _lab(root: Path, cells: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    """JupyterLab on a free port with a notebook of ``cells``: (the server, its URL)."""
    from ipykernel.kernelspec import write_kernel_spec

    (root / "work").mkdir(parents=True)
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}},
          "cells": [{"cell_type": "code", "metadata": {}, "source": c, "outputs": [],
                     "execution_count": None, "id": f"b{i}"} for i, c in enumerate(cells)]}
    (root / "work" / "bench.ipynb").write_text(json.dumps(nb))
    write_kernel_spec(root / "data" / "kernels" / "python3")
    tracker = root / "settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    env = dict(os.environ, HOME=str(root), JUPYTER_DATA_DIR=str(root / "data"),
               JUPYTER_CONFIG_DIR=str(root / "config"), JUPYTER_RUNTIME_DIR=str(root / "rt"),
               JUPYTERLAB_SETTINGS_DIR=str(root / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(root / "ws"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(HERE.parent),
                                                        os.environ.get("PYTHONPATH")])))
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", f"--ServerApp.root_dir={root / 'work'}", "--allow-root",
         f"--IdentityProvider.token={token}", "--LabApp.news_url="],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                return server, f"{url}/lab/tree/bench.ipynb?token={token}&reset"
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise RuntimeError("JupyterLab did not start")


def browser_runs(connect: str, year_ms: float) -> dict[str, Any]:
    """Open the notebook in JupyterLab, run it, and time steps and the zoom in the page."""
    from playwright.sync_api import sync_playwright

    root = Path(tempfile.mkdtemp(prefix="cfbn-"))
    server, url = _lab(root, _cells(connect))
    out: dict[str, Any] = {}
    try:
        with sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                         args=["--no-sandbox", "--disable-gpu"])
            page = chromium.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(url)
            page.wait_for_selector("#jp-main-statusbar :text('Idle')", timeout=120_000)
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
            page.wait_for_selector(".cf-zoom .cf-zoom-status", timeout=300_000)
            page.wait_for_function("() => document.querySelectorAll('.cf-browser .cf-grid "
                                   "tr.cf-current').length === 2")
            for i, name in ((0, "small"), (1, "large")):
                for how, step in (("click", 1), ("ArrowDown", 1), ("PageDown", 20)):
                    times = []
                    for _ in range(STEPS):
                        want = page.evaluate(CURRENT, i) + step
                        times.append(page.evaluate(STEP, [i, how, want]))
                    out[(name, how)] = times
            hour = math.log(3_600_000 / year_ms) / math.log(1.0015)  # one event: year → hour
            zooms = []
            for _ in range(RUNS + 2):
                zooms.append(page.evaluate(WHEEL, hour))
                page.locator(".cf-zoom-box").dblclick()  # the year again (from memory)
                page.wait_for_timeout(300)
            zooms.append(page.evaluate(WHEEL, hour))
            out["zoom"] = zooms
            last = page.locator(".jp-Notebook .jp-Cell").last
            last.locator(".jp-InputArea-editor").click()
            page.keyboard.press("Shift+Enter")
            page.wait_for_function("() => [...document.querySelectorAll('.jp-OutputArea-output')]"
                                   ".some(o => o.innerText.includes('zoom-check'))")
            text = next(t for t in page.locator(".jp-OutputArea-output").all_inner_texts()
                        if "zoom-check" in t)
            out["check"] = [int(v) for v in text.split()[1:6]]
            chromium.close()
    finally:
        server.terminate()
        server.wait(20)
        shutil.rmtree(root, ignore_errors=True)
    return out


# -- the run --------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000_000,
                        help="rows of the large dataset (a year of minutes × rows // 525,600 "
                             "machines); default 100M")
    parser.add_argument("--small", type=int, default=1_000_000,
                        help="rows of the small dataset; default 1M")
    parser.add_argument("--no-browser", action="store_true",
                        help="skip the JupyterLab measures (no Chromium or Playwright here)")
    args = parser.parse_args()
    machines = max(args.rows // MINUTES, 43)
    tmp = workdir("notebook")
    server = redis()
    try:
        def connect() -> cf.Client:
            return cf.connect(store=tmp / "store", redis=server.url, catalog=tmp / "catalog.db",
                              home=tmp, prefix="bn")

        t0 = time.perf_counter()
        df = year_frame(machines)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        big = connect().ingest(df, "big", time_column="time", device_column="machine",
                               progress=False)
        ingest_s = time.perf_counter() - t0
        small_df = year_frame(max(args.small // MINUTES, 2), seed=1)
        connect().ingest(small_df, "small", time_column="time", device_column="machine",
                         progress=False)
        del small_df
        plt.close(big.plot("temperature", device=MACHINE, date_range=("2026-06-01", "2026-06-02")))

        reads: list[int] = []

        def ours(_: int) -> float:
            cold = connect().open("big")
            began = time.perf_counter()
            fig = cold.plot("temperature", device=MACHINE)
            fig.canvas.draw()  # both sides render, not only build
            took = time.perf_counter() - began
            reads.append(cold.cache_info()["misses"])
            plt.close(fig)
            return took

        def theirs(_: int) -> float:
            began = time.perf_counter()
            ax = df[df["machine"] == MACHINE].plot(x="time", y="temperature")
            ax.figure.canvas.draw()
            took = time.perf_counter() - began
            plt.close(ax.figure)
            return took

        def floor(_: int) -> float:
            """What any cold read of every chunk pays: map and checksum each chunk's file."""
            client = connect()
            keys = [cm.key for cm in client.open("big").chunk_metas]

            def check(key: str) -> bool:
                got = client.reader.store.read_mapped(key)
                assert got is not None
                return checksum_matches(got[0], "crc32c:0")[0]

            began = time.perf_counter()
            with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
                list(pool.map(check, keys))
            return time.perf_counter() - began

        mine, pandas_s, floor_s = (statistics.median(d) for d in
                                   alternating([ours, theirs, floor], range(RUNS)))
        rows, chunks = len(df), big.meta.chunks
        connect_code = (f"cf.connect(store={str(tmp / 'store')!r}, redis={server.url!r}, "
                        f"catalog={str(tmp / 'catalog.db')!r}, home={str(tmp)!r}, prefix='bn')")
        browser: dict[str, Any] = {}
        if not args.no_browser and CHROMIUM.exists():
            browser = browser_runs(connect_code, (MINUTES - 1) * 60_000)
    finally:
        server.stop()

    lines = [
        (f"`ds.plot('temperature', device={MACHINE!r})`, the whole large table, cold, drawn "
         f"(median of {RUNS})", f"{mine:.2f} s", f"{pandas_s:.2f} s",
         f"**{mine / pandas_s:.2f}** (≤ 0.2)"),
        ("  chunks read (all: every chunk holds every machine)", f"{statistics.median(reads):.0f}"
         f" of {chunks:,}", "whole frame in memory", ""),
        (f"  floor: map and CRC32C-check every chunk file, {os.cpu_count()} threads (what a "
         f"cold read of every chunk pays before decoding)", f"{floor_s:.2f} s", "",
         f"{floor_s / pandas_s:.2f}"),
    ]
    if browser:
        for how, label in (("click", "▶ click"), ("ArrowDown", "↓ key"), ("PageDown", "PgDn")):
            small, large = browser[("small", how)], browser[("large", how)]
            lines.append((f"`browse()` {label} → DOM change in Chromium (median of {STEPS})",
                          f"large {median_ms(large)}", f"small {median_ms(small)}",
                          f"**{statistics.median(large):.0f} ms** (≤ 100 ms, as small)"))
        zoom = browser["zoom"]
        first = [z[0] for z in zoom]
        data = [z[1] for z in zoom]
        planned, overlap, misses, skipped, hour_rows = browser["check"]
        lines += [
            (f"zoom year → one hour of {MACHINE}, one wheel event: to the first redraw "
             f"(median of {len(zoom)})", median_ms(first), "", ""),
            ("  to the kernel's new data drawn (80 ms of it the debounce)", median_ms(data), "",
             f"**{statistics.median(data):.0f} ms** (≤ 300 ms)"),
            ("  chunks read for the hour / overlapping it / fetched / skipped by statistics",
             f"{planned} / {overlap} / {misses} / {skipped:,}", "",
             f"{hour_rows} readings drawn one by one"),
        ]
    note = ("" if rows >= 0.99 * 100_000_000 else
            f" The large dataset has {rows:,} rows, not 100M: `--rows` was smaller.")
    text = (f"# Notebook benchmark (`python bench/bench_notebook.py"
            f"{'' if args.rows == 100_000_000 else f' --rows {args.rows}'}`)\n\n"
            f"Python {platform.python_version()}, pandas {pd.__version__}, matplotlib "
            f"{matplotlib.__version__} (Agg), {platform.machine()} with {os.cpu_count()} cores. "
            f"Large: {rows:,} rows (a year of minutes × {machines} machines) in {chunks:,} "
            f"chunks, frame built in {build_s:.0f} s, ingested in {ingest_s:.0f} s; small: "
            f"{max(args.small // MINUTES, 2) * MINUTES:,} rows. Baseline of the plot: pandas "
            f"`df[df.machine == {MACHINE!r}].plot(x='time', y='temperature')` of the in-memory "
            "frame, drawn; cold: a new client (empty chunk cache; the OS page cache is warm). "
            "Browser measures: JupyterLab in headless Chromium, timed in the page from the "
            "event to the DOM change (a MutationObserver)." + note
            + ("" if browser else " The browser measures were skipped (--no-browser, or no "
               "/usr/bin/chromium).") + "\n\n" + table(lines))
    print(text)
    (HERE / "results_notebook.md").write_text(text)


if __name__ == "__main__":
    main()
