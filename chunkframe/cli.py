"""The ``chunkframe`` command line: ingest, inspect, read, tag, verify, export and delete datasets."""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import math
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .dataset import format_bytes
from .errors import ChunkFrameError

if TYPE_CHECKING:
    from .client import Client
    from .dataset import Dataset

__all__ = ["main", "build_parser", "run_demo", "SAMPLES_DIR"]

PROG = "chunkframe"
SAMPLES_DIR = Path(__file__).resolve().parents[1] / "data" / "samples"
"""Where ``chunkframe demo`` finds its sample files (a source checkout's ``data/samples``)."""

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


# -- output -----------------------------------------------------------------------------------

def _jsonable(v: Any) -> Any:
    """A value json.dumps accepts: NaN/NaT/NA → null, times → ISO 8601, numpy → Python."""
    if v is None or v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, np.ndarray)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, (pd.Timestamp, dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, (pd.Timedelta, dt.timedelta)):
        return pd.Timedelta(v).isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "backslashreplace")
    if isinstance(v, Path):
        return str(v)
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return str(v)


def _records(df: pd.DataFrame, index: bool = False) -> list[dict[str, Any]]:
    if index:
        df = df.reset_index()
    cols = [str(c) for c in df.columns]
    return [dict(zip(cols, map(_jsonable, row), strict=True))
            for row in df.itertuples(index=False, name=None)]


def _table(df: pd.DataFrame, index: bool = False, limit: int = 64) -> str:
    """A compact text table; text columns are left-aligned, numbers right-aligned."""
    width = shutil.get_terminal_size((120, 24)).columns
    df = df.copy()
    formatters = {}
    names = {}
    for col in df.columns:
        if df[col].dtype == object or pd.api.types.is_string_dtype(df[col].dtype):
            cells = [_cell(v, limit) for v in df[col]]
            w = max([len(str(col)), *map(len, cells)])
            names[col] = str(col).ljust(w)
            formatters[names[col]] = _left(w, limit)
    if names:
        df.columns = [names.get(c, c) for c in df.columns]
    with pd.option_context("display.width", width, "display.max_columns", None,
                           "display.max_colwidth", limit, "display.max_rows", None):
        return df.to_string(index=index, formatters=formatters or None)


def _left(width: int, limit: int) -> Callable[[Any], str]:
    return lambda v: f"{_cell(v, limit):<{width}}"


def _cell(v: Any, limit: int) -> str:
    text = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
    return text if len(text) <= limit else text[:limit - 3] + "..."




class _Out:
    """Human text, or (with ``--json``) exactly one JSON document, on stdout."""

    def __init__(self, as_json: bool, stream: Any = None):
        self.json = as_json
        self.stream = stream

    def _write(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout)

    def line(self, text: str = "") -> None:
        if not self.json:
            self._write(text)

    def doc(self, data: Any) -> None:
        if self.json:
            self._write(json.dumps(_jsonable(data), allow_nan=False, ensure_ascii=False))


def _error(message: str) -> None:
    text = " ".join(str(message).split()) or "unknown error"
    print(f"{PROG}: error: {text}", file=sys.stderr)


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]  # str(KeyError) would repr() the message
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.strerror}: {str(exc.filename)!r}"
    text = str(exc)
    return text if text else type(exc).__name__


# -- parsing helpers --------------------------------------------------------------------------

def _columns(values: Sequence[str] | None) -> list[str] | None:
    """``--columns a b`` and ``--columns a,b`` both give ``["a", "b"]``."""
    if not values:
        return None
    return [c for v in values for c in v.split(",") if c]


def _sn(text: str) -> int:
    try:
        return int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"serial number {text!r} is not an integer") from None


def _positive(text: str) -> int:
    try:
        n = int(text.replace("_", ""))
    except ValueError:
        n = 0
    if n <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return n


def _time_value(ds: Dataset, value: str | None, what: str) -> Any:
    """A time bound from the command line, typed like the dataset's time column."""
    if value is None:
        return None
    meta = ds.meta
    if meta.time_column is None:
        raise ValueError(
            f"dataset {ds.id!r} has no time column, so {what} cannot be used; "
            "re-ingest it with --time-column"
        )
    import pyarrow as pa

    field = ds.schema.field(meta.time_column)
    if pa.types.is_integer(field.type):
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{what} {value!r} is not an integer, but the time column "
                             f"{meta.time_column!r} of dataset {ds.id!r} holds integers") from None
    try:
        ts = pd.Timestamp(value)
    except ValueError as exc:
        raise ValueError(f"{what} {value!r} is not a time ({exc}); use e.g. 2026-01-31 or "
                         "2026-01-31T12:00:00Z") from None
    tz = field.type.tz
    if tz is not None and ts.tzinfo is None:
        ts = ts.tz_localize(tz)
    elif tz is None and ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


# -- commands ---------------------------------------------------------------------------------

def _client(args: argparse.Namespace) -> Client:
    from .client import connect

    options = None
    if args.storage_options:
        try:
            options = json.loads(args.storage_options)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--storage-options is not JSON ({exc})") from None
        if not isinstance(options, dict):
            raise ValueError("--storage-options must be a JSON object, e.g. "
                             "'{\"endpoint_url\": \"http://localhost:9000\"}'")
    return connect(store=args.store, redis=args.redis, catalog=args.catalog, home=args.home,
                   prefix=args.prefix, storage_options=options)


def _open(args: argparse.Namespace) -> Dataset:
    return _client(args).open(args.id)


def _progress(args: argparse.Namespace) -> bool:
    """Progress bars on stderr only when it is a terminal (never in pipes, logs or tests)."""
    if getattr(args, "no_progress", False):
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def cmd_ingest(args: argparse.Namespace, out: _Out) -> int:
    client = _client(args)
    began = time.perf_counter()
    ds = client.ingest(args.src, args.id, chunk_rows=args.chunk_rows,
                       time_column=args.time_column, device_column=args.device_column,
                       mode=args.mode, compression=args.compression, progress=_progress(args))
    seconds = time.perf_counter() - began
    meta = ds.meta
    out.line(f"ingested {ds.id!r} ({args.mode}): {meta.rows:,} rows in {meta.chunks} chunks, "
             f"{format_bytes(meta.nbytes)} stored, in {seconds:.2f} s")
    out.doc({"dataset": ds.id, "mode": args.mode, "rows": meta.rows, "chunks": meta.chunks,
             "bytes": meta.nbytes, "generation": meta.generation, "version": meta.version,
             "time_column": meta.time_column, "device_column": meta.device_column,
             "seconds": seconds})
    return EXIT_OK


def cmd_ls(args: argparse.Namespace, out: _Out) -> int:
    df = _client(args).datasets()
    out.doc(_records(df))
    if df.empty:
        out.line("no datasets yet; ingest one with: chunkframe ingest SRC ID")
        return EXIT_OK
    view = pd.DataFrame({
        "id": df["id"], "rows": df["rows"].map("{:,}".format), "chunks": df["chunks"],
        "size": df["bytes"].map(format_bytes), "time": df["time_column"].fillna("-"),
        "device": df["device_column"].fillna("-"),
        "updated": df["updated"].dt.strftime("%Y-%m-%d %H:%M:%S UTC"),
    })
    out.line(_table(view))
    return EXIT_OK


def cmd_info(args: argparse.Namespace, out: _Out) -> int:
    ds = _open(args)
    meta, schema = ds.meta, ds.schema
    when = {k: pd.Timestamp(getattr(meta, k), unit="s", tz="UTC") for k in ("created", "updated")}
    columns = [{"name": f.name, "type": str(f.type), "role": (
        "time" if f.name == meta.time_column else "device" if f.name == meta.device_column
        else "")} for f in schema]
    doc = {"dataset": ds.id, "rows": meta.rows, "chunks": meta.chunks, "bytes": meta.nbytes,
           "chunk_rows": meta.chunk_rows, "generation": meta.generation,
           "version": meta.version, "time_column": meta.time_column,
           "device_column": meta.device_column, "created": when["created"],
           "updated": when["updated"], "deletes": [t.to_dict() for t in meta.tombstones],
           "columns": columns}
    if args.chunks:
        doc["chunk_table"] = _records(ds.chunks)
    out.doc(doc)
    out.line(f"dataset      {ds.id}")
    out.line(f"rows         {meta.rows:,} in {meta.chunks} chunks of up to {meta.chunk_rows:,}")
    out.line(f"stored       {format_bytes(meta.nbytes)}")
    out.line(f"generation   {meta.generation} (version {meta.version})")
    out.line(f"time column  {meta.time_column or '-'}")
    out.line(f"device col.  {meta.device_column or '-'}")
    out.line(f"created      {when['created']:%Y-%m-%d %H:%M:%S} UTC")
    out.line(f"updated      {when['updated']:%Y-%m-%d %H:%M:%S} UTC")
    if meta.tombstones:
        out.line(f"deletes      {len(meta.tombstones)} time-range deletes")
    out.line("")
    out.line(_table(pd.DataFrame(columns)))
    if args.chunks:
        out.line("")
        out.line(_table(ds.chunks))
    return EXIT_OK


def cmd_get(args: argparse.Namespace, out: _Out) -> int:
    ds = _open(args)
    n = len(ds)
    sns = [s + n if -n <= s < 0 else s for s in args.sn]  # negative counts from the end
    df = ds.get_many(sns, columns=_columns(args.columns))
    out.doc(_records(df, index=True))
    out.line(_table(df, index=True))
    return EXIT_OK


def cmd_last(args: argparse.Namespace, out: _Out) -> int:
    ds = _open(args)
    df = ds.last(device=args.device, columns=_columns(args.columns))
    out.doc(_records(df))
    out.line(_table(df) if len(df) else f"no values in {ds.id!r}")
    return EXIT_OK


def cmd_tag(args: argparse.Namespace, out: _Out) -> int:
    ds = _open(args)
    value: Any = args.value
    if args.value_json:
        try:
            value = json.loads(args.value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--value-json: {args.value!r} is not JSON ({exc})") from None
    ds.tag(args.key, value, type=args.type, keywords=args.keyword or None)
    out.line(f"tagged {ds.id!r}: {args.type.upper()} {args.key} = {value!r}")
    out.doc({"dataset": ds.id, "type": args.type.upper(), "key": args.key, "value": value,
             "keywords": args.keyword or []})
    return EXIT_OK


def cmd_tags(args: argparse.Namespace, out: _Out) -> int:
    ds = _open(args)
    df = ds.tags(args.type)
    out.doc(_records(df))
    out.line(_table(df) if len(df) else f"no tags on {ds.id!r}")
    return EXIT_OK


def cmd_find(args: argparse.Namespace, out: _Out) -> int:
    ds = _open(args)
    df = ds.find(args.keyword, args.type)
    out.doc(_records(df))
    out.line(_table(df) if len(df) else f"no tag of {ds.id!r} has keyword {args.keyword!r}")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace, out: _Out) -> int:
    ds = _open(args)
    total = ds.meta.chunks
    bad = ds.verify(progress=_progress(args))
    out.doc({"dataset": ds.id, "chunks": total, "ok": bad.empty, "bad": _records(bad)})
    if bad.empty:
        out.line(f"ok: all {total} chunks of {ds.id!r} match their checksums")
        return EXIT_OK
    out.line(_table(bad))
    _error(f"{len(bad)} of {total} chunks of dataset {ds.id!r} are damaged (see above); "
           f"re-ingest it with --mode overwrite or restore the chunk files")
    return EXIT_ERROR


def cmd_export(args: argparse.Namespace, out: _Out) -> int:
    from .export import export_dataset

    ds = _open(args)
    try:
        result = export_dataset(
            ds, args.dest, format=args.format, columns=_columns(args.columns), start=args.start,
            stop=args.stop, device=args.device, since=args.since, until=args.until,
            progress=_progress(args))
    except OSError as exc:
        raise OSError(f"cannot export {ds.id!r} to {args.dest!r}: {_message(exc)}") from exc
    out.line(f"exported {result.rows:,} rows of {ds.id!r} to {result.dest} ({result.format}) "
             f"in {result.seconds:.2f} s")
    out.doc(asdict(result) | {"dataset": ds.id})
    return EXIT_OK


def cmd_delete(args: argparse.Namespace, out: _Out) -> int:
    if not (args.all or args.device is not None or args.columns or args.start or args.end):
        raise _UsageError("delete needs --device, --columns, --start or --end to say what to "
                          "delete; pass --all to delete every value of the dataset")
    ds = _open(args)
    start = _time_value(ds, args.start, "--start")
    end = _time_value(ds, args.end, "--end")
    columns = _columns(args.columns)
    dropped = ds.delete(device=args.device, columns=columns, start=start, end=end)
    what = ", ".join(x for x in (
        f"device {args.device}" if args.device is not None else "all devices",
        f"columns {', '.join(columns)}" if columns else "all measurements",
        f"from {start}" if start is not None else "", f"to {end}" if end is not None else "",
    ) if x)
    out.line(f"deleted the values of {ds.id!r} ({what}); they now read as missing; "
             f"{dropped} cached last values dropped")
    out.doc({"dataset": ds.id, "device": args.device, "columns": columns,
             "start": start, "end": end, "last_values_dropped": dropped})
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, out: _Out) -> int:
    client = _client(args)
    samples = Path(args.samples) if args.samples else SAMPLES_DIR
    summary = run_demo(client, samples, out=out.line, progress=_progress(args))
    out.doc(summary)
    return EXIT_OK


def cmd_server(args: argparse.Namespace, out: _Out) -> int:
    from .config import resolve
    from .server import server_status, stop_server

    home = resolve(home=args.home).home
    if args.action == "status":
        st = server_status(home)
        out.doc(asdict(st) | {"home": str(home)})
        if st.running:
            out.line(f"embedded redis-server of {home}: running, pid {st.pid}, {st.url}, "
                     f"{format_bytes(st.used_memory)} used, {st.keys} keys")
        else:
            out.line(f"embedded redis-server of {home}: not running ({st.url})")
        if args.redis or os.environ.get("CHUNKFRAME_REDIS_URL"):
            out.line("note: a Redis URL is configured, so this home's embedded server is not used")
        return EXIT_OK
    stopped = stop_server(home)
    out.doc({"home": str(home), "stopped": stopped})
    out.line(f"stopped the embedded redis-server of {home}" if stopped
             else f"the embedded redis-server of {home} was not running")
    return EXIT_OK


# -- the demo ---------------------------------------------------------------------------------

def cmd_serve(args: argparse.Namespace, out: _Out) -> int:
    from .service.run import serve_command  # the service and its extra: see chunkframe/service

    return serve_command(args)


def _comparable(df: pd.DataFrame) -> pd.DataFrame:
    """Datetimes at one resolution, so Parquet (us) and CSV (s) reads compare by value."""
    df = df.copy()
    for col in df.columns:
        if isinstance(df[col].dtype, pd.DatetimeTZDtype) or df[col].dtype.kind == "M":
            df[col] = df[col].dt.as_unit("ns")
    return df


def run_demo(client: Client, samples_dir: str | os.PathLike[str], out: Callable[[str], Any] = print,
             progress: bool | None = False) -> dict[str, Any]:
    """The main job on one client: ingest the samples, read, last values, tags, verify.

    Ingests ``sensors.parquet`` as ``sensors`` and ``sensors.csv`` as ``sensors_csv`` (with
    ``mode="overwrite"``, so it can run again), checks both read back equal, reads values by
    serial number, shows the last value of every series, tags the dataset and searches a tag,
    verifies every chunk, and prints what it did with timings. Returns that summary.
    """
    samples = Path(samples_dir)
    files = {"parquet": samples / "sensors.parquet", "csv": samples / "sensors.csv"}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"demo sample data not found: {', '.join(missing)}; pass --samples DIR (a folder "
            "holding sensors.parquet and sensors.csv) or regenerate them with "
            "python data/samples/make_samples.py"
        )
    steps: list[dict[str, Any]] = []

    def step(name: str, began: float, result: str) -> None:
        steps.append({"step": name, "seconds": time.perf_counter() - began, "result": result})

    options = {"time_column": "time", "device_column": "sensor", "mode": "overwrite",
               "chunk_rows": 8_192, "progress": progress}
    t = time.perf_counter()
    ds = client.ingest(str(files["parquet"]), "sensors", **options)
    step("ingest sensors.parquet", t, f"{len(ds):,} rows in {ds.meta.chunks} chunks as 'sensors'")
    t = time.perf_counter()
    ds_csv = client.ingest(str(files["csv"]), "sensors_csv", **options)
    step("ingest sensors.csv", t,
         f"{len(ds_csv):,} rows in {ds_csv.meta.chunks} chunks as 'sensors_csv'")

    t = time.perf_counter()
    a, b = _comparable(ds.to_pandas()), _comparable(ds_csv.to_pandas())
    try:
        pd.testing.assert_frame_equal(a, b)
    except AssertionError as exc:
        raise ChunkFrameError(
            f"demo: 'sensors' (from Parquet) and 'sensors_csv' (from CSV) read back different: "
            f"{' '.join(str(exc).split())[:300]}") from None
    step("compare parquet vs csv", t, f"equal: {len(a):,} rows x {a.shape[1]} columns")

    t = time.perf_counter()
    n = len(ds)
    sns = [0, n // 2, n - 1]
    row = ds.get(n // 2)
    value = ds.get(n // 2, "temperature")
    picked = ds.get_many(sns)
    step("read by serial number", t, f"get({n // 2}, 'temperature') = {value}; "
                                     f"get_many: {len(picked)} rows")
    out(f"row {n // 2} of 'sensors':")
    out(row.to_string())
    out("")
    out(f"rows {sns}:")
    out(_table(picked, index=True))
    out("")

    t = time.perf_counter()
    last = ds.last()
    step("last values", t, f"{len(last)} series")
    out("last value of every series of 'sensors':")
    out(_table(_last_view(last)))
    out("")

    t = time.perf_counter()
    ds.tag("source", str(files["parquet"]), keywords=["demo", "samples"])
    ds.tag("description", "readings of 20 sensors: temperature, humidity, pressure, battery",
           keywords=["demo"])
    ds_csv.tag("source", str(files["csv"]), keywords=["demo", "samples"])
    found = ds.find("demo")
    step("tag and search", t, f"find('demo') -> {len(found)} tags")
    out("tags of 'sensors' with keyword 'demo':")
    out(_table(found))
    out("")

    t = time.perf_counter()
    bad = pd.concat([ds.verify(progress=progress), ds_csv.verify(progress=progress)])
    chunks = ds.meta.chunks + ds_csv.meta.chunks
    step("verify checksums", t, f"{chunks} chunks, {len(bad)} damaged")
    if len(bad):
        raise ChunkFrameError(f"demo: {len(bad)} chunks failed verification: "
                              f"{bad['problem'].iloc[0]}")

    total = sum(s["seconds"] for s in steps)
    view = pd.DataFrame(steps)
    view["seconds"] = view["seconds"].map("{:.3f}".format)
    out("summary:")
    out(_table(view))
    out(f"done in {total:.2f} s; datasets 'sensors' and 'sensors_csv' are ready "
        f"(try: chunkframe get sensors 0 1 2)")
    return {"datasets": ["sensors", "sensors_csv"], "rows": n, "equal": True,
            "steps": steps, "seconds": total}


def _last_view(last: pd.DataFrame) -> pd.DataFrame:
    """Last values as one row per device and one column per measurement, when that fits."""
    try:
        wide = last.pivot(index="device", columns="measurement", values="value")
        wide = wide[list(dict.fromkeys(last["measurement"]))]  # the dataset's column order
        wide.columns.name = None
        return wide.reset_index()
    except (KeyError, ValueError):
        return last


# -- parser -----------------------------------------------------------------------------------

class _UsageError(Exception):
    """A command line that parses but makes no sense: exit status 2, like argparse."""


def _global_options(parser: argparse.ArgumentParser, sub: bool) -> None:
    # On subcommands the defaults are suppressed, so options given before the command
    # are not overwritten: both `chunkframe --json ls` and `chunkframe ls --json` work.
    d = argparse.SUPPRESS if sub else None
    g = parser.add_argument_group("where chunkframe keeps things (default: environment, "
                                  "then ~/.chunkframe)")
    g.add_argument("--store", default=d, metavar="URL",
                   help="chunk store: a directory or an s3:// URL [CHUNKFRAME_STORE]")
    g.add_argument("--redis", default=d, metavar="URL",
                   help="redis:// or unix:// URL; unset: the embedded server [CHUNKFRAME_REDIS_URL]")
    g.add_argument("--catalog", default=d, metavar="PATH",
                   help="SQLite catalog file [CHUNKFRAME_CATALOG]")
    g.add_argument("--home", default=d, metavar="DIR",
                   help="chunkframe home directory [CHUNKFRAME_HOME]")
    g.add_argument("--prefix", default=d, metavar="TEXT",
                   help="Redis key prefix [CHUNKFRAME_PREFIX]")
    g.add_argument("--storage-options", default=d, metavar="JSON",
                   help="fsspec options for s3:// stores and exports, e.g. "
                        "'{\"endpoint_url\": \"http://localhost:9000\"}'")
    g.add_argument("--json", action="store_true", default=argparse.SUPPRESS if sub else False,
                   help="machine-readable output: one JSON document on stdout")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, sub=True)
    parser = argparse.ArgumentParser(
        prog=PROG, description="Chunked, checksummed Arrow datasets, read back from pandas.",
        epilog="Exit status: 0 ok, 1 error, 2 usage. Try: chunkframe demo")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _global_options(parser, sub=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Callable[..., int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(handler=handler, subparser=p)
        return p

    from .ingest import MODES

    p = command("ingest", cmd_ingest, "ingest a CSV/Parquet/Arrow file, directory or glob")
    p.add_argument("src", metavar="SRC", help="path, URL (s3://...) or glob of the source files")
    p.add_argument("id", metavar="ID", help="dataset id")
    p.add_argument("--chunk-rows", type=_positive, default=65_536, metavar="N",
                   help="rows per chunk (default 65536)")
    p.add_argument("--time-column", metavar="COL", help="the time column (default: the only "
                   "datetime column, if there is exactly one)")
    p.add_argument("--device-column", metavar="COL", help="the column naming each series' device")
    p.add_argument("--mode", choices=MODES, default="create",
                   help="create (default), overwrite, append or resume")
    p.add_argument("--compression", choices=["zstd", "lz4"], help="chunk buffer compression")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    command("ls", cmd_ls, "list the complete datasets")

    p = command("info", cmd_info, "a dataset's size, columns and metadata")
    p.add_argument("id", metavar="ID")
    p.add_argument("--chunks", action="store_true", help="also list its chunks")

    p = command("get", cmd_get, "rows by serial number (0-based; negative counts from the end)")
    p.add_argument("id", metavar="ID")
    p.add_argument("sn", metavar="SN", nargs="+", type=_sn)
    p.add_argument("--columns", nargs="+", metavar="COL", help="only these columns")

    p = command("last", cmd_last, "the latest value of every series")
    p.add_argument("id", metavar="ID")
    p.add_argument("--device", metavar="DEVICE", help="only this device")
    p.add_argument("--columns", nargs="+", metavar="COL", help="only these measurements")

    p = command("tag", cmd_tag, "attach KEY = VALUE to a dataset's context")
    p.add_argument("id", metavar="ID")
    p.add_argument("key", metavar="KEY")
    p.add_argument("value", metavar="VALUE")
    p.add_argument("--type", default="METADATA", help="context type (default METADATA)")
    p.add_argument("--keyword", action="append", metavar="WORD",
                   help="an extra search keyword (repeatable)")
    p.add_argument("--value-json", action="store_true", help="parse VALUE as JSON")

    p = command("tags", cmd_tags, "a dataset's tags")
    p.add_argument("id", metavar="ID")
    p.add_argument("--type", help="only this context type")

    p = command("find", cmd_find, "a dataset's tags having KEYWORD")
    p.add_argument("id", metavar="ID")
    p.add_argument("keyword", metavar="KEYWORD")
    p.add_argument("--type", help="only this context type")

    p = command("verify", cmd_verify, "check every chunk's checksum (exit 1 if any is damaged)")
    p.add_argument("id", metavar="ID")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    from .export import FORMATS

    p = command("export", cmd_export, "write a dataset (or part of it) to one file, streamed")
    p.add_argument("id", metavar="ID")
    p.add_argument("dest", metavar="DEST", help="file path or s3:// URL; a directory gets ID.EXT")
    p.add_argument("--format", choices=list(FORMATS), help="default: from DEST's extension")
    p.add_argument("--columns", nargs="+", metavar="COL", help="only these columns")
    p.add_argument("--start", type=_sn, metavar="SN", help="first serial number")
    p.add_argument("--stop", type=_sn, metavar="SN", help="serial number to stop before")
    p.add_argument("--device", action="append", metavar="DEVICE",
                   help="only this device (repeatable)")
    p.add_argument("--since", metavar="TIME", help="only rows at or after TIME")
    p.add_argument("--until", metavar="TIME", help="only rows at or before TIME")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = command("delete", cmd_delete, "delete values in a time range (rows and serial "
                "numbers stay; the values read as missing)")
    p.add_argument("id", metavar="ID")
    p.add_argument("--device", metavar="DEVICE", help="only this device")
    p.add_argument("--columns", nargs="+", metavar="COL", help="only these measurements")
    p.add_argument("--start", metavar="TIME", help="from this time (inclusive)")
    p.add_argument("--end", metavar="TIME", help="to this time (inclusive)")
    p.add_argument("--all", action="store_true", help="no filter: delete every value")

    p = command("demo", cmd_demo, "run the main job on the sample data (repeatable)")
    p.add_argument("--samples", metavar="DIR", help=f"sample folder (default {SAMPLES_DIR})")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = command("server", cmd_server, "the embedded redis-server of the home directory")
    p.add_argument("action", choices=["status", "stop"])

    from .service.run import add_arguments as serve_arguments

    p = command("serve", cmd_serve, "serve the datasets over HTTP: GetValue and friends "
                "(needs the service extra: pip install 'chunkframe[service]')")
    serve_arguments(p)
    return parser


# -- entry point ------------------------------------------------------------------------------

class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised so that cleanup (temporary export files, locks) runs."""


_SIGNALLED: list[int] = []


def _on_signal(signum: int, frame: Any) -> None:
    # remembered too: a library may wrap the exception (pyarrow turns an exception raised
    # by a signal handler during its calls into ArrowCancelled)
    _SIGNALLED.append(signum)
    raise _Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 error, 2 usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    out = _Out(args.json)
    previous: dict[int, Any] = {}
    _SIGNALLED.clear()
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _on_signal)
    except ValueError:
        pass  # not the main thread: leave signals alone
    try:
        return int(args.handler(args, out))
    except _UsageError as exc:
        args.subparser.print_usage(sys.stderr)
        _error(str(exc))
        return EXIT_USAGE
    except _Terminated:
        _error("terminated")
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:
        try:  # the reader went away (e.g. `| head`): quiet, as other tools are
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - every failure is one line, never a traceback
        if _SIGNALLED:
            _error("terminated" if _SIGNALLED[0] == signal.SIGTERM else "interrupted")
            return 128 + signal.SIGTERM if _SIGNALLED[0] == signal.SIGTERM else 130
        if not _expected(exc) and os.environ.get("CHUNKFRAME_DEBUG"):
            raise
        _error(_message(exc))
        return EXIT_ERROR
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _expected(exc: BaseException) -> bool:
    import redis

    return isinstance(exc, (ChunkFrameError, LookupError, OSError, ValueError, TypeError,
                            redis.RedisError))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
