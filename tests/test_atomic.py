"""The one atomic local writer (the local chunk store and exports use it): whole or absent."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from chunkframe.storage import codec
from chunkframe.storage.atomic import AtomicFile, is_temp, sweep_stale, sweep_temps


def _names(directory) -> list[str]:
    return sorted(os.listdir(directory))


def test_commit_puts_the_whole_file_in_place_and_reports_what_landed(tmp_path):
    dest = str(tmp_path / "out.bin")
    target = AtomicFile(dest)
    target.open().write(b"payload")
    assert is_temp(target.tmp) and os.path.dirname(target.tmp) == str(tmp_path)
    assert f".{os.getpid()}-" in target.tmp  # the writer's pid: sweep_stale can tell it is alive
    assert not os.path.exists(dest)  # nothing under the final name before the commit
    assert target.commit(codec.checksum) == (7, codec.checksum(b"payload"))
    assert _names(tmp_path) == ["out.bin"] and open(dest, "rb").read() == b"payload"


def test_commit_without_inspect_and_of_an_empty_file(tmp_path):
    target = AtomicFile(str(tmp_path / "empty"), sync_dir=True)
    target.open()
    assert target.commit() == (0, None)
    other = AtomicFile(str(tmp_path / "empty2"))
    other.open()
    assert other.commit(codec.checksum) == (0, "crc32c:00000000")  # empty: not mapped
    assert _names(tmp_path) == ["empty", "empty2"]


def test_a_replaced_file_is_whole_old_or_whole_new(tmp_path):
    dest = str(tmp_path / "f")
    for payload in (b"first version, long", b"second"):
        target = AtomicFile(dest)
        target.open().write(payload)
        target.commit()
        assert open(dest, "rb").read() == payload
    assert _names(tmp_path) == ["f"]


def test_abort_removes_the_temporary_and_keeps_the_old_file(tmp_path):
    dest = tmp_path / "f"
    dest.write_bytes(b"old")
    target = AtomicFile(str(dest))
    target.open().write(b"half")
    target.abort()
    target.abort()  # twice: never raises
    assert _names(tmp_path) == ["f"] and dest.read_bytes() == b"old"
    AtomicFile(str(dest)).abort()  # never opened: nothing to do, no error


def test_commit_before_open_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="before open"):
        AtomicFile(str(tmp_path / "x")).commit()


def test_a_failing_commit_removes_its_temporary_and_passes_the_error_on(tmp_path):
    (tmp_path / "d").mkdir()  # the destination is a directory: the rename fails
    target = AtomicFile(str(tmp_path / "d"))
    target.open().write(b"x")
    with pytest.raises(OSError):
        target.commit()
    assert _names(tmp_path) == ["d"]

    def boom(view):
        raise ValueError("inspect failed")

    target = AtomicFile(str(tmp_path / "e"))
    target.open().write(b"x")
    with pytest.raises(ValueError, match="inspect failed"):
        target.commit(boom)
    assert _names(tmp_path) == ["d"]


def test_open_in_a_missing_directory_is_an_os_error(tmp_path):
    with pytest.raises(OSError):
        AtomicFile(str(tmp_path / "no" / "such" / "f")).open()


def test_sweep_stale_removes_only_temporaries_of_dead_processes(tmp_path):
    dest = str(tmp_path / "out.csv")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    for name in (f"out.csv.{dead}-deadbeef.partial",        # its writer is gone
                 f"out.csv.{os.getppid()}-cafebabe.partial",  # a live writer's
                 f"out.csv.{os.getpid()}-0badf00d.partial",   # ours
                 "out.csv.not-a-pid.partial",                 # not named by AtomicFile
                 "other.csv.1-deadbeef.partial"):             # another destination's
        (tmp_path / name).write_bytes(b"x")
    assert sweep_stale(dest) == 1
    assert f"out.csv.{dead}-deadbeef.partial" not in _names(tmp_path)
    assert len(_names(tmp_path)) == 4
    assert sweep_stale(str(tmp_path / "missing")) == 0


def test_sweep_temps_removes_every_temporary_below_a_directory(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/k.1-x.partial", "a/b/k.2-y.partial", "a/b/kept", "a/kept.arrow"):
        (tmp_path / name).write_bytes(b"x")
    assert sweep_temps(str(tmp_path / "a")) == 2
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        "a/b/kept", "a/kept.arrow"]
    assert sweep_temps(str(tmp_path / "missing")) == 0
