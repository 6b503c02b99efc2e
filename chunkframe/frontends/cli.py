"""The ``chunkframe`` command line: argument parsing and the commands (ingest, inspect, read,
tag, verify, compact, export, delete, drop, snapshots, demo, server, recover).

Building the parser and ``--help`` import nothing but the standard library and chunkframe's
errors; each command imports the parts it uses when it runs. What is printed is made by
:mod:`chunkframe.frontends.cli_output`; the demo lives in :mod:`chunkframe.frontends.demo`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import signal
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, NoReturn

from ..core.errors import PYTHON, Arg, Call, ChunkFrameError, Placeholder
from ..core.units import format_bytes, plural
from .cli_output import PROG, Out, records, table

if TYPE_CHECKING:
    from ..core.protocols import DatasetLike
    from ..dataset import Dataset
    from ..session import Client

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
# recover's, as fsck's: problems found and every one repaired; some left as they were (a dry
# run, or a repair refused); recover itself failed (its error on stderr): not 1, which says
# "repaired"
EXIT_REPAIRED, EXIT_UNREPAIRED, EXIT_RECOVER_FAILED = 1, 4, 8
RECOVER_EXITS = ("exit status: 0 nothing to recover, 1 problems found and all repaired, "
                 "2 usage error, 4 problems left unrepaired (a dry run, or a repair refused: "
                 "see each one's detail), 8 recover itself failed")


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


def _encoding(text: str) -> tuple[str, str]:
    """``COL=ENC`` of ``--encoding`` as (column, encoding); the encoding is checked against
    the source's columns by the ingest."""
    col, eq, enc = text.rpartition("=")
    if not eq or not col or not enc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not COL=ENC (ENC: auto, dictionary, narrow or plain)")
    return col, enc


def _date_range(since: str | None, until: str | None) -> tuple[str | None, str | None] | None:
    """``--since``/``--until`` as the library's ``date_range`` (which parses the times)."""
    return None if since is None and until is None else (since, until)


# -- commands ---------------------------------------------------------------------------------

def _client(args: argparse.Namespace) -> Client:
    from ..core.config import storage_options_json
    from ..session import connect

    options = (storage_options_json(args.storage_options, "--storage-options")
               if args.storage_options else None)  # None: CHUNKFRAME_STORAGE_OPTIONS
    return connect(store=args.store, redis=args.redis, catalog=args.catalog, home=args.home,
                   prefix=args.prefix, storage_options=options)


def _open(args: argparse.Namespace) -> DatasetLike:
    """The dataset a read command reads (through the DatasetLike protocol)."""
    return _client(args).open(args.id)


def _open_local(args: argparse.Namespace) -> Dataset:
    """The dataset a write or maintenance command changes or checks (a local handle)."""
    return _client(args).open(args.id)


def _progress(args: argparse.Namespace) -> bool:
    """Progress bars on stderr only when it is a terminal (never in pipes, logs or tests)."""
    if getattr(args, "no_progress", False):
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def cmd_ingest(args: argparse.Namespace, out: Out) -> int:
    client = _client(args)
    began = time.perf_counter()
    ds = client.ingest(args.src, args.id, chunk_rows=args.chunk_rows,
                       time_column=args.time_column, device_column=args.device_column,
                       mode=args.mode,
                       compression=None if args.compression == "none" else args.compression,
                       progress=_progress(args),
                       wait=args.wait, encodings=dict(args.encoding) if args.encoding else None)
    seconds = time.perf_counter() - began
    meta = ds.meta
    out.line(f"ingested {ds.id!r} ({args.mode}): {plural(meta.rows, 'row')} in "
             f"{plural(meta.chunks, 'chunk')}, "
             f"{format_bytes(meta.nbytes)} stored, in {seconds:.2f} s")
    out.doc({"dataset": ds.id, "mode": args.mode, "rows": meta.rows, "chunks": meta.chunks,
             "bytes": meta.nbytes, "generation": meta.generation, "version": meta.version,
             "time_column": meta.time_column, "device_column": meta.device_column,
             "seconds": seconds})
    return EXIT_OK


def cmd_ls(args: argparse.Namespace, out: Out) -> int:
    import pandas as pd

    df = _client(args).datasets()
    out.doc(records(df))
    if df.empty:
        out.line("no datasets yet; ingest one with: chunkframe ingest SRC ID")
        return EXIT_OK
    view = pd.DataFrame({
        "id": df["id"], "rows": df["rows"].map("{:,}".format), "chunks": df["chunks"],
        "size": df["bytes"].map(format_bytes), "time": df["time_column"].fillna("-"),
        "device": df["device_column"].fillna("-"),
        "updated": df["updated"].dt.strftime("%Y-%m-%d %H:%M:%S UTC"),
    })
    out.line(table(view))
    return EXIT_OK


def cmd_info(args: argparse.Namespace, out: Out) -> int:
    import pandas as pd

    from ..core.times import utc_from_epoch
    from ..display.reprs import describe

    local = _open_local(args) if args.storage else None  # --storage: reads the chunk files
    ds: DatasetLike = local if local is not None else _open(args)
    meta, schema = ds.meta, ds.schema
    when = {k: utc_from_epoch(getattr(meta, k)) for k in ("created", "updated")}
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
        doc["chunk_table"] = records(ds.chunks)
    storage = local.storage(progress=_progress(args)) if local is not None else None
    summary = describe(storage) if storage is not None else None
    if storage is not None:
        doc["storage"] = records(storage)
        doc["storage_summary"] = summary
    out.doc(doc)
    out.line(f"dataset      {ds.id}")
    out.line(f"rows         {meta.rows:,} in {plural(meta.chunks, 'chunk')} of up to "
             f"{plural(meta.chunk_rows, 'row')}")
    out.line(f"stored       {format_bytes(meta.nbytes)}")
    out.line(f"generation   {meta.generation} (version {meta.version})")
    out.line(f"time column  {meta.time_column or '-'}")
    out.line(f"device col.  {meta.device_column or '-'}")
    out.line(f"created      {when['created']:%Y-%m-%d %H:%M:%S} UTC")
    out.line(f"updated      {when['updated']:%Y-%m-%d %H:%M:%S} UTC")
    if meta.tombstones:
        out.line(f"deletes      {plural(len(meta.tombstones), 'time-range delete')}")
    out.line("")
    out.line(table(pd.DataFrame(columns)))
    if args.chunks:
        out.line("")
        out.line(table(ds.chunks))
    if storage is not None:
        view = storage.assign(**{c: storage[c].map(format_bytes) for c in
                                 ("bytes", "plain_bytes", "shared_bytes")},
                              ratio=storage["ratio"].map("{:.2f}".format))
        out.line("")
        out.line(str(summary))
        out.line(table(view))
    return EXIT_OK


def cmd_get(args: argparse.Namespace, out: Out) -> int:
    ds = _open(args)
    n = len(ds)
    sns = [s + n if -n <= s < 0 else s for s in args.sn]  # negative counts from the end
    df = ds.get_many(sns, columns=_columns(args.columns))
    out.doc(records(df, index=True))
    out.line(table(df, index=True))
    return EXIT_OK


def cmd_last(args: argparse.Namespace, out: Out) -> int:
    ds = _open(args)
    df = ds.last(device=args.device, columns=_columns(args.columns))
    out.doc(records(df))
    out.line(table(df) if len(df) else f"no values in {ds.id!r}")
    return EXIT_OK


def cmd_tag(args: argparse.Namespace, out: Out) -> int:
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


def cmd_tags(args: argparse.Namespace, out: Out) -> int:
    ds = _open(args)
    df = ds.tags(args.type)
    out.doc(records(df))
    out.line(table(df) if len(df) else f"no tags on {ds.id!r}")
    return EXIT_OK


def cmd_find(args: argparse.Namespace, out: Out) -> int:
    if args.keyword is None:  # `find KEYWORD`: every context, from the keyword index
        keyword = args.id
        df = _client(args).find(keyword, args.type)
        empty = f"no context has an entry with keyword {keyword!r}"
    else:  # `find ID KEYWORD`: one dataset's tags
        ds = _open(args)
        df = ds.find(args.keyword, args.type)
        empty = f"no tag of {ds.id!r} has keyword {args.keyword!r}"
    out.doc(records(df))
    out.line(table(df) if len(df) else empty)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace, out: Out) -> int:
    ds = _open_local(args)
    total = ds.meta.chunks
    if args.repair:
        return _verify_repair(ds, total, _progress(args), out)
    bad = ds.verify(progress=_progress(args))
    out.doc({"dataset": ds.id, "chunks": total, "ok": bad.empty, "bad": records(bad)})
    if bad.empty:
        out.line(_all_intact(ds.id, total))
        return EXIT_OK
    out.line(table(bad))
    if not out.json:  # with --json, the document above ("ok": false) says it
        out.error("ChunkCorruptionError",
                  f"{len(bad)} of {plural(total, 'chunk')} of dataset {ds.id!r} damaged (see "
                  f"above); "
                  f"run chunkframe verify {ds.id} --repair to rewrite them from their source, "
                  f"re-ingest it with chunkframe ingest SRC {ds.id} --mode overwrite or restore "
                  "the chunk files")
    return EXIT_ERROR


def _all_intact(dataset_id: str, total: int) -> str:
    what = "its 1 chunk matches its checksum" if total == 1 else \
        f"all {plural(total, 'chunk')} match their checksums"
    return f"ok: {what} (dataset {dataset_id!r})"


def _verify_repair(ds: Any, total: int, progress: bool, out: Out) -> int:
    """``verify --repair``: exit 0 when every chunk is intact now (repaired or never bad)."""
    report = ds.verify(progress=progress, repair=True)
    left = report[~report["repaired"]] if len(report) else report
    out.doc({"dataset": ds.id, "chunks": total, "ok": left.empty, "repair": records(report)})
    if report.empty:
        out.line(_all_intact(ds.id, total))
        return EXIT_OK
    out.line(table(report))
    if left.empty:
        out.line(f"ok: {plural(len(report), 'damaged chunk')} of {ds.id!r} repaired from "
                 "their source")
        return EXIT_OK
    if not out.json:
        out.error("ChunkCorruptionError",
                  f"{len(left)} of {plural(total, 'chunk')} of dataset {ds.id!r} damaged and "
                  f"not repairable (see above); re-ingest it with chunkframe ingest SRC "
                  f"{ds.id} --mode overwrite or restore the chunk files")
    return EXIT_ERROR


def cmd_compact(args: argparse.Namespace, out: Out) -> int:
    ds = _open_local(args)
    before = ds.meta
    after = ds.compact(min_rows=args.min_rows, progress=_progress(args), wait=args.wait).meta
    out.doc({"dataset": ds.id, "compacted": after.version != before.version,
             "version": after.version, "chunks_before": before.chunks, "chunks": after.chunks})
    if after.version == before.version:
        out.line(f"nothing to compact: no run of small chunks in {ds.id!r} "
                 f"({before.chunks} chunks)")
    else:
        out.line(f"compacted {ds.id!r}: {before.chunks} chunks -> {after.chunks}, as version "
                 f"{after.version} (older versions read until prune_versions)")
    return EXIT_OK


def cmd_recover(args: argparse.Namespace, out: Out) -> int:
    report = _client(args).recover(apply=args.apply, verify=args.verify,
                                   progress=_progress(args))
    out.doc(records(report))
    if report.empty:
        out.line("ok: Redis, the catalog and the chunk store agree; nothing to recover")
        return EXIT_OK
    out.line(table(report, limit=100))
    done = int(report["applied"].sum())
    left = len(report) - done
    out.line(f"{plural(len(report), 'problem')} found; " + (
        (f"{done} repaired" + (f", {left} left as they were: see their detail" if left else ""))
        if args.apply else "nothing changed (dry run): run with --apply to repair them"))
    return EXIT_UNREPAIRED if left else EXIT_REPAIRED


def cmd_export(args: argparse.Namespace, out: Out) -> int:
    from ..export.writer import export_dataset

    client = _client(args)
    ds = client.open(args.id)
    try:
        result = export_dataset(
            client.reader, ds.id, args.dest, args.format, columns=_columns(args.columns),
            start=args.start, stop=args.stop, device=args.device,
            date_range=_date_range(args.since, args.until), progress=_progress(args),
            parents=args.parents, default_storage_options=client.settings.storage_options)
    except OSError as exc:
        raise _Doing(f"cannot export {ds.id!r} to {args.dest!r}", exc) from exc
    out.line(f"exported {plural(result.rows, 'row')} of {ds.id!r} to {result.dest} ({result.format}) "
             f"in {result.seconds:.2f} s")
    out.doc(asdict(result) | {"dataset": ds.id})
    return EXIT_OK


def cmd_delete(args: argparse.Namespace, out: Out) -> int:
    if not (args.all or args.device is not None or args.columns or args.since or args.until):
        raise _UsageError("delete needs --device, --columns, --since or --until to say what to "
                          "delete; pass --all to delete every value of the dataset",
                          args.subparser)
    ds = _open_local(args)
    columns = _columns(args.columns)
    done = ds.delete(device=args.device, columns=columns,
                     date_range=_date_range(args.since, args.until))
    what = ", ".join(x for x in (
        f"device {args.device}" if args.device is not None else "all devices",
        f"columns {', '.join(columns)}" if columns else "all measurements",
        f"from {args.since}" if args.since else "", f"to {args.until}" if args.until else "",
    ) if x)
    out.line(f"deleted {plural(done.total, 'value')} of {ds.id!r} ({what}); they now read as "
             f"missing; {plural(done.last_values_dropped, 'cached last value')} dropped")
    out.doc({"dataset": ds.id, "device": args.device, "columns": columns,
             "since": args.since, "until": args.until, "values_hidden": done.total,
             "series": records(done.series), "last_values_dropped": done.last_values_dropped,
             "version": done.version})
    return EXIT_OK


def cmd_drop(args: argparse.Namespace, out: Out) -> int:
    client = _client(args)
    if not args.yes:
        from ..core.keys import validate_id

        meta = client.catalog.get(validate_id(args.id))
        if meta is not None:
            versions = len(client.catalog.versions(args.id))
            what = (f"dataset {args.id!r} ({plural(meta.rows, 'row')}, "
                    f"{plural(versions, 'version')}, {format_bytes(meta.nbytes)}), its tags "
                    "and last values")
        elif args.id in client.catalog.drops():
            what = f"what an interrupted drop left of dataset {args.id!r}"
        else:
            client.drop(args.id)  # DatasetNotFoundError, naming close ids
            return EXIT_ERROR  # (not reached)
        raise _UsageError(f"drop deletes {what} for good; nothing was changed: run it again "
                          "with --yes to confirm", args.subparser)
    done = client.drop(args.id, force=args.force, wait=args.wait)
    out.doc(asdict(done))
    forgot = (f"; snapshots {', '.join(repr(s) for s in done.snapshots)} forgot it"
              if done.snapshots else "")
    out.line(f"dropped {args.id!r}{' (an interrupted drop, finished)' if done.resumed else ''}: "
             f"{plural(done.versions, 'version')}, {plural(done.files, 'file')} "
             f"({format_bytes(done.bytes)}), {plural(done.redis_keys, 'Redis key')}, "
             f"{plural(done.context_entries, 'tag')}{forgot}")
    return EXIT_OK


def cmd_snapshot(args: argparse.Namespace, out: Out) -> int:
    metadata = None
    if args.metadata is not None:
        try:
            metadata = json.loads(args.metadata)
        except json.JSONDecodeError as exc:
            raise _UsageError(f"--metadata is not JSON ({exc}); e.g. '{{\"by\": \"ana\"}}'",
                              args.subparser) from None
    info = _client(args).snapshot(args.name, args.dataset, metadata)
    out.doc({"name": info.name, "created": info.created.isoformat(),
             "versions": dict(info.versions), "metadata": info.metadata})
    named = ", ".join(f"{d} v{v}" for d, v in info.versions.items())
    out.line(f"recorded snapshot {info.name!r} of {plural(len(info.versions), 'dataset')}: "
             f"{named}")
    return EXIT_OK


def cmd_snapshots(args: argparse.Namespace, out: Out) -> int:
    import pandas as pd

    df = _client(args).snapshots()
    out.doc([{"name": r.name, "created": r.created.isoformat(), "datasets": int(r.datasets),
              "versions": dict(r.versions), "metadata": r.metadata}
             for r in df.itertuples(index=False)])
    if df.empty:
        out.line("no snapshots yet; record one with: chunkframe snapshot NAME")
        return EXIT_OK
    view = pd.DataFrame({
        "name": df["name"], "created": df["created"].dt.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "versions": [", ".join(f"{d} v{v}" for d, v in vs.items()) or "-"
                     for vs in df["versions"]],
        "metadata": [json.dumps(m) for m in df["metadata"]],
    })
    out.line(table(view))
    return EXIT_OK


def cmd_delete_snapshot(args: argparse.Namespace, out: Out) -> int:
    info = _client(args).delete_snapshot(args.name)
    out.doc({"name": info.name, "deleted": True, "versions": dict(info.versions)})
    out.line(f"deleted snapshot {info.name!r} (it named {plural(len(info.versions), 'dataset')}"
             "; those versions can be pruned now)")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, out: Out) -> int:
    from .demo import SAMPLES_DIR, run_demo

    client = _client(args)
    summary = run_demo(client, args.samples_dir or SAMPLES_DIR, out=out.line,
                       progress=_progress(args))
    out.doc(summary)
    return EXIT_OK


def cmd_server(args: argparse.Namespace, out: Out) -> int:
    from ..core.config import resolve
    from ..storage.embedded import server_status, stop_server

    home = resolve(home=args.home).home
    if args.action == "status":
        st = server_status(home)
        out.doc(asdict(st) | {"home": str(home)})
        if st.running:
            out.line(f"embedded redis-server of {home}: running, pid {st.pid}, {st.url}, "
                     f"{format_bytes(st.used_memory)} used, "
                     f"{'? keys' if st.keys is None else plural(st.keys, 'key')}")
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


def cmd_serve(args: argparse.Namespace, out: Out) -> int:
    from ..service.run import serve_command  # the service and its extra: see chunkframe/service

    return serve_command(args)


# -- parser -----------------------------------------------------------------------------------

class _UsageError(Exception):
    """A command line that makes no sense: exit status 2, like argparse."""

    def __init__(self, message: str, parser: argparse.ArgumentParser):
        super().__init__(message)
        self.parser = parser


class _Formatter(argparse.HelpFormatter):
    """argparse's help, with descriptions and epilogs wrapped between words only, never
    inside an option's name (``--storage-options``)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return textwrap.fill(" ".join(text.split()), width, initial_indent=indent,
                             subsequent_indent=indent, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is raised (so that ``--json`` can report it as JSON);
    ``commands`` maps each command's name to its parser (for the hints, :class:`_CliStyle`)."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)
        self.commands: dict[str, argparse.ArgumentParser] = {}

    def error(self, message: str) -> NoReturn:
        raise _UsageError(message, self)


class _Later(Sequence[str]):
    """Choices read from the library when first needed (a value is checked, or the command's
    help shown), so that building the parser for every command imports none of it."""

    def __init__(self, module: str, name: str):
        self._where = (module, name)
        self._values: tuple[str, ...] | None = None

    def _load(self) -> tuple[str, ...]:
        if self._values is None:
            module, name = self._where
            self._values = tuple(getattr(importlib.import_module(f"chunkframe.{module}"), name))
        return self._values

    def __getitem__(self, i: Any) -> Any:
        return self._load()[i]

    def __len__(self) -> int:
        return len(self._load())

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __contains__(self, value: object) -> bool:
        return value in self._load()


GLOBAL_OPTIONS_NOTE = (
    "global options: --store, --redis, --catalog, --home, --prefix, --storage-options and "
    "--json work after the command too (chunkframe --help describes them)")


def _global_options(parser: argparse.ArgumentParser, sub: bool) -> None:
    # On subcommands the defaults are suppressed, so options given before the command
    # are not overwritten: both `chunkframe --json ls` and `chunkframe ls --json` work.
    # Their help is the main parser's: a command's help names them in one line
    # (GLOBAL_OPTIONS_NOTE) instead of repeating them all.
    d = argparse.SUPPRESS if sub else None

    def text(words: str) -> str:
        return argparse.SUPPRESS if sub else words

    g = parser.add_argument_group("where chunkframe keeps things (default: environment, "
                                  "then ~/.chunkframe)")
    g.add_argument("--store", default=d, metavar="URL",
                   help=text("chunk store: a directory or an s3:// URL [CHUNKFRAME_STORE]"))
    g.add_argument("--redis", default=d, metavar="URL",
                   help=text("redis://, unix:// or redis+cluster://host:port[,host:port...] "
                             "URL; unset: the embedded server [CHUNKFRAME_REDIS_URL]"))
    g.add_argument("--catalog", default=d, metavar="PATH|URL",
                   help=text("SQLite catalog file or postgresql:// URL [CHUNKFRAME_CATALOG]"))
    g.add_argument("--home", default=d, metavar="DIR",
                   help=text("chunkframe home directory [CHUNKFRAME_HOME]"))
    g.add_argument("--prefix", default=d, metavar="TEXT",
                   help=text("Redis key prefix [CHUNKFRAME_PREFIX]"))
    g.add_argument("--storage-options", default=d, metavar="JSON",
                   help=text("fsspec options for s3:// stores and exports, e.g. "
                             "'{\"endpoint_url\": \"http://localhost:9000\"}' "
                             "[CHUNKFRAME_STORAGE_OPTIONS]"))
    g.add_argument("--json", action="store_true", default=argparse.SUPPRESS if sub else False,
                   help=text("machine-readable output: one JSON document on stdout, errors "
                             "included ({\"error\": ..., \"message\": ...})"))


def _dataset_id(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", metavar="ID", help="dataset id (chunkframe ls lists them)")


SN_HELP = "serial number: a row's 0-based position; negative counts from the end"


def build_parser() -> _Parser:
    """The parser of every command (``commands``: each command's own parser)."""
    from .. import __version__

    common = _Parser(add_help=False)
    _global_options(common, sub=True)
    parser = _Parser(
        prog=PROG, description="Chunked, checksummed Arrow datasets, read back from pandas.",
        epilog="Exit status: 0 ok, 1 error, 2 usage (recover: see chunkframe recover --help). "
               "Try: chunkframe demo")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _global_options(parser, sub=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands = parser.commands

    def command(name: str, handler: Callable[..., int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help,
                           epilog=GLOBAL_OPTIONS_NOTE)
        p.set_defaults(handler=handler, subparser=p)
        commands[name] = p
        return p

    p = command("ingest", cmd_ingest, "ingest a CSV/Parquet/Arrow file, directory or glob")
    p.add_argument("src", metavar="SRC", help="path, URL (s3://...) or glob of the source files")
    _dataset_id(p)
    p.add_argument("--chunk-rows", type=_positive, default=65_536, metavar="N",
                   help="rows per chunk (default 65536)")
    p.add_argument("--time-column", metavar="COL", help="the time column (default: the only "
                   "datetime column, if there is exactly one)")
    p.add_argument("--device-column", metavar="COL", help="the column naming each series' device")
    p.add_argument("--mode", choices=_Later("ingestion.pipeline", "MODES"), default="create", metavar="MODE",
                   help="%(choices)s (default: create)")
    p.add_argument("--compression", choices=["auto", "zstd", "lz4", "none"], default="auto",
                   help="chunk buffer compression (default: auto: none on a local store, zstd "
                        "on an object store)")
    p.add_argument("--encoding", action="append", type=_encoding, metavar="COL=ENC",
                   help="store column COL as ENC: dictionary (text), narrow (integers), plain "
                        "or auto (the default: chosen by measuring the first chunk); "
                        "repeatable")
    p.add_argument("--wait", action="store_true",
                   help="wait while another worker ingests this dataset, instead of failing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    command("ls", cmd_ls, "list the complete datasets")

    p = command("info", cmd_info, "a dataset's size, columns and metadata")
    _dataset_id(p)
    p.add_argument("--chunks", action="store_true", help="also list its chunks")
    p.add_argument("--storage", action="store_true",
                   help="also its bytes per column: encoding, compression ratio, bytes shared "
                        "with other versions (reads every chunk file)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = command("get", cmd_get, "rows by serial number (0-based; negative counts from the end)")
    _dataset_id(p)
    p.add_argument("sn", metavar="SN", nargs="+", type=_sn, help=SN_HELP)
    p.add_argument("--columns", nargs="+", metavar="COL", help="only these columns")

    p = command("last", cmd_last, "the latest value of every series")
    _dataset_id(p)
    p.add_argument("--device", metavar="DEVICE", help="only this device")
    p.add_argument("--columns", nargs="+", metavar="COL", help="only these measurements")

    p = command("tag", cmd_tag, "attach KEY = VALUE to a dataset's context")
    _dataset_id(p)
    p.add_argument("key", metavar="KEY", help="the tag's name in the dataset's context")
    p.add_argument("value", metavar="VALUE", help="its value: text, or JSON with --value-json")
    p.add_argument("--type", default="METADATA", help="context type (default METADATA)")
    p.add_argument("--keyword", action="append", metavar="WORD",
                   help="an extra search keyword (repeatable)")
    p.add_argument("--value-json", action="store_true", help="parse VALUE as JSON")

    p = command("tags", cmd_tags, "a dataset's tags")
    _dataset_id(p)
    p.add_argument("--type", help="only this context type")

    p = command("find", cmd_find, "the entries of every context (or of dataset ID's tags) "
                                   "having KEYWORD")
    p.usage = f"{PROG} find [ID] KEYWORD [--type TYPE] [options]"
    p.add_argument("id", metavar="[ID]", help="a dataset id: search only its tags")
    p.add_argument("keyword", metavar="KEYWORD", nargs="?", help="the keyword, any case")
    p.add_argument("--type", help="only this context type")

    p = command("verify", cmd_verify, "check every chunk's checksum (exit 1 if any is damaged)")
    _dataset_id(p)
    p.add_argument("--repair", action="store_true",
                   help="rewrite damaged chunks from their recorded source files (exit 1 if "
                   "any could not be)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = command("compact", cmd_compact, "merge runs of small chunks (appends leave one each) "
                "into full chunks, as a new version")
    p.add_argument("id", metavar="ID", help="dataset id (chunkframe ls lists them)")
    p.add_argument("--min-rows", type=int, metavar="N",
                   help="merge chunks with fewer rows (default: half the dataset's chunk_rows)")
    p.add_argument("--wait", action="store_true",
                   help="wait for the dataset's lock if another writer holds it")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = command("recover", cmd_recover, "find (and with --apply repair) what crashes left "
                "inconsistent between Redis, the catalog and the store")
    p.epilog = f"{RECOVER_EXITS}. {GLOBAL_OPTIONS_NOTE}"
    p.set_defaults(error_status=EXIT_RECOVER_FAILED)
    p.add_argument("--apply", action="store_true", help="repair what can be repaired safely")
    p.add_argument("--verify", action="store_true", help="also check every chunk's bytes")

    p = command("export", cmd_export, "write a dataset (or part of it) to one file, streamed")
    _dataset_id(p)
    p.add_argument("dest", metavar="DEST", help="file path or s3:// URL; a directory gets ID.EXT")
    p.add_argument("--format", choices=_Later("export.writer", "FORMATS"), metavar="FORMAT",
                   help="%(choices)s (default: from DEST's extension)")
    p.add_argument("--mkdir", dest="parents", action="store_true",
                   help="create DEST's missing parent directories (default: refuse)")
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
    _dataset_id(p)
    p.add_argument("--device", metavar="DEVICE", help="only this device")
    p.add_argument("--columns", nargs="+", metavar="COL", help="only these measurements")
    p.add_argument("--since", "--start", dest="since", metavar="TIME",
                   help="from this time (inclusive)")
    p.add_argument("--until", "--end", dest="until", metavar="TIME",
                   help="to this time (inclusive)")
    p.add_argument("--all", action="store_true", help="no filter: delete every value")

    p = command("drop", cmd_drop, "remove a dataset and every version of it from the catalog, "
                "Redis and the store (asks for --yes)")
    _dataset_id(p)
    p.add_argument("--yes", action="store_true", help="confirm: without it nothing is dropped")
    p.add_argument("--force", action="store_true",
                   help="drop it even though snapshots reference it (they forget it)")
    p.add_argument("--wait", action="store_true",
                   help="wait for the dataset's lock if another writer holds it")

    p = command("snapshot", cmd_snapshot, "record the current version of datasets under NAME "
                "(read them with cf.open(id, as_of=NAME))")
    p.add_argument("name", metavar="NAME", help="the snapshot's name (new)")
    p.add_argument("--dataset", action="append", metavar="ID",
                   help="a dataset to record (repeatable; default: every dataset)")
    p.add_argument("--metadata", metavar="JSON", help="JSON data kept with the snapshot")

    command("snapshots", cmd_snapshots, "list the snapshots")

    p = command("delete-snapshot", cmd_delete_snapshot, "forget a snapshot (the versions it "
                "named can be pruned again)")
    p.add_argument("name", metavar="NAME", help="the snapshot's name (chunkframe snapshots "
                   "lists them)")

    p = command("demo", cmd_demo, "run the main job on the sample data (repeatable)")
    p.add_argument("--samples", dest="samples_dir", metavar="DIR",
                   help="a folder holding sensors.parquet and sensors.csv (default: the samples "
                        "shipped with chunkframe)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = command("server", cmd_server, "the embedded redis-server of the home directory")
    p.add_argument("action", choices=["status", "stop"], metavar="{status,stop}",
                   help="status: whether it runs, its pid, URL, memory and key count; stop: "
                        "stop it (the next command that needs Redis starts it again)")

    from ..service.run import add_arguments as serve_arguments

    p = command("serve", cmd_serve, "serve the datasets over HTTP: GetValue and friends "
                "(needs the service extra: pip install 'chunkframe[service]')")
    serve_arguments(p)
    return parser


# -- errors -----------------------------------------------------------------------------------

class _CliStyle:
    """Hints in the words of the command line: a library error's ``cf.ingest(source, 'x',
    mode='overwrite')`` becomes ``chunkframe ingest SRC x --mode overwrite``.

    Keyword arguments are found as the option of the same ``dest``, first in the running
    command, then in the others; the metavars are those of the parser, so a hint can only
    name flags that exist. Something the command line cannot do is said in Python words.
    """

    COMMANDS = {"ingest": "ingest", "datasets": "ls", "open": "info", "drop": "drop",
                "snapshots": "snapshots", "delete_snapshot": "delete-snapshot"}
    CONFIRM = {"drop": ["--yes"]}
    """Commands that do nothing without a confirmation: a hint naming one says it."""
    """Python API function -> the command doing the same."""

    def __init__(self, parser: _Parser, running: argparse.ArgumentParser | None):
        self.commands = parser.commands
        self.search = [p for p in (running, *self.commands.values()) if p is not None]

    @staticmethod
    def _option(p: argparse.ArgumentParser, name: str) -> argparse.Action | None:
        return next((a for a in p._actions if a.dest == name and a.option_strings), None)

    def _flag(self, arg: Arg, parsers: Sequence[argparse.ArgumentParser]) -> str | None:
        for p in parsers:
            action = self._option(p, arg.name)
            if action is None:
                continue
            flag = max(action.option_strings, key=len)
            if action.nargs == 0:  # store_true: the flag is the value
                return flag if arg.value is ... or arg.value is True else None
            placeholder = arg.value is ... or isinstance(arg.value, Placeholder)
            value = ((action.metavar or arg.name.upper()) if placeholder
                     else shlex.quote(str(arg.value)))
            return f"{flag} {value}"
        return None

    def arg(self, arg: Arg) -> str:
        return self._flag(arg, self.search) or PYTHON.arg(arg)

    def call(self, call: Call) -> str:
        name = self.COMMANDS.get(call.func, "")
        p = self.commands.get(name)
        if p is None:
            return PYTHON.call(call)
        positionals = [a for a in p._actions if not a.option_strings]
        if len(call.args) > len(positionals):
            return PYTHON.call(call)
        words = [PROG, name]
        for action, value in zip(positionals, call.args, strict=False):
            words.append(str(action.metavar) if isinstance(value, Placeholder)
                         else shlex.quote(str(value)))
        for kw in call.kwargs:
            flag = self._flag(kw, [p])
            if flag is None:
                return PYTHON.call(call)
            words.append(flag)
        return " ".join(words + self.CONFIRM.get(name, []))


class _Doing(Exception):
    """An error with what the command was doing in front: ``cannot export 'x' to ...: ...``."""

    def __init__(self, doing: str, cause: BaseException):
        super().__init__(doing)
        self.doing, self.cause = doing, cause


def _describe(exc: BaseException, style: _CliStyle) -> tuple[str, str]:
    """(error class name, message in command-line words) of a failed command."""
    if isinstance(exc, _Doing):
        name, message = _describe(exc.cause, style)
        return name, f"{exc.doing}: {message}"
    name = type(exc).__name__
    if isinstance(exc, ChunkFrameError):
        return name, exc.message(style)
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        return name, exc.args[0]  # str(KeyError) would repr() the message
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return name, f"{exc.strerror}: {str(exc.filename)!r}"
    return name, str(exc) or name


def _expected(exc: BaseException) -> bool:
    import redis

    return isinstance(exc, (ChunkFrameError, LookupError, OSError, ValueError, TypeError,
                            redis.RedisError, _Doing))


# -- entry point ------------------------------------------------------------------------------

class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised so that cleanup (temporary export files, locks) runs."""


_SIGNALLED: list[int] = []


def _on_signal(signum: int, frame: Any) -> None:
    # remembered too: a library may wrap the exception (pyarrow turns an exception raised
    # by a signal handler during its calls into ArrowCancelled)
    _SIGNALLED.append(signum)
    raise _Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _wants_json(argv: Sequence[str]) -> bool:
    """``--json`` anywhere before ``--``: known before parsing, so usage errors honour it."""
    argv = list(argv)
    return "--json" in (argv[:argv.index("--")] if "--" in argv else argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 error, 2 usage)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except _UsageError as exc:
        return _usage_error(exc, Out(_wants_json(argv)))
    out = Out(args.json)
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
        return _usage_error(exc, out)
    except _Terminated:
        out.error("Terminated", "terminated")
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        out.error("KeyboardInterrupt", "interrupted")
        return 130
    except BrokenPipeError:
        try:  # the reader went away (e.g. `| head`): quiet, as other tools are
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - every failure is one line, never a traceback
        if _SIGNALLED:
            if _SIGNALLED[0] == signal.SIGTERM:
                out.error("Terminated", "terminated")
                return 128 + signal.SIGTERM
            out.error("KeyboardInterrupt", "interrupted")
            return 130
        if os.environ.get("CHUNKFRAME_DEBUG") and not _expected(exc):
            raise
        out.error(*_describe(exc, _CliStyle(parser, args.subparser)))
        return int(getattr(args, "error_status", EXIT_ERROR))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _usage_error(exc: _UsageError, out: Out) -> int:
    """argparse's usage line and ``PROG COMMAND: error: ...``, or the JSON document."""
    if out.json:
        out.error("UsageError", f"{exc.parser.prog}: {exc}; see {exc.parser.prog} --help")
    else:
        exc.parser.print_usage(sys.stderr)
        print(f"{exc.parser.prog}: error: {exc}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
