"""Export every complete dataset changed since the last run: a job for cron or Airflow.

    python examples/export_changed.py /data/exports            # local folder
    python examples/export_changed.py s3://bucket/exports      # or an object store

Each run writes ``<out>/<YYYY-MM-DD>/<dataset id>.parquet`` for the datasets whose
``updated`` time (from ``cf.datasets()``) is newer than what the last run exported, and
records what it exported in a state file kept in the output root beside the dated folders
(``<out>/.export_changed.json``). Running it again exports nothing new: the job is
idempotent. The state is saved after every dataset, so a run that fails or is killed
part-way picks up where it stopped; each file is written atomically by ``ds.export``, so a
killed run leaves no partial file behind.

Where chunkframe keeps its data comes from the usual ``CHUNKFRAME_*`` environment variables,
or from ``--store/--redis/--catalog/--home/--prefix``. Exit status: 0 ok, 1 if any dataset
failed (the others are exported; the failed ones are retried next run).
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import fsspec
import pandas as pd

import chunkframe as cf

STATE_NAME = ".export_changed.json"


def load_state(fs: Any, path: str) -> dict[str, Any]:
    """The previous run's state: ``{"last_run": iso | None, "exported": {id: updated iso}}``."""
    try:
        with fs.open(path, "r") as f:
            state = json.load(f)
    except FileNotFoundError:
        return {"last_run": None, "exported": {}}
    state.setdefault("last_run", None)
    state.setdefault("exported", {})
    return state


def save_state(fs: Any, path: str, state: dict[str, Any]) -> None:
    """Write the state under a temporary name, then move it into place."""
    tmp = f"{path}.{uuid.uuid4().hex[:8]}.partial"
    with fs.open(tmp, "w") as f:
        json.dump(state, f, indent=2, sort_keys=True)
    fs.mv(tmp, path)


def changed_datasets(table: pd.DataFrame, state: dict[str, Any]) -> pd.DataFrame:
    """Complete datasets updated after the time the last run exported them (or never)."""
    table = table[table["state"] == "complete"]
    exported = state["exported"]

    def changed(row: pd.Series) -> bool:
        seen = exported.get(row["id"])  # never exported (or failed last time): export it
        return seen is None or bool(row["updated"] > pd.Timestamp(seen))

    return table[[changed(row) for _, row in table.iterrows()]]


def run(out: str, day: str | None = None, dry_run: bool = False,
        storage_options: dict[str, Any] | None = None, log: Any = print) -> list[str]:
    """Export what changed; returns the files written (or that would be, with ``dry_run``)."""
    fs, root = fsspec.url_to_fs(out, **(storage_options or {}))
    root = root.rstrip("/")
    fs.makedirs(root, exist_ok=True)
    state_path = f"{root}/{STATE_NAME}"
    state = load_state(fs, state_path)
    started = datetime.now(UTC)
    day = day or started.strftime("%Y-%m-%d")
    todo = changed_datasets(cf.datasets(), state)
    if todo.empty:
        log(f"nothing changed since {state['last_run'] or 'the beginning'}")
    written, failed = [], []
    for _, row in todo.iterrows():
        dest = f"{out.rstrip('/')}/{day}/{row['id']}.parquet"
        if dry_run:
            log(f"would export {row['id']!r} (updated {row['updated']:%Y-%m-%d %H:%M:%S}) to {dest}")
            written.append(dest)
            continue
        try:
            cf.open(row["id"]).export(dest, progress=False, storage_options=storage_options,
                                      parents=True)
        except (cf.ChunkFrameError, OSError, ValueError) as exc:
            failed.append(row["id"])
            print(f"failed to export {row['id']!r}: {exc}", file=sys.stderr)
            continue
        state["exported"][row["id"]] = row["updated"].isoformat()
        save_state(fs, state_path, state)  # after each file: a killed run resumes here
        written.append(dest)
        log(f"exported {row['id']!r} ({row['rows']:,} rows) to {dest}")
    if not dry_run:
        state["last_run"] = started.isoformat()
        save_state(fs, state_path, state)
    if failed:
        raise RuntimeError(f"{len(failed)} datasets failed to export: {', '.join(failed)}")
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="output root: a folder or an s3:// URL")
    p.add_argument("--date", help="dated folder name (default: today, UTC), e.g. 2026-01-31")
    p.add_argument("--dry-run", action="store_true", help="list what would be exported")
    for opt in ("store", "redis", "catalog", "home", "prefix"):
        p.add_argument(f"--{opt}", help=f"chunkframe {opt} (default: CHUNKFRAME_* / ~/.chunkframe)")
    args = p.parse_args(argv)
    if args.date:
        try:
            datetime.strptime(args.date, "%Y-%m-%d")
        except ValueError:
            p.error(f"--date {args.date!r} is not YYYY-MM-DD")
    try:
        client = cf.connect(store=args.store, redis=args.redis, catalog=args.catalog,
                            home=args.home, prefix=args.prefix)
        remote = "://" in args.out and not args.out.startswith("file://")
        written = run(args.out, args.date, args.dry_run,
                      storage_options=client.settings.storage_options if remote else None)
    except (cf.ChunkFrameError, OSError, ValueError, RuntimeError) as exc:
        print(f"export_changed: error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(written)} dataset(s) {'to export' if args.dry_run else 'exported'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
