"""Ingest and reads on Dask: a real LocalCluster of 2 worker processes, the suite's real Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from crash_worker import source_frame

import chunkframe as cf
from chunkframe.core.errors import BackendUnavailableError, LockLostError, SchemaMismatchError
from chunkframe.core.keys import RedisKeys
from chunkframe.ingestion.distributed import persist_partition
from chunkframe.ingestion.pipeline import Plan
from chunkframe.storage.codec import to_arrow

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

HERE = Path(__file__).parent
pytestmark = pytest.mark.filterwarnings("ignore:Sending large graph:UserWarning")


def test_ingest_without_a_client_says_how_to_start_one(client) -> None:
    """No distributed.Client in this process: a clear error, and nothing is written."""
    with pytest.raises(ValueError):
        distributed.default_client()  # the module's cluster is not started yet
    ddf = dd.from_pandas(pd.DataFrame({"a": range(10)}), npartitions=2)
    with pytest.raises(BackendUnavailableError, match=r"'nocluster'.*Client\(\)"):
        cf.ingest(ddf, "nocluster")
    assert cf.datasets().empty


def test_aggregations_on_dask_without_a_client_say_how_to_start_one(client) -> None:
    from test_aggregate import frame

    with pytest.raises(ValueError):
        distributed.default_client()  # the module's cluster is not started yet
    ds = client.ingest(frame(300, 1), "dnoagg", chunk_rows=100, time_column="time",
                       device_column="device", progress=False)
    with pytest.raises(BackendUnavailableError, match=r"resampling dataset 'dnoagg'.*Client\(\)"):
        ds.resample("h", engine="dask")
    with pytest.raises(BackendUnavailableError, match=r"aggregating dataset 'dnoagg'"):
        ds.aggregate("device", {"x": "sum"}, engine="dask")
    with pytest.raises(cf.InvalidArgumentError, match="engine='spark' is not one of None"):
        ds.aggregate("device", {"x": "sum"}, engine="spark")
    assert client.reader.fetches == 0  # refused before anything was read


@pytest.fixture(scope="module")
def dask_client() -> Iterator[distributed.Client]:
    """2 worker processes of one thread each; the workers import this worktree's chunkframe
    (PYTHONPATH) and reach Redis by its unix socket URL."""
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       dashboard_address=":0")
    dc = distributed.Client(cluster)
    yield dc
    dc.close()
    cluster.close()


def frames(rows: int, partitions: int) -> tuple[pd.DataFrame, object]:
    """The crash tests' source, and a dask frame of it in partitions of uneven lengths."""
    df = source_frame(rows)
    inner = np.random.default_rng(7).choice(np.arange(1, rows - 1), partitions - 1, replace=False)
    cuts = sorted({0, rows - 1, *inner.tolist()})
    return df, dd.from_pandas(df, npartitions=partitions).repartition(divisions=cuts)


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Equal frames, but for text: dask makes it pyarrow-backed (its ``convert-string``)."""
    text = {c: got[c].dtype for c in want.columns if want[c].dtype == "str"}
    pd.testing.assert_frame_equal(got, want.astype(text), check_index_type=False,
                                  check_names=False)


def chunk_count(ddf, chunk_rows: int) -> int:
    """The chunks an ingest cuts: each partition is cut on its own."""
    return sum(-(-n // chunk_rows) for n in ddf.map_partitions(len).compute().tolist())


def referenced_keys(ds) -> list[str]:
    return ds.chunks["key"].tolist()


def test_ingest_of_a_dask_frame_equals_the_concatenation(dask_client, client) -> None:
    df, ddf = frames(20_000, 5)
    lengths = ddf.map_partitions(len).compute().tolist()
    ds = cf.ingest(ddf, "parts", chunk_rows=1_500)
    expected = ddf.compute().reset_index(drop=True)
    pd.testing.assert_frame_equal(ds.to_pandas(), expected, check_index_type=False)
    # chunks are cut per partition, numbered and serial-numbered in partition order
    starts, sn = [], 0
    for n in lengths:
        starts += list(range(sn, sn + n, 1_500))
        sn += n
    assert ds.chunks["start"].tolist() == starts
    assert ds.versions()["version"].tolist() == [1]
    keys = referenced_keys(ds)
    assert len(set(keys)) == len(keys) == sum(-(-n // 1_500) for n in lengths)
    assert ds.verify().empty
    # the same frame again with mode="resume" finds it complete: nothing written
    assert cf.ingest(ddf, "parts", chunk_rows=1_500, mode="resume").chunks["key"].tolist() == keys
    # an append continues the serial numbers; versions count it
    more = cf.ingest(ddf.head(3_000, npartitions=-1, compute=False), "parts", mode="append")
    assert len(more) == 23_000 and more.versions()["version"].tolist() == [1, 2]


def test_ingest_of_csv_files_with_engine_dask(dask_client, client, tmp_path: Path) -> None:
    paths = []
    for i in range(4):
        part = pd.DataFrame({"k": np.arange(i * 1000, i * 1000 + 700 + 100 * i),
                             "x": np.linspace(0, 1, 700 + 100 * i), "s": f"file{i}"})
        paths.append(tmp_path / f"p{i}.csv")
        part.to_csv(paths[-1], index=False)
    ds = cf.ingest([str(p) for p in paths], "csvs", chunk_rows=500, engine="dask")
    expected = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    pd.testing.assert_frame_equal(ds.to_pandas(), expected, check_index_type=False,
                                  check_dtype=False)
    # read on the workers by chunkframe's own reader: the types of a single-process ingest
    single = cf.ingest(str(tmp_path / "p*.csv"), "csvs-single", chunk_rows=500)
    pd.testing.assert_frame_equal(ds.to_pandas(), single.to_pandas())
    assert ds.chunks["start"].tolist() == [0, 500, 700, 1200, 1500, 2000, 2400, 2900]
    # a glob is expanded in sorted order, one partition per file; resume finds it complete
    globbed = cf.ingest(str(tmp_path / "p*.csv"), "csvs", chunk_rows=500, engine="dask",
                        mode="resume")
    assert globbed.chunks["key"].tolist() == ds.chunks["key"].tolist()
    with pytest.raises(cf.InvalidArgumentError, match="engine='spark'.*'csvs2'"):
        cf.ingest(str(paths[0]), "csvs2", engine="spark")
    with pytest.raises(cf.SourceError, match="no files.*'csvs3'"):
        cf.ingest([], "csvs3", engine="dask")
    with pytest.raises(cf.SourceError, match="no files match.*missing"):
        cf.ingest([str(paths[0]), str(tmp_path / "missing.csv")], "csvs4", engine="dask")
    (tmp_path / "bad.csv").write_text("k,x\n1,2\n3\n")
    with pytest.raises(cf.ChunkFrameError, match="bad.csv"):
        cf.ingest([str(paths[0]), str(tmp_path / "bad.csv")], "csvs5", engine="dask")
    assert not {"csvs4", "csvs5"} & set(cf.datasets()["id"])
    assert list(client.store.list("csvs5")) == []


def test_to_dask_answers_equal_pandas(dask_client, client) -> None:
    df = source_frame(12_000)
    ds = cf.ingest(df, "reads", chunk_rows=1_000, time_column="time", device_column="device")
    ddf = ds.to_dask()
    assert ddf.npartitions == 12 and ddf.known_divisions
    assert ddf.divisions == (*range(0, 12_000, 1_000), 11_999)
    assert ddf.index.name == "sn"
    assert_same(ddf.compute(), ds.to_pandas())
    assert ddf.value.mean().compute() == pytest.approx(df.value.mean())
    pd.testing.assert_series_equal(
        ddf.groupby("device", observed=True).value.sum().compute().sort_index(),
        df.groupby("device", observed=True).value.sum(), check_exact=False, check_names=False)
    hot = ddf[(ddf.value > 1) & (ddf.label == "r5")].compute()
    assert_same(hot, df[(df.value > 1) & (df.label == "r5")])
    assert ddf.loc[2_995:3_004].compute()["id"].tolist() == list(range(2_995, 3_005))
    # columns= projects, in the order asked
    two = ds.to_dask(["value", "id"])
    assert list(two.columns) == ["value", "id"]
    assert list(two.compute().columns) == ["value", "id"]
    with pytest.raises(KeyError, match="'reads' has no column 'nope'"):
        ds.to_dask(["nope"])
    # deletes (tombstones) apply, as in to_pandas
    ds.delete(device="dev3", date_range=(df.time[0], df.time[5_000]))
    assert_same(ds.to_dask().compute(), ds.to_pandas())
    assert ds.to_dask()["value"].count().compute() == ds.to_pandas()["value"].count()


def test_partitions_that_do_not_match_the_meta_are_refused(dask_client, client) -> None:
    from dask import delayed

    good = pd.DataFrame({"a": np.arange(5, dtype="int64"), "b": 1.5})
    bad = pd.DataFrame({"a": ["x", "y"], "b": [1.0, 2.0]})
    ddf = dd.from_delayed([delayed(good), delayed(bad)], meta=good.iloc[:0], verify_meta=False)
    with pytest.raises(SchemaMismatchError, match=r"'mixed'.*partition 1 .*column 'a'"):
        cf.ingest(ddf, "mixed", chunk_rows=2)
    assert "mixed" not in cf.datasets()["id"].tolist()
    assert list(client.store.list("mixed")) == []
    assert not client.redis.keys(f"{client.settings.prefix}:{{mixed}}:chunks*")


def test_a_superseded_token_writes_nothing(dask_client, client) -> None:
    """A task handed the token of a lock that was taken over fails and writes nothing."""
    old = client.lock("fenced")
    old.release()
    new = client.lock("fenced")
    try:
        plan = Plan("create", 1, 0, 0, 10, "fp", None, None, False)
        part = pd.DataFrame({"a": np.arange(25)})
        schema = to_arrow(part).schema
        future = dask_client.submit(persist_partition, client.settings, "fenced", old.token,
                                    old.fence, plan, schema, part, 0, 0, 0, frozenset(), pure=False)
        with pytest.raises(LockLostError, match="'fenced'"):
            future.result()
        assert client.redis.hlen(RedisKeys(client.settings.prefix, "fenced").chunks(1)) == 0
        assert list(client.store.list("fenced")) == []
    finally:
        new.release()


def _grown(client, name: str, frame: pd.DataFrame) -> cf.Dataset:
    """``frame`` as one ingest of 300 rows and then appends of 70: a run of small chunks."""
    ds = client.ingest(frame.iloc[:300], name, chunk_rows=200, time_column="time",
                       device_column="device", progress=False)
    for lo in range(300, len(frame), 70):
        ds.append(frame.iloc[lo:lo + 70], chunk_rows=200, progress=False)
    return ds


def test_compaction_on_dask_merges_on_the_workers_and_equals_a_local_one(
        dask_client, client) -> None:
    frame = source_frame(1_000)
    on_dask, local = _grown(client, "dcompact", frame), _grown(client, "lcompact", frame)
    last_before = on_dask.last()
    keys_before = set(on_dask.chunks["key"])
    on_dask.compact(engine="dask", progress=False)
    local.compact(progress=False)
    assert on_dask.chunks[["start", "rows"]].equals(local.chunks[["start", "rows"]])
    assert len(on_dask.chunks) < 12 and on_dask.versions()["kind"].iloc[-1] == "compact"
    pd.testing.assert_frame_equal(on_dask.to_pandas(), frame)
    pd.testing.assert_frame_equal(on_dask.last(), last_before)
    merged = set(on_dask.chunks["key"]) - keys_before
    assert merged and all("/g000002/" in k for k in merged)  # written in the new generation
    assert on_dask.verify().empty and client.recover().empty


def test_compaction_on_dask_refuses_a_bad_engine_and_a_superseded_token(
        dask_client, client) -> None:
    from chunkframe.compact.merge import merge_on_worker

    ds = _grown(client, "dfenced", source_frame(500))
    with pytest.raises(cf.InvalidArgumentError, match="engine='spark'"):
        ds.compact(engine="spark")
    old = client.lock("dfenced")
    old.release()
    new = client.lock("dfenced")
    try:
        entries = list(ds.chunk_metas[-3:])
        future = dask_client.submit(merge_on_worker, client.settings, ds.meta, entries, 9, 0,
                                    old.token, old.fence, pure=False)
        with pytest.raises(LockLostError, match="'dfenced'"):
            future.result()
        assert not [k for k in client.store.list("dfenced") if "/g000009/" in k]
    finally:
        new.release()
    assert len(ds.versions()) == 4  # nothing committed


def _checkpoints(client, dataset: str) -> int:
    keys = RedisKeys(client.settings.prefix, dataset)
    status = client.redis.hget(keys.ingest, "generation")
    return 0 if status is None else client.redis.hlen(keys.chunks(int(status)))


@pytest.mark.slow
def test_a_worker_killed_mid_ingest_is_retried(dask_client, client) -> None:
    df, ddf = frames(240_000, 6)
    pids = dask_client.run(os.getpid)
    future = dask_client.submit(lambda: None)  # the cluster is warm
    future.result()
    import threading

    result: dict[str, object] = {}
    run = threading.Thread(target=lambda: result.update(
        ds=cf.ingest(ddf, "killw", chunk_rows=400)))
    run.start()
    deadline = time.monotonic() + 60
    while _checkpoints(client, "killw") < 40 and time.monotonic() < deadline and run.is_alive():
        time.sleep(0.01)
    assert run.is_alive(), "the ingest finished before a worker could be killed"
    os.kill(next(iter(pids.values())), signal.SIGKILL)
    run.join(120)
    ds = result["ds"]
    pd.testing.assert_frame_equal(ds.to_pandas(), ddf.compute().reset_index(drop=True),
                                  check_index_type=False)
    keys = referenced_keys(ds)
    assert len(set(keys)) == len(keys) == chunk_count(ddf, 400)
    assert ds.verify().empty


COORDINATOR = """
import sys, time
sys.path.insert(0, {tests!r})
import distributed, dask.dataframe as dd
import chunkframe as cf
from test_dask import frames
distributed.Client({address!r})
cf.connect(store={store!r}, redis={redis!r}, catalog={catalog!r}, home={home!r}, prefix={prefix!r})
print("start", flush=True)
cf.ingest(frames(240_000, 6)[1], "killc", chunk_rows=400)
print("done", flush=True)
"""


@pytest.mark.slow
def test_a_killed_coordinator_resumes_to_the_same_dataset(dask_client, client, redis_server,
                                                          tmp_path: Path) -> None:
    s = client.settings
    script = COORDINATOR.format(tests=str(HERE), address=dask_client.scheduler.address,
                                store=s.store_url, redis=redis_server.url,
                                catalog=s.catalog, home=str(s.home), prefix=s.prefix)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while _checkpoints(client, "killc") < 40 and time.monotonic() < deadline:
            assert proc.poll() is None, "the coordinator stopped before it was killed"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    done_before = _checkpoints(client, "killc")
    assert 40 <= done_before < chunk_count(frames(240_000, 6)[1], 400)
    with pytest.raises(cf.DatasetNotFoundError):
        cf.open("killc")
    df, ddf = frames(240_000, 6)
    ds = cf.ingest(ddf, "killc", chunk_rows=400, mode="resume")
    pd.testing.assert_frame_equal(ds.to_pandas(), ddf.compute().reset_index(drop=True),
                                  check_index_type=False)
    keys = referenced_keys(ds)
    assert len(set(keys)) == len(keys) == chunk_count(ddf, 400)
    fences = {k.rsplit("-f", 1)[1] for k in keys}
    assert len(fences) == 2  # the killed run's chunks were kept, the rest written anew
    assert ds.verify().empty
    # cut as an uninterrupted ingest of the same frame cuts it (same rows: compared above)
    whole = cf.ingest(ddf, "killc-whole", chunk_rows=400)
    assert ds.chunks[["chunk", "start", "rows"]].equals(whole.chunks[["chunk", "start", "rows"]])


def test_aggregations_on_dask_equal_those_in_this_process_and_pandas(dask_client, client,
                                                                     capfd) -> None:
    """Each chunk reduced on a worker (numpy's and Arrow's partials alike), combined here."""
    import pyarrow.compute as pc
    from test_aggregate import AGGS, check, frame

    df = frame(3_000, 5, tz="Europe/Paris", freq="11min")
    ds = client.ingest(df, "dagg", chunk_rows=250, time_column="time", device_column="device",
                       progress=False)
    fetches = client.reader.fetches
    runs = [("h", {}), ("h", {"closed": "right", "label": "right"}),
            ("5h", {"origin": "epoch", "offset": "10min"}), ("D", {}), ("W", {})]
    got = {(rule, str(kw)): ds.resample(rule, ["x", "k"], ["mean", "first", "count"],
                                        engine="dask", **kw) for rule, kw in runs}
    spec = {"x": AGGS, "k": ["sum", "last"], "time": ["min", "max", "first"]}  # Arrow's too
    by_device = ds.aggregate("device", spec, engine="dask")
    where = pc.field("k") > 10
    filtered = ds.aggregate(["device", "k"], {"x": ["mean", "max"]}, where=where,
                            engine="dask")
    skipped = client.reader.skipped
    lo, hi = df.time.iloc[1_000], df.time.iloc[1_400]
    ranged = ds.resample("h", ["x"], "sum", date_range=(lo, hi), engine="dask")
    assert client.reader.skipped - skipped >= 9  # ruled out here, never sent
    assert client.reader.fetches == fetches  # every chunk was read on the workers
    for rule, kw in runs:
        want = df.groupby(["device", pd.Grouper(key="time", freq=rule, **kw)])[
            ["x", "k"]].agg(["mean", "first", "count"])
        check(got[(rule, str(kw))], want)
        check(got[(rule, str(kw))], ds.resample(rule, ["x", "k"], ["mean", "first", "count"],
                                                **kw))
    check(by_device, df.groupby("device").agg(spec))
    check(filtered, df[df.k > 10].groupby(["device", "k"]).agg({"x": ["mean", "max"]}))
    kept = df[(df.time >= lo) & (df.time <= hi)]
    check(ranged, kept.groupby(["device", pd.Grouper(key="time", freq="h")])[["x"]].sum())
    nothing = ds.aggregate("device", {"x": "sum"}, where=pc.field("k") > 1_000,
                           engine="dask")
    assert nothing.empty and list(nothing.columns) == ["x"]
    ds.delete(device="d1", date_range=(df.time.iloc[500], df.time.iloc[2_000]))  # values gone
    now = ds.to_pandas()
    assert now["x"].isna().sum() > df["x"].isna().sum()
    got = ds.resample("h", ["x", "k"], ["sum", "last"], engine="dask")
    check(got, now.groupby(["device", pd.Grouper(key="time", freq="h")])[["x", "k"]]
          .agg(["sum", "last"]))
    check(got, ds.resample("h", ["x", "k"], ["sum", "last"]))
    assert "poorly aligned" not in capfd.readouterr().err  # Arrow's partials were realigned
