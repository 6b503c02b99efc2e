"""The remote client: ``cf.connect("http://host:port", token=...)`` reads through ``chunkframe serve``.

Reads return the same pandas objects as a local :class:`~chunkframe.Dataset` (frames travel
as Arrow IPC streams, whose pandas metadata carries the dtypes). Writes of data are
local-only: :class:`ReadOnlyError` says so.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

import numpy as np
import pandas as pd

from .. import BackendUnavailableError, ChunkCorruptionError, ChunkFrameError, InvalidArgumentError
from ..core.integers import as_integer, integer_at_least
from ..core.keys import validate_id
from ..core.units import format_bytes, plural
from ..display.reprs import mark
from . import errors as service_errors
from .encoding import ARROW, JSON, TYPED_JSON, frame_from_arrow, tag, untag
from .errors import MissingExtraError, NotFoundError, ReadOnlyError, ServiceError

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
    import chunkframe

    cls = getattr(chunkframe, name, None) or getattr(service_errors, name, None)
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
        self._headers = {"User-Agent": "chunkframe-remote"}
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
                accept: str = JSON, content_type: str = JSON) -> Any:
        target = self._base + path + (f"?{urlencode(query, doseq=True)}" if query else "")
        headers = {**self._headers, "Accept": accept}  # headers given replace the pool's
        data = None
        if body is not None:
            data = json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
            headers["Content-Type"] = content_type
        try:
            r = self._pool.request(method, target, body=data, headers=headers)
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
        """The current version of a complete dataset on the server; DatasetNotFoundError if
        there is none. ``version=`` and ``as_of=`` are not served: they raise
        :class:`InvalidArgumentError` saying so."""
        validate_id(dataset_id)  # as a local open does: "a/b" is no id, not a missing route
        if version is not None or as_of is not None:
            asked = f"version={version!r}" if version is not None else f"as_of={as_of!r}"
            raise InvalidArgumentError(
                f"a remote client opens the current version of dataset {dataset_id!r} only, "
                f"not {asked}: the server does not serve past versions. Open it with a local "
                f"client on the server's settings (cf.connect(store=..., redis=..., "
                f"catalog=...)), or read ds.versions() remotely to see which there are")
        return RemoteDataset(self, dataset_id)

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

    def __init__(self, client: RemoteClient, dataset_id: str) -> None:
        self._client = client
        self._http = client.http
        self.id = dataset_id
        self._path = f"/v1/datasets/{_segment(dataset_id)}"
        self._limits = self.info()["limits"]  # fails now if the dataset does not exist

    def info(self) -> dict[str, Any]:
        """The server's metadata of the dataset (rows, chunks, schema, cache, limits)."""
        return dict(self._http.json("GET", self._path))

    def __len__(self) -> int:
        return int(self.info()["rows"])

    @property
    def columns(self) -> list[str]:
        return list(self.info()["columns"])

    # -- reads ----------------------------------------------------------------------------
    def get(self, sn: int, column: str | None = None) -> Any:
        """Row ``sn`` as a Series equal to ``df.iloc[sn]``, or one value with ``column``."""
        number = as_integer(sn)
        if number is None:
            raise TypeError(f"serial number must be an integer, got {type(sn).__name__} {sn!r}")
        # typed JSON, not Arrow: a row is a handful of scalars, and building a DataFrame from
        # an Arrow stream costs ~20x decoding them (bench/results_service.md)
        query = None if column is None else {"column": column}
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
        parts = [self._http.frame("POST", f"{self._path}/values",
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
                                  query={**query, "start": a, "stop": min(a + step, hi)})
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

    def to_pandas(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The whole dataset in memory, equal to the ingested frame (fetched page by page)."""
        df = self.slice(0, None, columns)
        df.index = pd.RangeIndex(len(df))
        return df

    def last(self, device: Any = None, columns: Sequence[str] | str | None = None) -> pd.DataFrame:
        """Latest non-null (time, value) of each series: columns device, measurement, time, value."""
        query: dict[str, Any] = {}
        if device is not None:
            many = isinstance(device, (list, tuple, set, np.ndarray, pd.Index, pd.Series))
            query["device"] = [str(d) for d in device] if many else [str(device)]
        if columns is not None:
            query["columns"] = [columns] if isinstance(columns, str) else list(columns)
        return mark(self._http.frame("GET", f"{self._path}/last", query=query or None), "last",
                    self.id)

    def versions(self) -> pd.DataFrame:
        """Every recorded version of the dataset, oldest first (see ``Dataset.versions``)."""
        return self._http.frame("GET", f"{self._path}/versions")

    # -- context --------------------------------------------------------------------------
    @property
    def context(self) -> RemoteContext:
        return RemoteContext(self._client, self.id)

    def tag(self, key: str, value: Any, type: str = "METADATA",
            keywords: Sequence[str] | None = None) -> None:
        self.context.put(key, value, type=type, keywords=keywords)

    def tags(self, type: str | None = None) -> pd.DataFrame:
        return self.context.items(type)

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

    def get(self, key: str, type: str | None = None) -> Any:
        doc = self._http.json("GET", self._entry(key, type), accept=TYPED_JSON)
        return untag(doc["value"])

    def __getitem__(self, key: str) -> Any:
        return self.get(key)

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
