"""One read engine: the planner, the executor, and a Dataset that only delegates to them."""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pytest
from frames import sensors
from test_reader import expected_rows

from chunkframe.core.errors import InvalidArgumentError
from chunkframe.dataset import Dataset
from chunkframe.read.engine import BINDING_ATTR, ReadEngine
from chunkframe.read.executor import Executor
from chunkframe.read.plan import plan_point, plan_rows, plan_scan, plan_span

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def df() -> pd.DataFrame:
    return sensors(5_000)


@pytest.fixture
def snap(client, df):
    client.ingest(df, "planned", chunk_rows=1_000, time_column="time", progress=False)
    return client.reader.snapshot("planned")


def test_plans_name_the_chunks_rows_and_columns_a_read_touches(snap):
    point = plan_point(snap, -1, "x")
    assert point.steps == [(4, 999, 1)] and point.columns == ["x"] and point.span == (4_999, 5_000)
    rows = plan_rows(snap, [4_500, 10, 10, -1], ["k", "x", "k"])
    assert rows.chunks == [0, 4] and rows.sns.tolist() == [4_500, 10, 10, 4_999]
    assert rows.wanted == [rows.snap.schema.names.index(c) for c in ("k", "x", "k")]
    assert rows.decode == sorted({rows.snap.schema.names.index(c) for c in ("k", "x")})
    span = plan_span(snap, 990, 2_010)
    assert span.steps == [(0, 990, 10), (1, 0, 1_000), (2, 0, 10)] and span.span == (990, 2_010)
    assert plan_span(snap, 7, 3).steps == [] and plan_span(snap, -10).span == (4_990, 5_000)
    times = pd.to_datetime(sensors(5_000)["time"])
    scan = plan_scan(snap, ["x"], date_range=(times.iloc[2_100], times.iloc[2_200]))
    assert scan.chunks == [2] and [s[0] for s in scan.skipped] == [0, 1, 3, 4]
    assert "time" in {snap.schema.names[j] for j in scan.decode}  # the filter's column too
    assert scan.schema.names == ["x"] and scan.schema.metadata == snap.schema.metadata


def test_plans_refuse_bad_arguments_before_any_fetch(client, snap):
    fetches = client.reader.fetches
    with pytest.raises(IndexError, match="valid serial numbers are 0 to 4999"):
        plan_point(snap, 5_000)
    with pytest.raises(TypeError, match="must be an integer"):
        plan_point(snap, 1.5)
    with pytest.raises(KeyError, match="has no column 'nope'"):
        plan_point(snap, 0, "nope")
    with pytest.raises(IndexError, match="out of range"):
        plan_rows(snap, [0, 5_000])
    with pytest.raises(ValueError, match="flat sequence"):
        plan_rows(snap, [[0, 1]])
    with pytest.raises(TypeError, match="start must be an integer"):
        plan_span(snap, "a")
    with pytest.raises(KeyError, match="has no column"):
        plan_span(snap, 0, 10, ["nope"])
    with pytest.raises(InvalidArgumentError):
        plan_scan(snap, where=pc.field("nope") > 1)
    with pytest.raises(ValueError, match="no serial numbers to group"):
        plan_span(snap, 0, 10).groups()
    assert client.reader.fetches == fetches


def test_the_executor_runs_each_kind_of_plan_and_refuses_another(client, snap, df):
    run = Executor(client.reader)
    pd.testing.assert_series_equal(run.point(plan_point(snap, 1_234)), df.iloc[1_234])
    assert run.point(plan_point(snap, 1_234, "x")) == df["x"].iloc[1_234]
    sns = np.random.default_rng(1).integers(0, 5_000, 300)
    pd.testing.assert_frame_equal(run.rows(plan_rows(snap, sns)), expected_rows(df, sns))
    want = df.iloc[990:2_010].copy()
    want.index = pd.RangeIndex(990, 2_010, name="sn")
    pd.testing.assert_frame_equal(run.span(plan_span(snap, 990, 2_010)), want)
    pd.testing.assert_frame_equal(run.frame(plan_scan(snap)), df, check_index_type=False)
    assert run.table(plan_scan(snap, ["x"])).num_rows == 5_000
    with pytest.raises(ValueError, match="runs rows plans, not a span plan; build it with "
                                         "plan_rows"):
        run.rows(plan_span(snap, 0, 10))
    with pytest.raises(ValueError, match="runs scan plans"):
        list(run.pieces(plan_rows(snap, [1])))


def test_engine_binds_frames_and_retries_a_superseded_read(client, df):
    client.ingest(df, "bound", chunk_rows=1_000, progress=False)
    engine = ReadEngine(client.reader, "bound", binding={"dataset": "bound", "client": "t"})
    assert engine.get_many([1]).attrs[BINDING_ATTR] == {"dataset": "bound", "client": "t"}
    assert BINDING_ATTR not in ReadEngine(client.reader, "bound").slice(0, 2).attrs
    assert engine.verify().empty and list(engine.chunk_frame()["rows"]) == [1_000] * 5


def test_dataset_keeps_no_read_logic_of_its_own():
    """Each read of Dataset is its docstring and one delegation to the read engine."""
    reads = ["get", "get_many", "slice", "iter_chunks", "to_pandas", "to_arrow", "to_batches",
             "to_dask", "cache_info", "row", "__arrow_c_stream__"]
    for name in reads:
        fn = inspect.unwrap(getattr(Dataset, name))
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        body = tree.body[0].body  # type: ignore[attr-defined]
        code = [node for node in body if not (isinstance(node, ast.Expr)
                                              and isinstance(node.value, ast.Constant))]
        assert len(code) == 1 and isinstance(code[0], ast.Return), name
        assert "self._reads." in ast.unparse(code[0]), name
    source = (ROOT / "chunkframe" / "dataset.py").read_text()
    imported = {node.module for node in ast.parse(source).body  # not those for type checks
                if isinstance(node, ast.ImportFrom) and node.module}
    assert not {m for m in imported if m.startswith("read.") and m != "read.engine"}
    for helper in ("_take", "_rows_taker", "_gather_by_chunk", "positions", "group_by_chunk"):
        assert helper not in source


def test_a_device_filter_reads_only_its_rows_and_skips_chunks_by_statistics(client):
    """``device=`` on any scan: rows compared as text (a str column as it is), and with a
    date range the chunks whose per-device statistics rule the device out are not fetched;
    the time mask is spared for chunks wholly in the range, with the same rows."""
    n = 3_000
    df = pd.DataFrame({"time": pd.date_range("2026-01-01", periods=n, freq="s", tz="UTC"),
                       "dev": pd.array(np.repeat(["a", "b", "c"], n // 3), dtype="str"),
                       "x": np.arange(n, dtype=float)})
    ds = client.ingest(df, "devs", chunk_rows=500, time_column="time", device_column="dev",
                       progress=False)
    got = ds.to_pandas(["x"], device="b")
    pd.testing.assert_frame_equal(got, df.loc[df.dev == "b", ["x"]])
    got = ds.to_pandas(device=["a", "c"])
    pd.testing.assert_frame_equal(got, df[df.dev.isin(["a", "c"])])
    before = ds.cache_info()
    span = ("2026-01-01 00:10", "2026-01-01 00:40")
    got = ds.to_arrow(["time", "x"], device="c", date_range=span).to_pandas()
    t = df.time.between(*(pd.Timestamp(s, tz="UTC") for s in span))
    want = df.loc[(df.dev == "c") & t, ["time", "x"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    assert ds.cache_info()["misses"] - before["misses"] == 1  # rows 2,000..2,400: chunk 4
    assert ds.cache_info()["skipped"] - before["skipped"] == 5
    whole = ds.to_pandas(["x"], device="a", date_range=("2025-12-31", "2026-01-02"))
    pd.testing.assert_frame_equal(whole, df.loc[df.dev == "a", ["x"]])
    with pytest.raises(InvalidArgumentError, match="no device column"):
        client.ingest(df, "nodev", time_column="time", progress=False).to_pandas(device="a")
