"""Background health: `chunkframe serve` runs the recoverer's dry run every interval and
`/v1/health?detail=1` returns its last report; plain `/v1/health` stays as cheap as before."""

from __future__ import annotations

import json
import time
import uuid

import pandas as pd
import pytest
from frames import sensors

import chunkframe as cf
from chunkframe.frontends.cli import main
from chunkframe.service.config import ServiceConfig
from chunkframe.service.health import HealthMonitor, check_interval

urllib3 = pytest.importorskip("urllib3")
pytest.importorskip("uvicorn")
from test_service import ServeProcess  # noqa: E402 - after the skips, as test_service does

TOKEN = "t0k-" + uuid.uuid4().hex


def until(condition, what: str, limit: float = 60.0):
    """Poll ``condition`` until it returns something true; fail saying ``what`` if it never
    does (a bound against hangs, not a measurement)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        got = condition()
        if got:
            return got
        time.sleep(0.1)
    pytest.fail(f"never saw {what}")


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "60", True, None])
def test_a_bad_interval_is_refused_with_the_fix(bad):
    with pytest.raises(cf.InvalidArgumentError, match=r"finite number of seconds >= 0 \(0 turns"):
        check_interval(bad)
    with pytest.raises(cf.InvalidArgumentError, match="--health-interval 60"):
        ServiceConfig(health_interval=bad)


def test_serve_refuses_a_negative_interval_before_serving(capsys):
    assert main(["--json", "serve", "--health-interval", "-5"]) != 0
    error = json.loads(capsys.readouterr().out)
    assert error["error"] == "InvalidArgumentError"
    assert "health check interval" in error["message"] and "got -5.0" in error["message"]


def test_a_failing_check_is_reported_and_the_next_one_runs():
    answers = [RuntimeError("Redis went away"),
               pd.DataFrame({"dataset": ["d"], "problem": ["orphan_files"], "action": ["a"],
                             "detail": ["x"], "applied": [False]})]

    def check() -> pd.DataFrame:
        got = answers.pop(0) if answers else pd.DataFrame(columns=["dataset", "problem",
                                                                    "action", "detail"])
        if isinstance(got, Exception):
            raise got
        return got

    monitor = HealthMonitor(check, 0.05)
    assert monitor.report() == {"interval": 0.05, "checked_at": None, "clean": None,
                                "problems": [], "error": None, "seconds": None}
    failed = monitor.run_once()
    assert failed["error"] == "RuntimeError: Redis went away" and failed["clean"] is False
    monitor.start()
    try:
        until(lambda: monitor.report()["clean"] is True, "a clean check after the failures")
    finally:
        monitor.stop()
    assert not answers  # the problem report came in between
    assert HealthMonitor(check, 0).start() is None  # 0: no thread at all


@pytest.fixture
def served(tmp_path, own_redis, prefix):
    home = tmp_path
    local = cf.connect(store=home / "store", redis=own_redis.url, catalog=home / "catalog.db",
                       home=home, prefix=prefix)
    local.ingest(sensors(3_000, devices=3), "sensors", chunk_rows=1_000, time_column="time",
                 device_column="dev", progress=False)
    local.context("analysis").put("owner", "ana")
    settings = ["--home", str(home), "--store", str(home / "store"), "--redis",
                own_redis.url, "--catalog", str(home / "catalog.db"), "--prefix", prefix]
    proc = ServeProcess(settings, home / "serve.log", token=TOKEN,
                        extra=("--health-interval", "0.3")).start()
    yield local, proc
    proc.stop()


def test_health_detail_over_a_real_server(served, own_redis):
    local, server = served
    http = urllib3.PoolManager(retries=False)
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def detail() -> dict:
        r = http.request("GET", server.url + "/v1/health?detail=1", headers=auth)
        assert r.status == 200, r.data
        return json.loads(r.data)["health"]

    plain = http.request("GET", server.url + "/v1/health")  # no token needed, no work done
    assert plain.status == 200 and plain.data == b'{"status":"ok"}'
    assert http.request("GET", server.url + "/v1/health?detail=0").data == b'{"status":"ok"}'
    refused = http.request("GET", server.url + "/v1/health?detail=1")
    assert refused.status == 401 and b"health detail names datasets" in refused.data
    bad = http.request("GET", server.url + "/v1/health?detail=maybe", headers=auth)
    assert bad.status == 400 and b"detail='maybe' is not one of" in bad.data

    first = until(lambda: (d := detail())["checked_at"] and d, "a first check")
    assert first["clean"] is True and first["problems"] == [] and first["interval"] == 0.3

    # problems made after start: seen once the interval passed, never repaired by it
    keys = local.state.keys("sensors")
    local.redis.delete(keys.last)
    local.redis.delete(f"{local.settings.prefix}:ctx:{{analysis}}:entries")
    seen = until(lambda: (d := detail())["problems"] and d, "the problems in the detail")
    assert seen["clean"] is False and seen["error"] is None
    assert [(p["dataset"], p["problem"]) for p in seen["problems"]] == [
        ("analysis", "context_missing"), ("sensors", "last_values_missing")]
    assert set(seen["problems"][0]) == {"dataset", "problem", "action", "detail"}
    assert not local.redis.exists(keys.last)  # a dry run: nothing applied

    # a check that fails (Redis stopped) is reported, and the server goes on answering
    own_redis.stop()
    try:
        failed = until(lambda: (d := detail())["error"] and d, "the failed check in the detail")
        assert failed["clean"] is False and failed["problems"] == []
        assert failed["error"].startswith("ConnectionError: "), failed["error"]
        assert http.request("GET", server.url + "/v1/health").status == 200
    finally:
        own_redis.start()
    assert local.recover(apply=True)["applied"].all()
    until(lambda: detail()["clean"] is True, "a clean check after the repair")
    assert server.proc is not None and server.proc.poll() is None
