"""Progress bars: totals, percentage, ETA and a final count and rate, in a terminal and a notebook."""

from __future__ import annotations

import ipywidgets
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as paipc
import pytest
from frames import sensors

import chunkframe.core.progress as cfp
from chunkframe.core.progress import progress_bar
from chunkframe.ingestion.sources import open_source

N, CHUNK = 3_000, 400


def final_line(err: str) -> str:
    """The last state a tqdm text bar drew (it redraws with carriage returns)."""
    return [part for part in err.replace("\r", "\n").splitlines() if part.strip()][-1]


def test_ingest_of_a_frame_counts_rows_to_its_total(client, capsys):
    client.ingest(sensors(N), "p", chunk_rows=CHUNK, progress=True)
    last = final_line(capsys.readouterr().err)
    assert last.startswith("ingest p: 100%") and "3.00k/3.00k" in last and "rows/s" in last


def test_ingest_of_csv_counts_bytes_and_finishes_at_the_file_size(client, capsys, tmp_path):
    path = tmp_path / "s.csv"
    sensors(N).to_csv(path, index=False)
    src = open_source(str(path))
    assert (src.total, src.unit) == (path.stat().st_size, "B")
    client.ingest(str(path), "csv", chunk_rows=CHUNK, progress=True)
    last = final_line(capsys.readouterr().err)
    assert "100%" in last and "B/s" in last


def test_gzipped_csv_counts_compressed_bytes(tmp_path):
    path = tmp_path / "s.csv.gz"
    sensors(N).to_csv(path, index=False)
    src = open_source(str(path))
    assert src.total == path.stat().st_size and src.done is not None
    rows = sum(t.num_rows for t in src.chunks(CHUNK))
    assert rows == N and src.done() == src.total


def test_parquet_and_arrow_files_give_rows_from_their_footers(tmp_path):
    frame = sensors(N)
    frame.to_parquet(tmp_path / "a.parquet")
    table = pa.Table.from_pandas(frame)
    with paipc.new_file(tmp_path / "b.arrow", table.schema) as w:
        w.write_table(table)
    both = open_source(str(tmp_path / "*"))
    assert (both.total, both.unit, both.done) == (2 * N, "rows", None)


def test_an_arrow_stream_file_has_no_known_total(tmp_path):
    table = pa.table({"a": np.arange(10)})
    with paipc.new_stream(tmp_path / "s.arrows", table.schema) as w:
        w.write_table(table)
    assert open_source(str(tmp_path / "s.arrows")).total is None


def test_frames_tables_and_iterators(client, capsys):
    frame = sensors(N)
    assert open_source([frame, frame]).total == 2 * N
    assert open_source(pa.Table.from_pandas(frame)).total == N
    assert open_source(iter([frame])).total is None  # not read before the ingest
    client.ingest(iter([frame, frame]), "it", chunk_rows=CHUNK, progress=True)
    last = final_line(capsys.readouterr().err)
    assert "6.00k rows" in last and "%" not in last  # count and rate, no made-up percentage


def test_export_and_verify_show_totals(client, capsys, tmp_path):
    ds = client.ingest(sensors(N), "e", chunk_rows=CHUNK, progress=False)
    ds.verify(progress=True)
    assert final_line(capsys.readouterr().err).startswith("verify e: 100%")
    ds.export(tmp_path / "e.parquet", progress=True)
    last = final_line(capsys.readouterr().err)
    assert last.startswith("export e: 100%") and "3.00k/3.00k" in last


def test_recover_shows_the_datasets_it_checked(client, capsys):
    for name in ("r1", "r2"):
        client.ingest(sensors(N), name, chunk_rows=CHUNK, progress=False)
    capsys.readouterr()
    assert client.recover(progress=True).empty
    last = final_line(capsys.readouterr().err)
    assert last.startswith("recover: 100%") and "2.00/2.00" in last and "datasets/s" in last
    client.recover()  # None: no bar outside a terminal or notebook
    assert capsys.readouterr().err == ""


def test_failed_ingest_leaves_its_bar_short(client, capsys):
    good = sensors(N)
    bad = good.rename(columns={"x": "y"})

    with pytest.raises(Exception, match="frame 1"):
        client.ingest([good, bad], "f", chunk_rows=CHUNK, progress=True)
    last = final_line(capsys.readouterr().err)
    assert "%" in last and "100%" not in last


def test_notebook_form_is_a_widget_that_stays_with_its_final_count(monkeypatch, capsys):
    monkeypatch.setattr(cfp, "in_kernel", lambda: True)
    bar = progress_bar(1_000, "ingest nb", unit="rows")
    bar.update(1_000)
    bar.close()
    box = bar.container  # type: ignore[attr-defined]
    assert isinstance(box, ipywidgets.HBox)
    texts = [w.value.replace("\u2007", " ") for w in box.children
             if isinstance(w, ipywidgets.HTML)]  # tqdm pads with figure spaces
    assert any("ingest nb" in t for t in texts)
    assert any("1.00k/1.00k" in t and "rows/s" in t for t in texts)
    assert box.layout.visibility != "hidden" and box.layout.display != "none"
    assert box.children[1].bar_style == "success"


def test_silent_bar_counts_without_showing(capsys):
    bar = progress_bar(10, "quiet", enabled=False)
    bar.update(4)
    bar.close()
    assert bar.n == 4 and capsys.readouterr().err == ""
    # None: only in a kernel or on a terminal; pytest's stderr is neither
    bar = progress_bar(10, "auto", enabled=None)
    bar.update(10)
    bar.close()
    assert capsys.readouterr().err == ""


def test_bad_unit_and_total_are_refused():
    with pytest.raises(ValueError, match="progress unit 'lines' for 'x' is not one of"):
        progress_bar(1, "x", unit="lines")
    with pytest.raises(ValueError, match="negative"):
        progress_bar(-1, "x")


def test_ingest_without_progress_draws_nothing(client, capsys):
    client.ingest(pd.DataFrame({"a": np.arange(10)}), "q", progress=False)
    assert capsys.readouterr().err == ""
