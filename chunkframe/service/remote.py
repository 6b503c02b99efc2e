"""The remote client: ``cf.connect("http://host:port", token=...)`` reads through ``chunkframe serve``.

Reads return the same pandas objects as a local :class:`~chunkframe.Dataset` (frames travel
as Arrow IPC streams, whose pandas metadata carries the dtypes). Writes of data are
local-only: :class:`ReadOnlyError` says so.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import numpy as np
import pandas as pd
import pyarrow as pa

from ..core import errors as core_errors
from ..core.errors import BackendUnavailableError, ChunkCorruptionError, ChunkFrameError, InvalidArgumentError
from ..core.integers import as_integer, integer_at_least
from ..core.keys import validate_id
from ..core.model import ChunkMeta, DatasetMeta
from ..core.protocols import ContextLike, DatasetLike
from ..core.units import format_bytes, plural
from ..display.reprs import mark
from ..read.stream import arrow_c_stream
from . import errors as service_errors
from .encoding import (
    ARROW,
    JSON,
    NO_FRAMES,
    TYPED_JSON,
    frame_from_arrow,
    stream_error,
    tag,
    untag,
)
from .errors import HINTS_HEADER, MissingExtraError, NotFoundError, ReadOnlyError, ServiceError

__all__ = ["RemoteClient", "RemoteDataset", "RemoteContext", "connect_remote"]

TOKEN_ENV = "CHUNKFRAME_TOKEN"

_WRITES_ARE_LOCAL = (
    "{what} is not available through a server: writes are local-only, because they take the "
    "dataset's lock in Redis and write chunk files, which a remote client cannot reach. Run it "
    "with a local client (cf.connect(store=..., redis=..., catalog=...) on the server's "
    "settings); the server sees the new data at once."
)

_BUILTIN = {"IndexError": IndexError, "KeyError": KeyError, "TypeError": TypeError,
            "ValueError": ValueError}


def _error(status: int, data: bytes, url: str) -> Exception:
    """The exception a JSON error body names (the same class a local read raises)."""
    try:
        body = json.loads(data)
        name, message = str(body["error"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        text = data[:200].decode("utf-8", "replace")
        return ServiceError(f"{url} answered HTTP {status} without a chunkframe error: {text!r}")
    cls = getattr(core_errors, name, None) or getattr(service_errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, ChunkFrameError)):
        cls = _BUILTIN.get(name) or (NotFoundError if status == 404 else ServiceError)
    if cls is ChunkCorruptionError and isinstance(body.get("details"), dict):
        try:
            return ChunkCorruptionError(**body["details"])
        except TypeError:
            pass
    try:
        return cls(message)  # type: ignore[call-arg]  # one whose constructor takes parts: below
    except TypeError:  # a class whose constructor takes its parts: keep the message
        exc = cls.__new__(cls)
        Exception.__init__(exc, message)
        return exc


class _Http:
    """One pooled HTTP connection pool to the server; errors as chunkframe exceptions."""

    def __init__(self, url: str, token: str | None, timeout: float, retries: int,
                 maxsize: int) -> None:
        try:
            import urllib3
        except ImportError:
            raise MissingExtraError("a remote client", "urllib3") from None
        self._urllib3 = urllib3
        parsed = urllib3.util.parse_url(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"not a server URL: {url!r}; use e.g. http://127.0.0.1:8765")
        self.url = url.rstrip("/")
        self._base = (parsed.path or "").rstrip("/")
        self._headers = {"User-Agent": "chunkframe-remote", HINTS_HEADER: "python"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        # Reads are idempotent: any method may be retried after a dropped connection (a server
        # restart), and connecting is retried for a moment while a server comes back up.
        retry = urllib3.Retry(total=retries + 1, connect=retries, read=1, status=0, other=0,
                              redirect=0, backoff_factor=0.2, allowed_methods=None,
                              raise_on_status=False)
        self._pool = urllib3.connection_from_url(
            self.url, maxsize=maxsize, block=False, retries=retry,
            timeout=urllib3.Timeout(connect=min(10.0, timeout), read=timeout))

    def request(self, method: str, path: str, query: Any = None, body: Any = None,
                accept: str = JSON, content_type: str = JSON, stream: bool = False) -> Any:
        """The response to one request (its body not read yet with ``stream``); an error
        answer raised as the chunkframe exception its body names."""
        target = self._base + path + (f"?{urlencode(query, doseq=True)}" if query else "")
        headers = {**self._headers, "Accept": accept}  # headers given replace the pool's
        data = None
        if body is not None:
            data = json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
            headers["Content-Type"] = content_type
        try:
            r = self._pool.request(method, target, body=data, headers=headers,
                                   preload_content=not stream)
        except self._urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise BackendUnavailableError(
                f"the chunkframe server at {self.url} cannot be reached ({reason}); is "
                "`chunkframe serve` running there, and is the URL right?") from None
        if r.status >= 400:
            raise _error(r.status, r.data, self.url)
        return r

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return json.loads(self.request(method, path, **kwargs).data)

    def frame(self, method: str, path: str, **kwargs: Any) -> pd.DataFrame:
        return frame_from_arrow(self.request(method, path, accept=ARROW, **kwargs).data)

    def batches(self, path: str, query: Any, what: str) -> pa.RecordBatchReader:
        """An Arrow IPC stream answer, read batch by batch as it arrives; its connection
        goes back to the pool once the stream is read to its end."""
        r = self.request("GET", path, query=query, accept=ARROW, stream=True)
        try:
            reader = pa.ipc.open_stream(r)
        except (pa.ArrowInvalid, self._urllib3.exceptions.HTTPError) as exc:
            r.release_conn()
            raise self._broken(what, 0, exc) from None

        def batches() -> Iterator[pa.RecordBatch]:
            n = 0
            try:
                while True:
                    try:
                        batch, metadata = reader.read_next_batch_with_custom_metadata()
                    except StopIteration:
                        return
                    except (pa.ArrowInvalid, self._urllib3.exceptions.HTTPError) as exc:
                        raise self._broken(what, n, exc) from None
                    error = stream_error(metadata)
                    if error is not None:  # the server's read failed mid-stream: its error
                        raise _error(500, json.dumps(error).encode(), self.url)
                    n += 1
                    yield batch
            finally:
                r.release_conn()

        return pa.RecordBatchReader.from_batches(reader.schema, batches())

    def _broken(self, what: str, n: int, exc: Exception) -> ServiceError:
        return ServiceError(
            f"the stream of {what} from {self.url} broke off after "
            f"{plural(n, 'batch', 'batches')} ({exc}): the connection was lost or the server "
            "stopped; read it again (the server log says whether it stopped)")

    def close(self) -> None:
        self._pool.close()


def _segment(text: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"ids and keys are strings, got {type(text).__name__} {text!r}")
    return quote(text, safe="")


class RemoteClient:
    """A client of a ``chunkframe serve`` server: datasets and contexts read over HTTP.

    Examples
    --------
    >>> client = cf.connect("http://127.0.0.1:8765", token="...")   # doctest: +SKIP
    >>> cf.open("flights").get(12_345)                               # doctest: +SKIP
    """

    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0,
                 retries: int = 3, pool_size: int = 8) -> None:
        self._token_set = bool(token)
        self.http = _Http(url, token, timeout, retries, pool_size)
        self.url = self.http.url

    def __repr__(self) -> str:  # never the token
        return (f"<chunkframe.RemoteClient {self.url!r} "
                f"token={'set' if self._token_set else 'none'}>")

    def health(self) -> dict[str, Any]:
        return dict(self.http.json("GET", "/v1/health"))

    def open(self, dataset_id: str, version: int | None = None, as_of: Any = None
             ) -> RemoteDataset:
        """A complete dataset on the server, as :meth:`chunkframe.Client.open` opens it: the
        current version, or ``version=`` (from ``ds.versions()``) or ``as_of=`` (a time: the
        version current then), read-only. DatasetNotFoundError, VersionNotFoundError and
        InvalidDatasetIdError as a local open raises them."""
        validate_id(dataset_id)  # as a local open does: "a/b" is no id, not a missing route
        if version is not None and as_of is not None:
            raise InvalidArgumentError(
                f"open dataset {dataset_id!r} at version={version!r} or as_of={as_of!r}, not both")
        if version is not None and as_integer(version) is None:
            raise InvalidArgumentError(
                f"version must be an integer from ds.versions(), got {version!r}")
        if as_of is not None:  # the server says which version was current then
            path = f"/v1/datasets/{_segment(dataset_id)}"
            doc = self.http.json("GET", path, query={"as_of": json.dumps(tag(as_of))})
            version = int(doc["version"])
        return RemoteDataset(self, dataset_id, None if version is None else as_integer(version))

    def datasets(self) -> pd.DataFrame:
        """The server's complete datasets: id, state, rows, chunks, bytes, ..."""
        return self.http.frame("GET", "/v1/datasets")

    def context(self, context_id: str) -> RemoteContext:
        return RemoteContext(self, context_id)

    def contexts(self) -> pd.DataFrame:
        raise NotImplementedError("the list of contexts is not served; ask for one context "
                                  "with cf.context(id), or search them all with cf.find")

    def find(self, keyword: str, type: str | None = None) -> pd.DataFrame:
        """Entries of every context on the server having ``keyword`` (see :func:`cf.find`)."""
        query = {"keyword": keyword, **({} if type is None else {"type": type})}
        return self.http.frame("GET", "/v1/find", query=query)

    def ingest(self, source: Any, dataset_id: str, **kwargs: Any) -> Any:
        raise ReadOnlyError(_WRITES_ARE_LOCAL.format(what=f"ingest of {dataset_id!r}"))

    def exists(self, dataset_id: str) -> bool:
        """Whether the server has a complete dataset ``dataset_id``."""
        validate_id(dataset_id)
        df = self.datasets()
        return "id" in df.columns and dataset_id in set(df["id"])

    def drop(self, dataset_id: str, **kwargs: Any) -> Any:
        raise ReadOnlyError(_WRITES_ARE_LOCAL.format(what=f"drop of {dataset_id!r}"))

    def snapshot(self, name: str, *args: Any, **kwargs: Any) -> Any:
        raise ReadOnlyError(_WRITES_ARE_LOCAL.format(what=f"snapshot {name!r}"))

    def delete_snapshot(self, name: str) -> Any:
        raise ReadOnlyError(_WRITES_ARE_LOCAL.format(what=f"delete of snapshot {name!r}"))

    def close(self) -> None:
        self.http.close()


class RemoteDataset:
    """A dataset read through a server, with the read API of :class:`~chunkframe.Dataset`."""

    def __init__(self, client: RemoteClient, dataset_id: str, version: int | None = None
                 ) -> None:
        self._client = client
        self._http = client.http
        self.id = dataset_id
        self._path = f"/v1/datasets/{_segment(dataset_id)}"
        self._pinned = version
        self._at: dict[str, Any] = {} if version is None else {"version": version}
        self._limits = self.info()["limits"]  # fails now if the dataset (version) does not exist

    def _query(self, query: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """``query`` with the version this handle reads, if it was opened at one."""
        return {**(query or {}), **self._at} or None

    def info(self) -> dict[str, Any]:
        """The server's metadata of the dataset (rows, chunks, schema, cache, limits)."""
        return dict(self._http.json("GET", self._path, query=self._query()))

    def __len__(self) -> int:
        return int(self.info()["rows"])

    @property
    def meta(self) -> DatasetMeta:
        """The committed metadata of the version read, as the server holds it."""
        return DatasetMeta.from_mapping(self.info()["meta"])

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema every chunk has, with the pandas metadata of the ingested frame."""
        return self.meta.arrow_schema

    @property
    def columns(self) -> list[str]:
        return list(self.info()["columns"])

    @property
    def version(self) -> int:
        """The version this handle reads: the current one, or the one it was opened at."""
        return self._pinned if self._pinned is not None else int(self.info()["version"])

    @property
    def read_only(self) -> bool:
        """Whether this handle was opened at a version (``version=`` or ``as_of=``)."""
        return self._pinned is not None

    @property
    def chunk_metas(self) -> tuple[ChunkMeta, ...]:
        """The chunks of the version read, with their statistics (``Dataset.chunk_metas``)."""
        doc = self._http.json("GET", f"{self._path}/chunks", query=self._query())
        return tuple(ChunkMeta.from_json(text) for text in doc["chunks"])

    @property
    def chunks(self) -> pd.DataFrame:
        """The chunk table: ``chunk, start, rows, key, checksum, bytes`` (``Dataset.chunks``)."""
        return pd.DataFrame(
            [(c.chunk, c.start, c.rows, c.key, c.checksum, c.nbytes) for c in self.chunk_metas],
            columns=["chunk", "start", "rows", "key", "checksum", "bytes"])

    def cache_info(self) -> dict[str, Any]:
        """The server's chunk-cache counters for the dataset (``Dataset.cache_info``)."""
        return dict(self.info()["cache"])

    # -- reads ----------------------------------------------------------------------------
    def get(self, sn: int, column: str | None = None) -> Any:
        """Row ``sn`` as a Series equal to ``df.iloc[sn]``, or one value with ``column``."""
        number = as_integer(sn)
        if number is None:
            raise TypeError(f"serial number must be an integer, got {type(sn).__name__} {sn!r}")
        # typed JSON, not Arrow: a row is a handful of scalars, and building a DataFrame from
        # an Arrow stream costs ~20x decoding them (bench/results_service.md)
        query = self._query(None if column is None else {"column": column})
        doc = self._http.json("GET", f"{self._path}/values/{number}", query=query,
                              accept=TYPED_JSON)
        if column is not None:
            return untag(doc["value"])
        values = [untag(v) for v in doc["values"]]
        index = pd.Index(doc["columns"])
        try:  # the row's dtype, as ds.get gives it (float64 for an all-float table)
            return pd.Series(values, index=index, name=doc["sn"], dtype=doc["dtype"])
        except (TypeError, ValueError):
            return pd.Series(values, index=index, name=doc["sn"], dtype=object)

    def row(self, sn: int) -> dict[str, Any]:
        """Row ``sn`` as ``{column: value}``, each value as ``get(sn, column)`` gives it."""
        number = as_integer(sn)
        if number is None:
            raise TypeError(f"serial number must be an integer, got {type(sn).__name__} {sn!r}")
        doc = self._http.json("GET", f"{self._path}/values/{number}",
                              query=self._query({"form": "row"}), accept=TYPED_JSON)
        return dict(zip(doc["columns"], (untag(v) for v in doc["values"]), strict=True))

    def get_many(self, sns: Sequence[int] | np.ndarray, columns: Sequence[str] | None = None
                 ) -> pd.DataFrame:
        """Rows ``sns`` (any order, duplicates allowed) as a DataFrame indexed by sn; batches
        over the server's limit are split."""
        arr = np.asarray(sns)
        if arr.ndim > 1:
            raise ValueError(f"serial numbers must be a flat sequence, got an array of shape "
                             f"{arr.shape}")
        if arr.dtype == bool or (arr.size and arr.dtype.kind not in "iu"):
            raise TypeError(f"serial numbers must be integers, got an array of {arr.dtype}")
        values = arr.astype(np.int64, copy=False).ravel().tolist()
        cols = None if columns is None else [columns] if isinstance(columns, str) else list(columns)
        step = max(1, min(self._limits["max_batch"], self._limits["max_body_bytes"] // 24))
        parts = [self._http.frame("POST", f"{self._path}/values", query=self._query(),
                                  body={"sns": values[i:i + step], "columns": cols})
                 for i in range(0, max(len(values), 1), step)]
        return parts[0] if len(parts) == 1 else pd.concat(parts)

    def slice(self, start: int | None = None, stop: int | None = None,
              columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows ``[start, stop)`` like ``df.iloc[start:stop]``; paged by the server's limit."""
        for name, bound in (("start", start), ("stop", stop)):
            if bound is not None and as_integer(bound) is None:
                raise TypeError(f"slice {name} must be an integer or None, got {bound!r}")
        cols = None if columns is None else [columns] if isinstance(columns, str) else list(columns)
        query: dict[str, Any] = {} if cols is None else {"columns": cols}
        lo, hi, _ = slice(start, stop).indices(len(self))
        hi = max(hi, lo)
        step = self._limits["max_rows"]
        parts = [self._http.frame("GET", f"{self._path}/slice",
                                  query=self._query({**query, "start": a, "stop": min(a + step, hi)}))
                 for a in range(lo, max(hi, lo + 1), step)]
        return parts[0] if len(parts) == 1 else pd.concat(parts)

    def head(self, n: int = 5, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The first ``n`` rows (``n`` an integer >= 0), as a local ``ds.head`` gives them."""
        count = integer_at_least(n, "n of head()", 0,
                                 "for every row but the last k, use ds.slice(None, -k)")
        return self.slice(0, count, columns)

    def tail(self, n: int = 5, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The last ``n`` rows (``n`` an integer >= 0), as a local ``ds.tail`` gives them."""
        count = integer_at_least(n, "n of tail()", 0,
                                 "for every row but the first k, use ds.slice(k)")
        return self.slice(-count if count else 0, None if count else 0, columns)

    def _scan_query(self, columns: Sequence[str] | str | None, date_range: Any, where: Any,
                    what: str, device: Any = None) -> dict[str, Any]:
        """The query string of a ``batches`` stream; ``where=`` and ``device=`` refused with
        the way round."""
        if device is not None:
            raise InvalidArgumentError(
                f"{what}(device=...) is not served yet. Filter what {what}() returns by its "
                f"device column, or read dataset {self.id!r} with a local client")
        if where is not None:
            raise InvalidArgumentError(
                f"{what}(where=...) is not served: a pyarrow expression does not travel to "
                f"the server. Filter what {what}(date_range=...) returns (e.g. df[df.x > 25] "
                f"or pyarrow.compute on a table), or read dataset {self.id!r} with a local "
                "client")
        query: dict[str, Any] = dict(self._at)
        if columns is not None:
            query["columns"] = [columns] if isinstance(columns, str) else list(columns)
        if date_range is not None:
            bounds = list(date_range) if isinstance(date_range, (tuple, list)) else date_range
            query["date_range"] = json.dumps(tag(bounds), allow_nan=False)
        return query

    def iter_chunks(self, columns: Sequence[str] | str | None = None, *, date_range: Any = None,
                    where: Any = None, device: Any = None) -> Iterator[pd.DataFrame]:
        """Yield the dataset chunk by chunk as DataFrames indexed by serial number, streamed
        from the server (see ``Dataset.iter_chunks``; ``where=`` is not served)."""
        query = {**self._scan_query(columns, date_range, where, "iter_chunks", device), "index": "1"}
        reader = self._http.batches(f"{self._path}/batches", query, f"dataset {self.id!r}")
        if NO_FRAMES in (reader.schema.metadata or {}):
            reader.read_all()  # no chunk left: the stream's one batch is no frame
            return
        for batch in reader:
            yield pa.Table.from_batches([batch], reader.schema).to_pandas()

    def to_pandas(self, columns: Sequence[str] | str | None = None, *, date_range: Any = None,
                  where: Any = None, device: Any = None) -> pd.DataFrame:
        """The dataset (or the rows and columns asked) in memory, as ``Dataset.to_pandas``:
        unfiltered, fetched page by page and equal to the ingested frame; with
        ``date_range=``, indexed by serial number (``where=`` is not served)."""
        query = self._scan_query(columns, date_range, where, "to_pandas", device)
        if date_range is None:
            df = self.slice(0, None, query.get("columns"))
            df.index = pd.RangeIndex(len(df))
            return df
        query["index"] = "1"
        reader = self._http.batches(f"{self._path}/batches", query, f"dataset {self.id!r}")
        df = reader.read_all().to_pandas()  # with no chunk left, its categories: no rows
        df.index = pd.Index(df.index.to_numpy())  # unnamed, as a local filtered read's
        return df

    def to_arrow(self, columns: Sequence[str] | str | None = None, *, date_range: Any = None,
                 where: Any = None, device: Any = None) -> pa.Table:
        """The dataset (or the rows and columns asked) as one Arrow table, one chunk of it
        per chunk read, as ``Dataset.to_arrow`` (``where=`` is not served)."""
        return self.to_batches(columns, date_range=date_range, where=where,
                               device=device).read_all()

    def to_batches(self, columns: Sequence[str] | str | None = None, *, date_range: Any = None,
                   where: Any = None, device: Any = None) -> pa.RecordBatchReader:
        """The dataset streamed from the server as Arrow record batches, one per chunk read,
        as ``Dataset.to_batches`` (``where=`` is not served). Read it once."""
        query = self._scan_query(columns, date_range, where, "to_batches", device)
        return self._http.batches(f"{self._path}/batches", query, f"dataset {self.id!r}")

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """The Arrow PyCapsule stream of the dataset, streamed from the server chunk by chunk
        (as ``Dataset.__arrow_c_stream__``)."""
        return arrow_c_stream(self, requested_schema)

    def last(self, device: Any = None, columns: Sequence[str] | str | None = None) -> pd.DataFrame:
        """Latest non-null (time, value) of each series: columns device, measurement, time, value."""
        query: dict[str, Any] = {}
        if device is not None:
            many = isinstance(device, (list, tuple, set, np.ndarray, pd.Index, pd.Series))
            query["device"] = [str(d) for d in device] if many else [str(device)]
        if columns is not None:
            query["columns"] = [columns] if isinstance(columns, str) else list(columns)
        return mark(self._http.frame("GET", f"{self._path}/last", query=self._query(query)),
                    "last", self.id)

    def versions(self) -> pd.DataFrame:
        """Every recorded version of the dataset, oldest first (see ``Dataset.versions``)."""
        return self._http.frame("GET", f"{self._path}/versions", query=self._query())

    # -- context --------------------------------------------------------------------------
    @property
    def context(self) -> ContextLike:
        return RemoteContext(self._client, self.id)

    def tag(self, key: str, value: Any, type: str = "METADATA",
            keywords: Sequence[str] | None = None) -> None:
        self.context.put(key, value, type=type, keywords=keywords)

    def tags(self, type: str | None = None) -> pd.DataFrame:
        return RemoteContext(self._client, self.id).items(type)

    def find(self, keyword: str, type: str | None = None) -> pd.DataFrame:
        return self.context.search(keyword, type)

    # -- writes: local-only ----------------------------------------------------------------
    def append(self, df: pd.DataFrame, **kwargs: Any) -> Any:
        raise ReadOnlyError(_WRITES_ARE_LOCAL.format(what=f"append to {self.id!r}"))

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ReadOnlyError(_WRITES_ARE_LOCAL.format(what=f"delete in {self.id!r}"))

    def reset_last(self, *args: Any, **kwargs: Any) -> Any:
        raise ReadOnlyError(_WRITES_ARE_LOCAL.format(what=f"reset_last of {self.id!r}"))

    # -- display --------------------------------------------------------------------------
    def __repr__(self) -> str:
        i = self.info()
        cols = ", ".join(i["columns"][:8]) + (", ..." if len(i["columns"]) > 8 else "")
        return (f"<chunkframe.RemoteDataset {self.id!r} at {self._client.url}: "
                f"{plural(i['rows'], 'row')} in {plural(i['chunks'], 'chunk')}, "
                f"{format_bytes(i['bytes'])}; columns: {cols}>")

    def _repr_html_(self) -> str:
        i = self.info()
        cache = i.get("cache") or {}
        rows = [("server", self._client.url), ("rows", f"{i['rows']:,}"), ("chunks", i["chunks"]),
                ("stored", format_bytes(i["bytes"])),
                ("columns", ", ".join(i["columns"][:20]) + (" …" if len(i["columns"]) > 20 else "")),
                ("time / device", f"{i['time_column']} / {i['device_column']}"),
                ("server cache", f"{plural(cache.get('chunks', 0), 'chunk')}, hit rate "
                                 f"{cache.get('hit_rate', 0.0):.0%}")]
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>"
                       f"{html.escape(str(v))}</td></tr>" for k, v in rows)
        return (f"<div><b>chunkframe.RemoteDataset</b> <code>{html.escape(self.id)}</code>"
                f"<table>{body}</table></div>")


if TYPE_CHECKING:  # mypy checks that the remote handle has the whole read API of a local one
    _REMOTE_IS_DATASET_LIKE: type[DatasetLike] = RemoteDataset


class RemoteContext:
    """A context (tags, keyword index) read and written through a server."""

    def __init__(self, client: RemoteClient, context_id: str) -> None:
        self._http = client.http
        self.context_id = context_id
        self._path = f"/v1/contexts/{_segment(context_id)}"

    def __repr__(self) -> str:
        return f"<chunkframe.RemoteContext {self.context_id!r}>"

    def _entry(self, key: str, type: str | None) -> str:
        kind = "-" if type is None else _segment(str(type))  # "-": the only type holding key
        return f"{self._path}/entries/{kind}/{_segment(key)}"

    def put(self, key: str, value: Any, type: str = "METADATA",
            keywords: Sequence[str] | None = None) -> None:
        body = {"value": tag(value), "keywords": None if keywords is None else list(keywords)}
        self._http.request("PUT", self._entry(key, type), body=body, content_type=TYPED_JSON)

    def value(self, key: str, *, type: str | None = None) -> Any:
        """The value of ``key`` (under ``type``); a KeyError if the context lacks it."""
        doc = self._http.json("GET", self._entry(key, type), accept=TYPED_JSON)
        return untag(doc["value"])

    def get(self, key: str, default: Any = None, *, type: str | None = None) -> Any:
        """The value of ``key`` (under ``type``), or ``default`` if the context lacks it,
        as a local ``Context.get``."""
        try:
            return self.value(key, type=type)
        except KeyError:
            return default

    def __getitem__(self, key: str) -> Any:
        return self.value(key)

    def remove(self, key: str, type: str | None = None) -> None:
        self._http.request("DELETE", self._entry(key, type))

    def items(self, type: str | None = None) -> pd.DataFrame:
        return self._http.frame("GET", f"{self._path}/entries",
                                query=None if type is None else {"type": type})

    def search(self, keyword: str, type: str | None = None) -> pd.DataFrame:
        query = {"keyword": keyword, **({} if type is None else {"type": type})}
        return self._http.frame("GET", f"{self._path}/search", query=query)


def connect_remote(url: str, redis: Any = None, catalog: Any = None, home: Any = None,
                   token: str | None = None, **options: Any) -> RemoteClient:
    """``cf.connect(url)`` for a server URL; the token defaults to ``CHUNKFRAME_TOKEN``."""
    given = [n for n, v in (("redis", redis), ("catalog", catalog), ("home", home)) if v is not None]
    if given:
        raise TypeError(f"cf.connect({url!r}) talks to a server, which has its own settings; "
                        f"drop {', '.join(given)}")
    return RemoteClient(url, token=token or os.environ.get(TOKEN_ENV) or None, **options)
