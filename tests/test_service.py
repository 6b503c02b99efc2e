"""The HTTP service against a real ``chunkframe serve`` process, and the remote client
against local reads of the same datasets (no TestClient: every route over a real socket)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from frames import all_dtypes, sensors
from servers import free_port

import chunkframe as cf
from chunkframe.core.model import ChunkMeta
from chunkframe.display.reprs import repr_html
from chunkframe.service.encoding import ARROW, frame_from_arrow, tag, untag

urllib3 = pytest.importorskip("urllib3")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

REPO = Path(__file__).resolve().parents[1]
TOKEN = "t0k-" + uuid.uuid4().hex
LIMITS = ["--max-batch", "1000", "--max-rows", "2000", "--max-body-bytes", "65536"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CHUNKFRAME_TOKEN"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra)
    return env


class ServeProcess:
    """``python -m chunkframe serve`` on a free loopback port, over the suite's Redis."""

    def __init__(self, settings: list[str], log: Path, token: str | None = None,
                 extra: tuple[str, ...] = (), port: int | None = None) -> None:
        self.settings, self.log, self.token, self.extra = settings, log, token, extra
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServeProcess:
        env = _env(**({"CHUNKFRAME_TOKEN": self.token} if self.token else {}))
        cmd = [sys.executable, "-m", "chunkframe", "serve", "--port", str(self.port),
               *self.settings, *self.extra]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        http = urllib3.PoolManager(retries=False)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chunkframe serve exited: {self.log.read_text()[-2000:]}")
            try:
                if http.request("GET", self.url + "/v1/health", timeout=1).status == 200:
                    return self
            except urllib3.exceptions.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"chunkframe serve did not answer: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


@pytest.fixture(scope="module")
def world(tmp_path_factory, redis_server):
    """A local client with the datasets the servers serve, and the settings to serve them."""
    home = tmp_path_factory.mktemp("svc")
    prefix = f"s{uuid.uuid4().hex[:10]}"
    settings = ["--home", str(home), "--store", str(home / "store"), "--redis", redis_server.url,
                "--catalog", str(home / "catalog.db"), "--prefix", prefix]
    local = cf.connect(store=home / "store", redis=redis_server.url, catalog=home / "catalog.db",
                       home=home, prefix=prefix)
    every = all_dtypes(3_000)
    local.ingest(every, "every", chunk_rows=700, progress=False)
    local.ingest(sensors(4_000), "sensors", chunk_rows=1_000, time_column="time",
                 device_column="dev", progress=False)
    local.open("every").tag("owner", "ana", keywords=["team-a"])
    local.open("every").tag("rows", 3_000, type="VARIABLE")
    local.ingest(pd.DataFrame({"x": np.arange(10.0), "y": np.arange(10.0) / 3}), "floats",
                 progress=False)
    return {"home": home, "settings": settings, "local": local, "every": every}


@pytest.fixture(scope="module")
def server(world):
    proc = ServeProcess(world["settings"], world["home"] / "serve.log", extra=tuple(LIMITS)).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def secured(world):
    proc = ServeProcess(world["settings"], world["home"] / "secured.log", token=TOKEN).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def http():
    return urllib3.PoolManager(retries=False)


def _get(http, url, path, accept="application/json", token=None, **kw):
    headers = {"Accept": accept, **({"Authorization": f"Bearer {token}"} if token else {})}
    return http.request("GET", url + path, headers=headers, **kw)


def _post(http, url, path, body, accept="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http.request("POST", url + path, body=data,
                        headers={"Accept": accept, "Content-Type": "application/json"})


def _error(r, status: int, name: str) -> dict:
    assert r.status == status, (r.status, r.data)
    assert r.headers["content-type"].startswith("application/json")
    body = json.loads(r.data)
    assert body["error"] == name and body["message"], body
    assert "Traceback" not in r.data.decode() and 'File "' not in r.data.decode()
    return body


# -- routes over a real socket ----------------------------------------------------------------

def test_health_datasets_and_metadata(server, http, world):
    r = _get(http, server.url, "/v1/health")
    assert r.status == 200 and json.loads(r.data) == {"status": "ok"}
    listed = json.loads(_get(http, server.url, "/v1/datasets").data)["datasets"]
    assert {d["id"] for d in listed} >= {"every", "sensors"}
    pd.testing.assert_frame_equal(
        frame_from_arrow(_get(http, server.url, "/v1/datasets", accept=ARROW).data),
        world["local"].datasets())
    info = json.loads(_get(http, server.url, "/v1/datasets/every").data)
    assert info["rows"] == 3_000 and info["chunks"] == 5 and info["columns"] == list(world["every"])
    assert info["limits"]["max_batch"] == 1_000 and info["created"].endswith("+00:00")


def test_get_value_json(server, http, world):
    row = json.loads(_get(http, server.url, "/v1/datasets/every/values/5").data)
    src = world["every"].iloc[5]
    assert list(row) == list(world["every"].columns)
    assert row["i"] == int(src["i"]) and type(row["i"]) is int
    assert row["tz"] == src["tz"].isoformat() and row["tz"].endswith("+01:00")
    assert row["t"] == src["t"].isoformat() and row["td"] == src["td"].isoformat()
    assert row["c"] == src["c"] and row["b"] is bool(src["b"])
    # NaN, NA and None are null; a nullable int stays an int
    nulls = {c: int(np.flatnonzero(world["every"][c].isna().to_numpy())[0])
             for c in ("ni", "nb", "f", "s")}
    for c, sn in nulls.items():
        got = json.loads(_get(http, server.url, f"/v1/datasets/every/values/{sn}?column={c}").data)
        assert got == {"value": None}
    some = int(np.flatnonzero(world["every"]["ni"].notna().to_numpy())[0])
    got = json.loads(_get(http, server.url, f"/v1/datasets/every/values/{some}?column=ni").data)
    assert type(got["value"]) is int and got["value"] == world["every"]["ni"][some]
    r = _get(http, server.url, "/v1/datasets/every/values/-1", accept=ARROW)  # exact dtypes
    assert r.headers["content-type"] == ARROW
    pd.testing.assert_frame_equal(frame_from_arrow(r.data),
                                  world["local"].open("every").get_many([2_999]))
    last = json.loads(_get(http, server.url, "/v1/datasets/every/values/-1?column=tz").data)
    assert last == {"value": world["every"]["tz"].iloc[-1].isoformat()}


def test_batch_values_json_and_arrow(server, http, world):
    ds = world["local"].open("every")
    body = {"sns": [2_999, 5, -1, 5, 1_400], "columns": ["i", "tz", "s"]}
    doc = json.loads(_post(http, server.url, "/v1/datasets/every/values", body).data)
    assert doc["columns"] == ["i", "tz", "s"] and doc["index"] == [2_999, 5, 2_999, 5, 1_400]
    assert doc["index_name"] == "sn"
    s5 = world["every"]["s"][5]
    assert doc["data"][1] == [int(world["every"]["i"][5]), world["every"]["tz"][5].isoformat(),
                              None if pd.isna(s5) else s5]
    r = _post(http, server.url, "/v1/datasets/every/values", body, accept=ARROW)
    assert r.headers["content-type"] == ARROW
    pd.testing.assert_frame_equal(frame_from_arrow(r.data), ds.get_many(body["sns"], body["columns"]))
    r = _post(http, server.url, "/v1/datasets/every/values", {"sns": list(range(0, 3_000, 7))},
              accept=ARROW)
    pd.testing.assert_frame_equal(frame_from_arrow(r.data), ds.get_many(range(0, 3_000, 7)))


def test_slice_and_last(server, http, world):
    local = world["local"]
    r = _get(http, server.url, "/v1/datasets/every/slice?start=690&stop=1410&columns=i,c,tz",
             accept=ARROW)
    pd.testing.assert_frame_equal(frame_from_arrow(r.data),
                                  local.open("every").slice(690, 1_410, ["i", "c", "tz"]))
    doc = json.loads(_get(http, server.url, "/v1/datasets/every/slice?start=-2").data)
    assert doc["index"] == [2_998, 2_999] and len(doc["columns"]) == 10
    doc = json.loads(_get(http, server.url, "/v1/datasets/sensors/last?device=d3").data)
    assert doc["columns"] == ["device", "measurement", "time", "value"]
    assert [r[:2] for r in doc["data"]] == [["d3", "x"], ["d3", "k"], ["d3", "s"]]
    r = _get(http, server.url, "/v1/datasets/sensors/last?columns=x&columns=s", accept=ARROW)
    pd.testing.assert_frame_equal(frame_from_arrow(r.data),
                                  local.open("sensors").last(columns=["x", "s"]))


def test_context_routes(server, http, world):
    base = server.url + "/v1/contexts/every/entries"
    doc = json.loads(_get(http, base, "").data)
    assert {"type": "METADATA", "key": "owner", "value": "ana"} in doc["entries"]
    r = http.request("PUT", base + "/DATA/region%2Fzone", body=json.dumps(
        {"value": {"name": "eu", "n": [1, 2]}, "keywords": ["europe"]}).encode())
    assert r.status == 200, r.data
    assert world["local"].context("every").get("region/zone") == {"name": "eu", "n": [1, 2]}
    got = json.loads(_get(http, base, "/DATA/region%2Fzone").data)
    assert got == {"value": {"name": "eu", "n": [1, 2]}}
    found = json.loads(_get(http, server.url, "/v1/contexts/every/search?keyword=europe").data)
    assert [e["key"] for e in found["entries"]] == ["region/zone"]
    assert http.request("DELETE", base + "/DATA/region%2Fzone").status == 200
    _error(_get(http, base, "/DATA/region%2Fzone"), 404, "ContextKeyError")
    _error(http.request("DELETE", base + "/DATA/region%2Fzone"), 404, "ContextKeyError")


# -- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path, body, status, name", [
    ("GET", "/v1/datasets/nope", None, 404, "DatasetNotFoundError"),
    ("GET", "/v1/datasets/nope/values/1", None, 404, "DatasetNotFoundError"),
    ("GET", "/v1/datasets/every/values/3000", None, 404, "IndexError"),
    ("GET", "/v1/datasets/every/values/-3001", None, 404, "IndexError"),
    ("GET", "/v1/datasets/every/values/1.5", None, 400, "InvalidArgumentError"),
    ("GET", "/v1/datasets/every/values/abc", None, 400, "InvalidArgumentError"),
    # only ASCII digits after an optional minus: int() would take all of these
    ("GET", "/v1/datasets/every/values/%20%207", None, 400, "InvalidArgumentError"),
    ("GET", "/v1/datasets/every/values/%D9%A3", None, 400, "InvalidArgumentError"),  # Arabic 3
    ("GET", "/v1/datasets/every/values/1_000", None, 400, "InvalidArgumentError"),
    ("GET", "/v1/datasets/every/values/+5", None, 400, "InvalidArgumentError"),
    ("GET", "/v1/datasets/every/values/7%0A", None, 400, "InvalidArgumentError"),
    ("GET", "/v1/datasets/every/slice?start=%2B5", None, 400, "InvalidArgumentError"),
    ("GET", "/v1/datasets/every/slice?stop=1_0", None, 400, "InvalidArgumentError"),
    ("GET", "/v1/datasets/every/values/1?column=zz", None, 404, "KeyError"),
    ("GET", "/v1/datasets/a%01b/values/1", None, 400, "InvalidDatasetIdError"),
    ("GET", "/v1/datasets/every/slice?start=x", None, 400, "InvalidArgumentError"),
    ("GET", "/v1/datasets/sensors/last?device=d99", None, 404, "KeyError"),
    ("GET", "/v1/contexts/every/entries/NOPE/k", None, 400, "ContextError"),
    ("GET", "/v1/contexts/every/search", None, 400, "InvalidArgumentError"),
    ("POST", "/v1/datasets/every/values", b"{not json", 400, "InvalidArgumentError"),
    ("POST", "/v1/datasets/every/values", {"rows": [1]}, 400, "InvalidArgumentError"),
    ("POST", "/v1/datasets/every/values", {"sns": ["1"]}, 400, "InvalidArgumentError"),
    ("POST", "/v1/datasets/every/values", {"sns": [True]}, 400, "InvalidArgumentError"),
    ("POST", "/v1/datasets/every/values", {"sns": [1, 9_999]}, 404, "IndexError"),
    ("POST", "/v1/datasets/every/values", {"sns": [1], "columns": "i"}, 400,
     "InvalidArgumentError"),
    ("POST", "/v1/datasets/every/values", {"sns": list(range(1_001))}, 413, "RequestTooLargeError"),
    ("POST", "/v1/datasets/every/values", {"sns": [1] * 30_000}, 413, "RequestTooLargeError"),
    ("GET", "/v1/datasets/every/slice?start=0&stop=2001", None, 413, "RequestTooLargeError"),
    ("GET", "/v1/nowhere", None, 404, "NotFound"),
    ("DELETE", "/v1/datasets/every", None, 405, "MethodNotAllowed"),
])
def test_error_codes(server, http, method, path, body, status, name):
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    r = http.request(method, server.url + path, body=data)
    _error(r, status, name)


def test_integers_in_urls_are_ascii_digits_and_json_depth_is_bounded(server, http, world):
    every = world["every"]
    for text, sn in (("007", 7), ("-1", 2_999), ("-0", 0)):  # -?[0-9]+: leading zeros too
        r = _get(http, server.url, f"/v1/datasets/every/values/{text}?column=i")
        assert json.loads(r.data) == {"value": int(every["i"].iloc[sn])}
    r = _get(http, server.url, "/v1/datasets/every/values/%D9%A3")
    assert "digits 0-9" in _error(r, 400, "InvalidArgumentError")["message"]
    # nested past MAX_JSON_DEPTH: refused before parsing (it was a RecursionError, a 500)
    for body in (b"[" * 30_000 + b"]" * 30_000, b'{"sns": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"):
        r = _post(http, server.url, "/v1/datasets/every/values", body)
        assert "levels deep" in _error(r, 400, "InvalidArgumentError")["message"]
    body = b'{"value": ' + b"[" * 63 + b"1" + b"]" * 63 + b"}"  # 64 levels: the most served
    assert http.request("PUT", server.url + "/v1/contexts/every/entries/DATA/deep",
                        body=body).status == 200
    r = http.request("PUT", server.url + "/v1/contexts/every/entries/DATA/deep",
                     body=b'{"value": ' + b"[" * 64 + b"]" * 64 + b"}")
    assert "65 levels deep" in _error(r, 400, "InvalidArgumentError")["message"]
    r = _post(http, server.url, "/v1/datasets/every/values", {"sns": [1], "columns": ["[[[["]})
    assert r.status == 404  # brackets inside strings do not count: parsed, then no such column


def test_a_client_gone_mid_body_logs_one_info_line_not_a_traceback(server, http, world):
    log = world["home"] / "serve.log"
    seen = log.read_text().count("disconnected before sending")
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.port)) as conn:
            conn.sendall(b"POST /v1/datasets/every/values HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                         b'{"sns": [1, 2,')
    deadline = time.monotonic() + 60  # a bound against hangs: the server logs it when it reads
    while (text := log.read_text()).count("disconnected before sending") < seen + 3:
        assert time.monotonic() < deadline, text[-2_000:]
        time.sleep(0.05)
    lines = [line for line in text.splitlines() if "disconnected before sending" in line]
    assert lines[-1].startswith("INFO:") and "POST /v1/datasets/every/values" in lines[-1]
    assert "Traceback" not in text and "ClientDisconnect" not in text
    assert _get(http, server.url, "/v1/health").status == 200


def test_body_over_the_bound_without_content_length(server, http):
    """A chunked upload is cut off at the bound too, not read to the end."""
    def pieces():
        yield b'{"sns": ['
        for _ in range(200):
            yield b"1," * 500
        yield b"1]}"

    r = http.request("POST", server.url + "/v1/datasets/every/values", body=pieces(),
                     chunked=True)
    _error(r, 413, "RequestTooLargeError")
    assert _get(http, server.url, "/v1/health").status == 200


def test_error_hints_name_routes_for_http_clients_and_calls_for_the_remote_one(server, http):
    body = _error(_get(http, server.url, "/v1/datasets/nope/values/1"), 404,
                  "DatasetNotFoundError")
    assert "GET /v1/datasets" in body["message"] and "cf.datasets()" not in body["message"]
    assert "cf.ingest(source, 'nope') on a local client (this server only reads)" in body["message"]
    body = _error(_get(http, server.url, "/v1/datasets/every/batches?date_range=[null,null]"),
                  400, "NoTimeColumnError")
    assert "?start=..." in body["message"] and "?stop=..." in body["message"]
    python = json.loads(http.request("GET", server.url + "/v1/datasets/nope", headers={
        "chunkframe-hints": "python"}).data)
    assert "cf.datasets()" in python["message"] and "GET /v1" not in python["message"]
    with pytest.raises(cf.DatasetNotFoundError, match=r"cf\.datasets\(\)"):
        cf.connect(server.url).open("nope")  # the remote client's users call Python


def test_chunk_table_and_arrow_stream_routes(server, http, world):
    local = world["local"].open("sensors")
    body = json.loads(_get(http, server.url, "/v1/datasets/sensors/chunks").data)
    assert [ChunkMeta.from_json(t) for t in body["chunks"]] == list(local.chunk_metas)
    r = _get(http, server.url, "/v1/datasets/sensors/batches?columns=x,dev", accept=ARROW)
    assert r.status == 200 and r.headers["content-type"] == ARROW
    assert pa.ipc.open_stream(r.data).read_all().equals(local.to_arrow(["x", "dev"]))
    span = json.dumps(["2026-01-01 00:10", None])
    r = _get(http, server.url, "/v1/datasets/sensors/batches", accept=ARROW,
             fields={"date_range": span, "index": "1"})
    got = pa.ipc.open_stream(r.data).read_all().to_pandas()
    want = local.to_pandas(date_range=("2026-01-01 00:10", None))
    pd.testing.assert_frame_equal(got, want.rename_axis("sn"), check_index_type=False)
    for query, status, name in (("date_range=[1", 400, "InvalidArgumentError"),
                                ("index=maybe", 400, "InvalidArgumentError"),
                                ("columns=zz", 404, "KeyError"),
                                ('date_range=["x", null]', 400, "InvalidArgumentError")):
        _error(_get(http, server.url, f"/v1/datasets/sensors/batches?{query}"), status, name)
    _error(_get(http, server.url, "/v1/datasets/every/batches?date_range=[null,null]"), 400,
           "NoTimeColumnError")
    _error(_get(http, server.url, "/v1/datasets/nope/chunks"), 404, "DatasetNotFoundError")


def test_corrupt_chunk_is_500_and_other_chunks_still_served(server, http, world):
    local = world["local"]
    ds = local.ingest(pd.DataFrame({"x": np.arange(500)}), "fragile", chunk_rows=100,
                      progress=False)
    key = ds.chunks["key"][2]
    data = local.store.get(key)
    local.store.put(key, data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF])
                    + data[len(data) // 2 + 1:])
    body = _error(_get(http, server.url, "/v1/datasets/fragile/values/250"), 500,
                  "ChunkCorruptionError")
    assert "'fragile'" in body["message"] and "chunk 2" in body["message"]
    assert body["details"]["chunk"] == 2 and body["details"]["key"] == key
    assert json.loads(_get(http, server.url, "/v1/datasets/fragile/values/50").data) == {"x": 50}
    assert json.loads(_get(http, server.url, "/v1/datasets/fragile/values/450").data) == {"x": 450}
    remote = cf.connect(server.url).open("fragile")
    with pytest.raises(cf.ChunkCorruptionError) as err:
        remote.get(201)
    assert (err.value.dataset, err.value.chunk, err.value.key) == ("fragile", 2, key)
    assert remote.get(499, "x") == 499


# -- auth -------------------------------------------------------------------------------------

def test_auth_on(secured, http, world):
    assert _get(http, secured.url, "/v1/health").status == 200  # no auth
    for path in ("/v1/datasets", "/v1/datasets/every/values/1", "/v1/contexts/every/entries"):
        r = _get(http, secured.url, path)
        _error(r, 401, "AuthenticationError")
        assert r.headers["www-authenticate"] == "Bearer"
        _error(_get(http, secured.url, path, token=TOKEN[:-1] + "x"), 401, "AuthenticationError")
        assert _get(http, secured.url, path, token=TOKEN).status == 200
    r = http.request("POST", secured.url + "/v1/datasets/every/values", body=b'{"sns": [1]}',
                     headers={"Authorization": f"Bearer {TOKEN}x"})
    _error(r, 401, "AuthenticationError")
    with pytest.raises(cf.service.AuthenticationError):
        cf.connect(secured.url, token="wrong").open("every")
    remote = cf.connect(secured.url, token=TOKEN)
    assert TOKEN not in repr(remote) and TOKEN not in repr(remote.open("every"))
    assert remote.open("every").get(3, "i") == world["every"]["i"][3]
    assert TOKEN not in (world["home"] / "secured.log").read_text()
    assert TOKEN not in repr(cf.service.ServiceConfig(token=TOKEN))


def test_auth_off_serves_without_a_token(server, http):
    assert _get(http, server.url, "/v1/datasets/every/values/1").status == 200


def test_refuses_a_public_address_without_a_token(world):
    from chunkframe.service.run import check_bind, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::")
    with pytest.raises(cf.InvalidArgumentError, match="without a token"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "secret")
    check_bind("127.0.0.1", None)
    r = subprocess.run([sys.executable, "-m", "chunkframe", "serve", "--host", "0.0.0.0",
                        "--port", str(free_port()), *world["settings"]],
                       env=_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "refusing to serve on '0.0.0.0' without a token" in r.stderr


def test_serve_without_the_extra_names_it(world):
    code = ("import sys; sys.modules['uvicorn'] = None; from chunkframe.frontends.cli import main; "
            f"sys.exit(main(['serve', '--port', '{free_port()}'] + {world['settings']!r}))")
    r = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "pip install 'chunkframe[service]'" in r.stderr


# -- the remote client ------------------------------------------------------------------------

def _same_value(a, b) -> None:
    assert type(a) is type(b), (a, b)
    assert (a is b) or (pd.isna(a) and pd.isna(b)) or a == b, (a, b)


def test_remote_reads_equal_local_on_every_dtype(server, world):
    local = world["local"].open("every")
    client = cf.connect(server.url)
    assert isinstance(client, cf.service.RemoteClient)
    remote = cf.open("every")
    assert len(remote) == len(local) and remote.columns == local.columns
    for sn in (0, 5, 699, 700, 1_500, 2_999, -1, -3_000):
        got, want = remote.get(sn), local.get(sn)
        pd.testing.assert_series_equal(got, want)
        for a, b in zip(got, want, strict=True):
            _same_value(a, b)
        for c in local.columns:
            _same_value(remote.get(sn, c), local.get(sn, c))
    for c in local.columns:  # a missing value of each column, whole row and alone
        missing = np.flatnonzero(world["every"][c].isna().to_numpy())
        for sn in missing[:1]:
            _same_value(remote.get(int(sn), c), local.get(int(sn), c))
            pd.testing.assert_series_equal(remote.get(int(sn)), local.get(int(sn)))
    floats = world["local"].open("floats")  # a row of one dtype keeps it: float64, not object
    pd.testing.assert_series_equal(cf.open("floats").get(3), floats.get(3))
    assert cf.open("floats").get(3).dtype == np.float64
    rng = np.random.default_rng(3)
    sns = rng.integers(-3_000, 3_000, 2_500)  # over the server's batch bound: split
    pd.testing.assert_frame_equal(remote.get_many(sns), local.get_many(sns))
    pd.testing.assert_frame_equal(remote.get_many([7, 7, 1], ["tz", "c", "tz"]),
                                  local.get_many([7, 7, 1], ["tz", "c", "tz"]))
    pd.testing.assert_frame_equal(remote.get_many([]), local.get_many([]))
    for a, b in ((None, None), (10, 2_500), (-50, None), (2_900, 10), (0, 3_000)):
        pd.testing.assert_frame_equal(remote.slice(a, b), local.slice(a, b))
    pd.testing.assert_frame_equal(remote.slice(100, 200, ["s", "ni"]),
                                  local.slice(100, 200, ["s", "ni"]))
    for n in (0, 3, 2_999, 5_000):
        pd.testing.assert_frame_equal(remote.head(n), local.head(n))
        pd.testing.assert_frame_equal(remote.tail(n), local.tail(n))
    pd.testing.assert_frame_equal(remote.tail(columns=["s"]), local.tail(columns=["s"]))
    with pytest.raises(cf.InvalidArgumentError, match="n of tail"):
        remote.tail(-1)
    pd.testing.assert_frame_equal(remote.to_pandas(), local.to_pandas())
    pd.testing.assert_frame_equal(remote.to_pandas(), world["every"])
    pd.testing.assert_frame_equal(remote.to_pandas(["td", "nb"]), local.to_pandas(["td", "nb"]))
    with pytest.raises(IndexError, match="out of range"):
        remote.get(3_000)
    with pytest.raises(KeyError, match="no column 'zz'"):
        remote.get(1, "zz")
    with pytest.raises(TypeError):
        remote.get("1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="flat"):
        remote.get_many([[1, 2]])
    with pytest.raises(cf.DatasetNotFoundError, match="no complete dataset 'nope'"):
        cf.open("nope")
    assert "every" in remote._repr_html_() and "3,000" in remote._repr_html_()
    assert "3,000 rows" in repr(remote)
    pd.testing.assert_frame_equal(client.datasets(), world["local"].datasets())


def test_remote_last_tags_find_and_context(server, world):
    local = world["local"]
    remote = cf.connect(server.url).open("sensors")
    pd.testing.assert_frame_equal(remote.last(), local.open("sensors").last())
    page = repr_html(remote.last())  # the notebook repr, as a local dataset's
    assert page is not None and page == repr_html(local.open("sensors").last())
    pd.testing.assert_frame_equal(remote.last("d2", "x"), local.open("sensors").last("d2", "x"))
    pd.testing.assert_frame_equal(remote.last(["d4", "d1"]), local.open("sensors").last(["d4", "d1"]))
    every = cf.connect(server.url).open("every")
    pd.testing.assert_frame_equal(every.tags(), local.open("every").tags())
    pd.testing.assert_frame_equal(every.find("team-a"), local.open("every").find("team-a"))
    every.tag("checked", True, keywords=["qa"])
    assert cf.Client(local.settings).context("every").get("checked") is True  # written through
    assert every.context.get("checked") is True and every.context["rows"] == 3_000
    pd.testing.assert_frame_equal(every.tags("VARIABLE"), local.open("every").tags("VARIABLE"))
    every.context.remove("checked")
    assert every.context.get("checked") is None and every.context.get("checked", 0) == 0
    with pytest.raises(KeyError):
        every.context["checked"]


def test_find_and_versions_over_the_socket(server, http, world):
    local = world["local"]
    local.context("analysis-7").put("owner", "team-a and friends", keywords=["team-a"])
    remote = cf.connect(server.url)
    pd.testing.assert_frame_equal(remote.find("team-a"), local.find("team-a"))
    pd.testing.assert_frame_equal(remote.find("team-a", type="METADATA"),
                                  local.find("team-a", type="METADATA"))
    assert set(remote.find("team-a")["context"]) >= {"analysis-7", "every"}
    assert remote.find("no-such-word").empty
    body = json.loads(_get(http, server.url, "/v1/find?keyword=team-a").data)
    assert {e["context"] for e in body["entries"]} >= {"analysis-7", "every"}
    _error(_get(http, server.url, "/v1/find"), 400, "InvalidArgumentError")
    _error(_get(http, server.url, "/v1/find?keyword=x&type=NOPE"), 400, "ContextError")
    pd.testing.assert_frame_equal(remote.open("sensors").versions(),
                                  local.open("sensors").versions())
    _error(_get(http, server.url, "/v1/datasets/nope/versions"), 404, "DatasetNotFoundError")


def test_remote_open_takes_versions_and_refuses_bad_ids_as_local_does(server, http, world):
    local, remote = world["local"], cf.connect(server.url)
    for bad in ("a/b", "", "a\x01b"):
        for client in (local, remote):
            with pytest.raises(cf.InvalidDatasetIdError):
                client.open(bad)
    with pytest.raises(cf.InvalidDatasetIdError):
        cf.open("a/b")  # the default client is the remote one
    for asked in ({"version": 1}, {"version": np.int64(1)}, {"as_of": pd.Timestamp.now("UTC")}):
        pd.testing.assert_frame_equal(cf.open("every", **asked).to_pandas(), world["every"])
    ds = remote.open("every")  # numpy integers, as local reads take them
    pd.testing.assert_series_equal(ds.get(np.int64(5)), local.open("every").get(5))
    pd.testing.assert_frame_equal(ds.slice(np.int32(5), np.uint64(9)),
                                  local.open("every").slice(5, 9))
    doc = json.loads(_get(http, server.url, "/v1/datasets/every?version=1").data)
    assert doc["version"] == 1 and doc["read_only"] is True
    assert json.loads(_get(http, server.url, "/v1/datasets/every/values/3?version=1&column=i")
                      .data) == {"value": int(world["every"]["i"].iloc[3])}
    _error(_get(http, server.url, "/v1/datasets/every/values/3?version=7"), 404,
           "VersionNotFoundError")
    _error(_get(http, server.url, "/v1/datasets/every/values/3?version=x"), 400,
           "InvalidArgumentError")
    _error(_get(http, server.url, "/v1/datasets/every?version=1&as_of=2026-01-01"), 400,
           "InvalidArgumentError")


def test_remote_writes_are_local_only(server):
    client = cf.connect(server.url)
    ds = client.open("every")
    assert client.exists("every") and not client.exists("nope")
    for call in (lambda: ds.append(pd.DataFrame({"i": [1]})), lambda: ds.delete(),
                 lambda: cf.ingest(pd.DataFrame({"a": [1]}), "x"), lambda: client.drop("every"),
                 lambda: client.snapshot("s"), lambda: client.delete_snapshot("s")):
        with pytest.raises(cf.service.ReadOnlyError, match="local-only"):
            call()


def test_remote_client_when_the_server_is_down():
    client = cf.connect(f"http://127.0.0.1:{free_port()}", retries=1)
    with pytest.raises(cf.BackendUnavailableError, match="cannot be reached.*chunkframe serve"):
        client.open("every")
    with pytest.raises(TypeError, match="drop redis"):
        cf.connect("http://127.0.0.1:1", redis="redis://x")


@pytest.mark.slow
def test_server_restart_while_a_client_is_connected(world):
    proc = ServeProcess(world["settings"], world["home"] / "restart.log").start()
    try:
        remote = cf.connect(proc.url).open("every")
        assert remote.get(10, "i") == world["every"]["i"][10]
        proc.stop()
        with pytest.raises(cf.BackendUnavailableError):
            remote.get(11)
        proc.start()  # same port
        assert remote.get(12, "i") == world["every"]["i"][12]  # the pool reconnects
        pd.testing.assert_frame_equal(remote.get_many([1, 2]),
                                      world["local"].open("every").get_many([1, 2]))
    finally:
        proc.stop()


@pytest.mark.slow
def test_workers_serve_the_same_data(world):
    proc = ServeProcess(world["settings"], world["home"] / "workers.log",
                        extra=("--workers", "2")).start()
    try:
        remote = cf.connect(proc.url).open("every")
        for sn in range(0, 3_000, 300):
            assert remote.get(sn, "i") == world["every"]["i"][sn]
    finally:
        proc.stop()


@pytest.mark.slow
def test_workers_take_the_s3_endpoint_from_the_environment(tmp_path, redis_server, prefix,
                                                          s3_client, s3_bucket, s3_options,
                                                          monkeypatch):
    """CHUNKFRAME_STORAGE_OPTIONS reaches every worker of `serve --workers 2`: without it
    they would look for the bucket on AWS's public host."""
    s3_client.ingest(pd.DataFrame({"i": np.arange(1_000)}), "ons3", chunk_rows=100,
                     progress=False)
    monkeypatch.setenv("CHUNKFRAME_STORAGE_OPTIONS", json.dumps(s3_options))
    settings = ["--home", str(tmp_path), "--store", f"s3://{s3_bucket}/chunks",
                "--redis", redis_server.url, "--catalog", str(tmp_path / "catalog.db"),
                "--prefix", prefix]
    proc = ServeProcess(settings, tmp_path / "s3.log", extra=("--workers", "2")).start()
    try:
        http = urllib3.PoolManager(retries=False)
        for sn in range(50, 1_000, 100):  # new connections: both workers read chunks
            r = http.request("GET", f"{proc.url}/v1/datasets/ons3/values/{sn}",
                             headers={"Connection": "close"})
            assert r.status == 200, r.data[:300]
            assert json.loads(r.data)["i"] == sn
    finally:
        proc.stop()

def _rss_kb(pid: int) -> dict[str, int]:
    """A process's resident ``RssAnon`` and ``RssFile`` in kB (Linux /proc)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile"):
            out[key] = int(value.split()[0])
    return out


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_workers_map_the_chunk_files_instead_of_copying_them(world):
    """Each worker caches the chunks it reads as maps of the files: their pages are the OS
    page cache's, shared by every worker, not a private copy per worker."""
    psutil = pytest.importorskip("psutil")
    big = pd.DataFrame({"x": np.random.default_rng(3).normal(size=8_000_000)})  # 64 MB
    world["local"].ingest(big, "big", chunk_rows=400_000, progress=False, mode="overwrite")
    proc = ServeProcess(world["settings"], world["home"] / "mapped.log",
                        extra=("--workers", "2")).start()
    try:
        assert proc.proc is not None
        workers = [c.pid for c in psutil.Process(proc.proc.pid).children(recursive=True)
                   if "chunkframe" in " ".join(c.cmdline()) or c.name().startswith("python")]
        assert workers, "no worker processes found"
        before = {pid: _rss_kb(pid) for pid in workers}
        http = urllib3.PoolManager(retries=False, maxsize=8)
        for _ in range(20):  # new connections: requests spread over both workers
            for sn in range(0, 8_000_000, 400_000):  # a row of every chunk (no batch planes)
                r = http.request("GET", f"{proc.url}/v1/datasets/big/values/{sn}",
                                 headers={"Connection": "close"})
                assert r.status == 200, r.data[:300]
        after = {pid: _rss_kb(pid) for pid in workers}
        grown = {pid: {k: after[pid][k] - before[pid][k] for k in ("RssAnon", "RssFile")}
                 for pid in workers}
        readers = [g for g in grown.values() if g["RssFile"] > 56 * 1024]
        assert readers, grown  # at least one worker holds the whole dataset...
        for g in readers:  # ...as file pages; its private memory grew by first-use set-up
            assert g["RssAnon"] < 24 * 1024, grown  # (~5-10 MB), not by a 64 MB copy
    finally:
        proc.stop()


# -- encodings --------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    None, 1, -2**62, 1.5, float("nan"), float("inf"), "δέλτα", True, pd.NA, pd.NaT,
    pd.Timestamp("2026-01-01 12:00:00.123456789", tz="Europe/Paris"),
    pd.Timestamp("2026-01-01").as_unit("s"), pd.Timedelta("1 days 00:00:01.5"),
    np.int32(7), np.float32(0.5), np.bool_(True), {"a": [1, {"$x": 2}]}, [1, "a", None],
])
def test_typed_json_round_trips(value):
    back = untag(json.loads(json.dumps(tag(value), allow_nan=False)))
    assert type(back) is type(value)
    if isinstance(value, float) and np.isnan(value):
        assert np.isnan(back)
    elif value is pd.NA or value is pd.NaT or value is None:
        assert back is value
    else:
        assert back == value
        if isinstance(value, (pd.Timestamp, pd.Timedelta)):
            assert back.unit == value.unit and str(getattr(back, "tz", None)) == str(
                getattr(value, "tz", None))
