"""The ASGI app: GetValue and its friends over HTTP, served from one warm chunkframe client."""

from __future__ import annotations

import functools
import itertools
import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import numpy as np
import pandas as pd
import redis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..core.errors import (
    PYTHON,
    BackendUnavailableError,
    ChunkCorruptionError,
    ChunkFrameError,
    DatasetLockedError,
    DatasetNotFoundError,
    HintStyle,
    InvalidArgumentError,
)
from ..core.times import utc_from_epoch
from ..core.units import plural
from .auth import BearerAuth
from .config import ServiceConfig
from .encoding import (
    ARROW,
    JSON,
    TYPED_JSON,
    arrow_stream,
    dumps,
    frame_to_arrow,
    frames_as_batches,
    jsonable,
    records,
    row_json,
    split_frame,
    tag,
    untag,
)
from .errors import HINTS_HEADER, HTTP, AuthenticationError, RequestTooLargeError
from .health import HealthMonitor

if TYPE_CHECKING:
    from ..core.protocols import DatasetLike
    from ..session import Client

__all__ = ["ServiceConfig", "create_app", "error_body", "status_of"]

log = logging.getLogger("chunkframe.service")

MAX_OPEN_DATASETS = 1024
"""Dataset handles kept open (they are cheap: their state lives in the client's caches)."""

MAX_JSON_DEPTH = 64
"""How deeply a request body's arrays and objects may nest (a batch of serial numbers is 2;
deeper bodies are refused before parsing, which would recurse once per level)."""


# -- errors -----------------------------------------------------------------------------------

def status_of(exc: BaseException) -> int:
    """The HTTP status of an exception raised while answering a request."""
    if isinstance(exc, AuthenticationError):
        return 401
    if isinstance(exc, RequestTooLargeError):
        return 413
    if isinstance(exc, ChunkCorruptionError):
        return 500
    if isinstance(exc, (BackendUnavailableError, redis.ConnectionError, redis.TimeoutError)):
        return 503
    if isinstance(exc, DatasetLockedError):
        return 409
    if isinstance(exc, LookupError):  # unknown dataset, context entry, column; sn out of range
        return 404
    if isinstance(exc, (ValueError, TypeError)):
        return 400
    return 500


_BUILTIN_NAMES = (IndexError, KeyError, TypeError, ValueError)


def _name(exc: BaseException) -> str:
    if isinstance(exc, ChunkFrameError):
        return type(exc).__name__
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return "BackendUnavailableError"
    for cls in _BUILTIN_NAMES:
        if isinstance(exc, cls):
            return cls.__name__
    return "InternalError"


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]  # str(KeyError) would repr() the message
    return str(exc) or type(exc).__name__


def error_body(exc: BaseException, style: HintStyle = HTTP) -> dict[str, Any]:
    """``{"error": <class name>, "message": ...}`` (plus ``details`` for a corrupt chunk);
    the message's hint in ``style``: HTTP routes and parameters unless the client asked for
    Python's words (:data:`HINTS_HEADER`)."""
    name = _name(exc)
    if name == "InternalError":
        return {"error": name, "message": "internal server error; the server log has the details"}
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return {"error": name, "message": f"the server cannot reach Redis ({exc}); try again "
                                          "once Redis is back"}
    message = exc.message(style) if isinstance(exc, ChunkFrameError) else _message(exc)
    body: dict[str, Any] = {"error": name, "message": message}
    if isinstance(exc, ChunkCorruptionError):
        body["details"] = {k: getattr(exc, k) for k in
                           ("dataset", "chunk", "key", "stored", "computed", "reason")}
    return body


def _json(obj: Any, status: int = 200, media_type: str = JSON) -> Response:
    return Response(dumps(obj), status_code=status, media_type=media_type)


def log_error(exc: BaseException, request: Request | None = None) -> None:
    """Log a failure the server did not expect with its traceback, others of 5xx in a line."""
    status = status_of(exc)
    if status == 500 and not isinstance(exc, ChunkFrameError):
        where = f"{request.method} {request.url.path}" if request is not None else "a request"
        log.error("error while answering %s", where, exc_info=exc)
    elif status >= 500:
        log.warning("%s: %s", type(exc).__name__, exc)


def hint_style(request: Request | None) -> HintStyle:
    """The words error hints are said in for ``request``'s client (see :data:`HINTS_HEADER`)."""
    if request is not None and request.headers.get(HINTS_HEADER) == "python":
        return PYTHON
    return HTTP


def error_response(exc: BaseException, request: Request | None = None) -> Response:
    log_error(exc, request)
    status = status_of(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(dumps(error_body(exc, hint_style(request))), status_code=status,
                    media_type=JSON, headers=headers)


Handler = Callable[[Request], Awaitable[Response]]


def _endpoint(fn: Handler, svc: _Service) -> Handler:
    """Every failure of a route becomes a JSON error with its status; never a stack trace."""

    async def endpoint(request: Request) -> Response:
        try:
            return await fn(request)
        except ClientDisconnect:  # expected: a client gave up mid-body; nobody reads a reply
            log.info("%s %s: the client disconnected before sending its whole request body",
                     request.method, request.url.path)
            return Response(status_code=400)
        except Exception as exc:  # noqa: BLE001 - turned into a JSON error, logged if unexpected
            if isinstance(exc, DatasetNotFoundError):  # deleted since it was opened
                svc.forget(request.path_params.get("id", ""))
            return error_response(exc, request)

    endpoint.__name__ = fn.__name__
    return endpoint


# -- request parsing --------------------------------------------------------------------------

_INTEGER = re.compile(r"-?[0-9]+")


def _int(text: str | None, what: str) -> int | None:
    """An integer of the URL: ASCII digits with an optional minus sign, nothing else (int()
    would take spaces, underscores, a plus sign and other scripts' digits)."""
    if text is None or text == "":
        return None
    if not _INTEGER.fullmatch(text):
        raise InvalidArgumentError(f"{what} must be an integer (digits 0-9, optionally after "
                                   f"a minus sign), got {text!r}")
    return int(text)


def _required_int(text: str, what: str) -> int:
    value = _int(text, what)
    if value is None:
        raise InvalidArgumentError(f"{what} is missing")
    return value


def _flag(text: str | None, what: str) -> bool:
    """A yes/no query parameter: 1/true/yes or 0/false/no (absent: no)."""
    if text is None:
        return False
    low = text.strip().lower()
    if low in ("1", "true", "yes"):
        return True
    if low in ("0", "false", "no", ""):
        return False
    raise InvalidArgumentError(f"{what}={text!r} is not one of 1/true/yes or 0/false/no; "
                               f"e.g. /v1/health?{what}=1")


def _column(request: Request) -> str | None:
    """``?column=c``, without building the query-parameter mapping for the common cases (a
    third of the cost of a cached GetValue)."""
    qs: bytes = request.scope["query_string"]
    if not qs:
        return None
    if qs.startswith(b"column=") and b"&" not in qs:
        return unquote_plus(qs[7:].decode("latin-1"), encoding="utf-8")
    return request.query_params.get("column")


def _version(request: Request) -> int | None:
    """``?version=N``: the version of the dataset a route reads (None: the current one)."""
    qs: bytes = request.scope["query_string"]
    if b"version=" not in qs:  # the common case, without building the query mapping
        return None
    return _int(request.query_params.get("version"), "version")


def _typed_param(text: str) -> Any:
    """A query parameter holding typed JSON (see :func:`tag`); text that is not JSON is
    taken as it stands (``?as_of=2026-01-05T10:00:00Z``)."""
    try:
        return untag(json.loads(text))
    except (ValueError, RecursionError):
        return text


def _columns(request: Request) -> list[str] | None:
    """``?columns=a&columns=b`` or ``?columns=a,b`` (a name holding a comma: repeat the param)."""
    values = request.query_params.getlist("columns")
    if not values:
        return None
    if len(values) > 1:
        return values
    return [c for c in values[0].split(",") if c] or None


def _wants(request: Request, media_type: str) -> bool:
    return media_type in request.headers.get("accept", "")


async def _body(request: Request, limit: int) -> Any:
    """The request's JSON body, read no further than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLargeError(f"request body of {int(declared):,} bytes is over this "
                                   f"server's limit of {limit:,} bytes (max_body_bytes); "
                                   "split the request")
    data = bytearray()
    async for piece in request.stream():
        data += piece
        if len(data) > limit:
            raise RequestTooLargeError(f"request body is over this server's limit of {limit:,} "
                                       "bytes (max_body_bytes); split the request")
    depth = json_depth(bytes(data))
    if depth > MAX_JSON_DEPTH:
        raise InvalidArgumentError(
            f"the request body nests arrays and objects {depth:,} levels deep; this server "
            f"reads at most {MAX_JSON_DEPTH} (MAX_JSON_DEPTH): send a flatter document")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InvalidArgumentError(f"the request body is not JSON ({exc})") from None


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(data: bytes) -> int:
    """How deeply arrays and objects nest in the JSON text ``data``, without parsing it
    (brackets inside strings do not count). Linear, and no recursion however deep.

    >>> json_depth(b'{"sns": [1, 2], "columns": ["[x]"]}')
    2
    """
    brackets = _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


# -- the service ------------------------------------------------------------------------------

class _Service:
    """The routes, over one client and its warm caches."""

    def __init__(self, client: Client, config: ServiceConfig) -> None:
        self.client = client
        self.config = config
        self._open: OrderedDict[tuple[str, int | None], DatasetLike] = OrderedDict()
        self._lock = threading.Lock()
        self.monitor = HealthMonitor(lambda: client.recover(progress=False),
                                     config.health_interval)
        self.auth: BearerAuth | None = None  # set by create_app when a token is configured

    # datasets are opened once per version asked (client.open checks the id, that the dataset
    # exists, and that the version does)
    def _open_dataset(self, dataset_id: str, version: int | None) -> DatasetLike:
        ds = self.client.open(dataset_id, version=version)
        with self._lock:
            self._open[dataset_id, version] = ds
            while len(self._open) > MAX_OPEN_DATASETS:
                self._open.popitem(last=False)
        return ds

    async def dataset(self, request: Request) -> DatasetLike:
        """The dataset of the route's ``{id}``, at ``?version=`` if the query names one."""
        dataset_id, version = request.path_params["id"], _version(request)
        ds = self._open.get((dataset_id, version))
        if ds is None:
            ds = await run_in_threadpool(self._open_dataset, dataset_id, version)
        return ds

    def forget(self, dataset_id: str) -> None:
        with self._lock:
            for key in [k for k in self._open if k[0] == dataset_id]:
                del self._open[key]

    def frame(self, request: Request, df: pd.DataFrame, form: str = "split") -> Response:
        if _wants(request, ARROW):
            return Response(frame_to_arrow(df), media_type=ARROW)
        return _json(split_frame(df) if form == "split" else {form: records(df)})

    # -- routes -------------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        if not request.scope["query_string"]:  # the cheap answer: no work, no lookup
            return Response(b'{"status":"ok"}', media_type=JSON)
        if not _flag(request.query_params.get("detail"), "detail"):
            return Response(b'{"status":"ok"}', media_type=JSON)
        if self.auth is not None and not self.auth.authorized(request.scope["headers"]):
            raise AuthenticationError(
                "the health detail names datasets and their problems: send 'Authorization: "
                "Bearer <token>' for it (plain /v1/health needs none)")
        return _json({"status": "ok", "health": self.monitor.report()})

    async def datasets(self, request: Request) -> Response:
        df = await run_in_threadpool(self.client.datasets)
        return self.frame(request, df, "datasets")

    async def dataset_info(self, request: Request) -> Response:
        """``GET /v1/datasets/{id}[?version=N | ?as_of=T]``: the metadata of the current
        version, or of the one asked (``as_of``: the version current at time ``T``, typed
        JSON or an ISO time; the answer's ``version`` names it)."""
        as_of = request.query_params.get("as_of")
        ds: DatasetLike
        if as_of:
            if _version(request) is not None:
                raise InvalidArgumentError(
                    f"GET {request.url.path} takes ?version= or ?as_of=, not both")
            ds = await run_in_threadpool(self.client.open, request.path_params["id"],
                                         as_of=_typed_param(as_of))
        else:
            ds = await self.dataset(request)

        def info() -> dict[str, Any]:
            meta = ds.meta
            return {
                "id": ds.id, "rows": meta.rows, "chunks": meta.chunks, "bytes": meta.nbytes,
                "chunk_rows": meta.chunk_rows, "generation": meta.generation,
                "version": meta.version, "time_column": meta.time_column,
                "device_column": meta.device_column, "compression": meta.compression,
                "created": _utc(meta.created), "updated": _utc(meta.updated),
                "columns": ds.columns,
                "schema": [{"name": f.name, "type": str(f.type)} for f in ds.schema],
                "cache": ds.cache_info(), "limits": self.config.limits(),
                "read_only": ds.read_only, "meta": meta.to_mapping(),
            }

        return _json(jsonable(await run_in_threadpool(info)))

    async def value(self, request: Request) -> Response:
        """GetValue: ``GET /v1/datasets/{id}/values/{sn}[?column=c]``."""
        sn = _required_int(request.path_params["sn"], "the serial number")
        column = _column(request)
        ds = await self.dataset(request)
        if _wants(request, ARROW):  # one row with its dtypes (what the remote client asks)
            df = await run_in_threadpool(ds.get_many, [sn], None if column is None else [column])
            return Response(frame_to_arrow(df), media_type=ARROW)
        # A warm value is microseconds of work: answered on the event loop. Through the
        # thread pool, cached GetValue fell from 19,100 to 6,400 req/s (bench_service.py, one
        # run each). The price: a cold chunk blocks the loop for one chunk read.
        if _wants(request, TYPED_JSON):  # exact Python objects, for the remote client
            if column is not None:
                return _json({"value": tag(ds.get(sn, column))}, media_type=TYPED_JSON)
            if request.query_params.get("form") == "row":  # ds.row(sn): no Series to rebuild
                values = ds.row(sn)
                return _json({"sn": sn, "columns": list(values),
                              "values": [tag(v) for v in values.values()]},
                             media_type=TYPED_JSON)
            row = ds.get(sn)
            return _json({"sn": int(row.name), "dtype": str(row.dtype),
                          "columns": [str(c) for c in row.index],
                          "values": [tag(v) for v in row.tolist()]}, media_type=TYPED_JSON)
        if column is not None:
            return _json({"value": jsonable(ds.get(sn, column))})
        # the row straight from the chunk's columns: no pandas Series (a 19-column row was
        # 69 µs as a Series, then 43 µs more to JSON; bench/results_service.md)
        return Response(row_json(ds.row(sn)), media_type=JSON)

    async def values(self, request: Request) -> Response:
        """Batch GetValue: ``POST /v1/datasets/{id}/values`` with ``{"sns": [...], "columns"}``."""
        ds = await self.dataset(request)
        doc = await _body(request, self.config.max_body_bytes)
        if not isinstance(doc, dict) or "sns" not in doc:
            raise InvalidArgumentError('the body must be a JSON object {"sns": [...], '
                                       '"columns": [...] (optional)}')
        sns, columns = doc["sns"], doc.get("columns")
        if not isinstance(sns, list) or not all(type(s) is int for s in sns):
            raise InvalidArgumentError('"sns" must be a list of integer serial numbers')
        if len(sns) > self.config.max_batch:
            raise RequestTooLargeError(
                f"{len(sns):,} serial numbers asked in one request; this server answers at most "
                f"{self.config.max_batch:,} (max_batch): split the batch")
        if columns is not None and (not isinstance(columns, list)
                                    or not all(isinstance(c, str) for c in columns)):
            raise InvalidArgumentError('"columns" must be a list of column names')
        df = await run_in_threadpool(ds.get_many, sns, columns)
        return self.frame(request, df)

    async def slice(self, request: Request) -> Response:
        q = request.query_params
        start, stop = _int(q.get("start"), "start"), _int(q.get("stop"), "stop")
        columns = _columns(request)
        ds = await self.dataset(request)
        lo, hi, _ = slice(start, stop).indices(len(ds))
        if hi - lo > self.config.max_rows:
            raise RequestTooLargeError(
                f"slice [{lo}, {hi}) of dataset {ds.id!r} is {plural(hi - lo, 'row')}; this server "
                f"answers at most {self.config.max_rows:,} rows per request (max_rows): "
                "page through it with start and stop")
        df = await run_in_threadpool(ds.slice, start, stop, columns)
        return self.frame(request, df)

    async def last(self, request: Request) -> Response:
        devices: list[Any] = [_device(d) for d in request.query_params.getlist("device")]
        device = None if not devices else devices[0] if len(devices) == 1 else devices
        columns = _columns(request)
        ds = await self.dataset(request)
        df = await run_in_threadpool(ds.last, device, columns)
        return self.frame(request, df)

    async def chunks(self, request: Request) -> Response:
        """The chunk table with each chunk's statistics (``ds.chunk_metas``), one JSON text
        per chunk as the catalog keeps it."""
        ds = await self.dataset(request)
        metas = await run_in_threadpool(lambda: ds.chunk_metas)
        return _json({"id": ds.id, "chunks": [cm.to_json() for cm in metas]})

    async def batches(self, request: Request) -> Response:
        """``ds.to_batches()`` as one Arrow IPC stream, chunk by chunk; with ``index=1``, the
        frames of ``ds.iter_chunks()`` (serial numbers as the ``sn`` column). ``columns=``
        and ``date_range=`` (typed JSON ``[start, end]``) select as the local reads do."""
        q = request.query_params
        columns = _columns(request)
        date_range = _date_range(q.get("date_range"))
        by_chunk = _flag(q.get("index"), "index")
        ds = await self.dataset(request)
        if by_chunk:  # the first frame is read here: bad arguments answer 4xx, not a cut stream
            first, schema, rest = await run_in_threadpool(
                frames_as_batches, ds.iter_chunks(columns, date_range=date_range),
                lambda: ds.slice(0, 0, columns))
            batches: Any = itertools.chain([first], rest)
        else:
            reader = await run_in_threadpool(ds.to_batches, columns, date_range=date_range)
            schema, batches = reader.schema, reader
        def failed(exc: Exception) -> dict[str, Any]:
            log_error(exc, request)
            return error_body(exc, hint_style(request))

        return StreamingResponse(arrow_stream(schema, batches, failed), media_type=ARROW)

    async def versions(self, request: Request) -> Response:
        ds = await self.dataset(request)
        df = await run_in_threadpool(ds.versions)
        return self.frame(request, df, "versions")

    # -- contexts -----------------------------------------------------------------------------
    async def find(self, request: Request) -> Response:
        """Entries of every context having ``?keyword=`` (``cf.find``), optionally ``&type=``."""
        keyword = request.query_params.get("keyword")
        if not keyword:
            raise InvalidArgumentError("find needs ?keyword=WORD (and optionally &type=TYPE)")
        df = await run_in_threadpool(self.client.find, keyword,
                                     request.query_params.get("type") or None)
        return self.frame(request, df, "entries")

    async def entries(self, request: Request) -> Response:
        ctx = self.client.context(request.path_params["id"])
        df = await run_in_threadpool(ctx.to_frame, request.query_params.get("type") or None)
        return self.frame(request, df, "entries")

    async def search(self, request: Request) -> Response:
        keyword = request.query_params.get("keyword")
        if not keyword:
            raise InvalidArgumentError("search needs ?keyword=WORD")
        ctx = self.client.context(request.path_params["id"])
        df = await run_in_threadpool(ctx.search, keyword, request.query_params.get("type") or None)
        return self.frame(request, df, "entries")

    async def entry(self, request: Request) -> Response:
        p = request.path_params
        ctx = self.client.context(p["id"])
        ctype = None if p["type"] == "-" else p["type"]  # "-": whichever type holds the key
        if request.method == "GET":
            value = await run_in_threadpool(functools.partial(ctx.value, p["key"], type=ctype))
            if _wants(request, TYPED_JSON):
                return _json({"value": tag(value)}, media_type=TYPED_JSON)
            return _json({"value": jsonable(value)})
        if request.method == "DELETE":
            await run_in_threadpool(ctx.remove, p["key"], ctype)
            return _json({"deleted": True, "context": p["id"], "type": p["type"], "key": p["key"]})
        doc = await _body(request, self.config.max_body_bytes)
        if not isinstance(doc, dict) or "value" not in doc:
            raise InvalidArgumentError('the body must be a JSON object {"value": ..., '
                                       '"keywords": [...] (optional)}')
        keywords = doc.get("keywords")
        if keywords is not None and (not isinstance(keywords, list)
                                     or not all(isinstance(k, str) for k in keywords)):
            raise InvalidArgumentError('"keywords" must be a list of strings')
        typed = request.headers.get("content-type", "").startswith(TYPED_JSON)
        value = untag(doc["value"]) if typed else doc["value"]
        await run_in_threadpool(ctx.put, p["key"], value, ctype or "METADATA", keywords)
        return _json({"stored": True, "context": p["id"], "type": p["type"], "key": p["key"]})


def _utc(epoch: float) -> str | None:
    return utc_from_epoch(epoch).isoformat() if epoch else None


def _date_range(text: str | None) -> Any:
    """``?date_range=`` as typed JSON (``[start, end]``, see :func:`tag`): the local
    ``date_range=`` argument it stands for."""
    if text is None or text == "":
        return None
    try:
        value = untag(json.loads(text))
    except (ValueError, RecursionError):
        raise InvalidArgumentError(
            f"date_range={text!r} is not JSON; send [start, end], each an ISO time, an "
            'integer, null or a typed time such as {"$ts": "2026-01-05T00:00:00+00:00"}') from None
    return tuple(value) if isinstance(value, list) else value


def _device(text: str) -> Any:
    """A device from the query string: numbers as numbers (so ``1`` finds device ``1.0`` of a
    float column), anything else as text (device names are matched by their text)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if text.strip().lower() not in ("nan", "inf", "-inf", "infinity") else text


def create_app(client: Client, config: ServiceConfig | None = None) -> Any:
    """The ASGI app serving ``client``'s datasets and contexts (wrapped in bearer auth when
    ``config.token`` is set).

    Examples
    --------
    >>> app = create_app(cf.connect(), ServiceConfig(token="s3cret"))  # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8765)                   # doctest: +SKIP
    """
    config = config or ServiceConfig()
    svc = _Service(client, config)

    def route(path: str, fn: Handler, methods: list[str] | None = None) -> Route:
        return Route(path, _endpoint(fn, svc), methods=methods or ["GET"])

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        names = {404: "NotFound", 405: "MethodNotAllowed"}
        detail = {404: f"no route {request.url.path!r}; the API is under /v1 (see README)",
                  405: f"{request.method} is not allowed on {request.url.path!r}"}
        return _json({"error": names.get(exc.status_code, "HTTPError"),
                      "message": detail.get(exc.status_code, str(exc.detail))},
                     status=exc.status_code)

    routes = [  # GetValue first: the router tries routes in order, ~3 µs each
        route("/v1/datasets/{id}/values/{sn}", svc.value),
        route("/v1/health", svc.health),
        route("/v1/datasets", svc.datasets),
        route("/v1/datasets/{id}", svc.dataset_info),
        route("/v1/datasets/{id}/values", svc.values, ["POST"]),
        route("/v1/datasets/{id}/slice", svc.slice),
        route("/v1/datasets/{id}/last", svc.last),
        route("/v1/datasets/{id}/versions", svc.versions),
        route("/v1/datasets/{id}/chunks", svc.chunks),
        route("/v1/datasets/{id}/batches", svc.batches),
        route("/v1/find", svc.find),
        route("/v1/contexts/{id}/entries", svc.entries),
        route("/v1/contexts/{id}/entries/{type}/{key:path}", svc.entry, ["GET", "PUT", "DELETE"]),
        route("/v1/contexts/{id}/search", svc.search),
    ]
    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        svc.monitor.start()  # the recoverer's dry run, in its own thread, every interval
        try:
            yield
        finally:
            await run_in_threadpool(svc.monitor.stop)

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error},
                    lifespan=lifespan)
    app.state.service = svc
    if config.token is None:
        return app
    svc.auth = BearerAuth(app, config.token, public=("/v1/health",), on_error=error_response)
    return svc.auth
