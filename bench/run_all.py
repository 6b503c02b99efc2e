"""Run every benchmark and write bench/RESULTS.md: python bench/run_all.py"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    ("Ingest (issue 2)", "bench_ingest.py", "results_ingest.md"),
    ("Reads by serial number (issue 3)", "bench_read.py", "results_read.md"),
    ("Last values (issue 4)", "bench_last.py", "results_last.md"),
    ("Context cache (issue 5)", "bench_context.py", "results_context.md"),
    ("Search across contexts (issue 16)", "bench_find.py", "results_find.md"),
    ("Export (issue 7)", "bench_export.py", "results_export.md"),
    ("GetValue service (issue 13)", "bench_service.py", "results_service.md"),
    ("Range and filtered reads (issue 16)", "bench_range.py", "results_range.md"),
    ("Notebook: plots and browsing (issue 17)", "bench_notebook.py", "results_notebook.md"),
    ("Catalog on PostgreSQL and SQLite (issue 15)", "bench_catalog.py", "results_catalog.md"),
    ("Scale-out on Dask (issue 15)", "bench_scaleout.py", "results_scaleout.md"),
    ("Costs that do not grow with history (issue 22)", "bench_history.py", "results_history.md"),
    ("Aggregations next to the chunks (issue 26)", "bench_query.py", "results_query.md"),
    ("Storage: encodings, compression, a local tier (issue 25)", "bench_storage.py",
     "results_storage.md"),
]


def main() -> None:
    """``run_all.py`` runs them all; ``run_all.py bench_read.py ...`` only those;
    ``run_all.py --collect`` only rebuilds RESULTS.md from the latest results files."""
    only = set(sys.argv[1:])
    for title, script, _ in BENCHES:
        if "--collect" in only or (only and script not in only):
            continue
        print(f"== {title}: {script}", flush=True)
        subprocess.run([sys.executable, script], cwd=HERE, check=True)
    import pandas
    import pyarrow

    parts = [
        "# Benchmark results\n",
        (f"Collected by `python bench/run_all.py --collect` on {datetime.date.today()} from "
         "each benchmark's latest results file (each section was measured when its own "
         "benchmark last ran: its command is given), " if "--collect" in only else
         f"Made by `python bench/run_all.py` on {datetime.date.today()}, ") + "on this project's "
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, pandas "
        f"{pandas.__version__}, pyarrow {pyarrow.__version__}. Each table compares chunkframe "
        "with the other tools on the same data in one run; ratios are chunkframe ÷ baseline "
        "(lower is better), targets from the issues in brackets.\n",
    ]
    for title, script, result in BENCHES:
        path = HERE / result
        body = path.read_text() if path.exists() else "_not run_\n"
        body = "\n".join(line for line in body.splitlines() if not line.startswith("# ")).strip()
        parts.append(f"## {title}\n\n`python bench/{script}`\n\n{body}\n")
    (HERE / "RESULTS.md").write_text("\n".join(parts))
    print((HERE / "RESULTS.md").read_text())


if __name__ == "__main__":
    main()
