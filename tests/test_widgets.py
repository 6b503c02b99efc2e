"""The notebook side: Browser widgets driven without a browser, and cheap HTML reprs."""

from __future__ import annotations

import ipywidgets
import numpy as np
import pandas as pd
import pytest
from frames import sensors

import chunkframe.display.widgets as cfw
from chunkframe.display.widgets import Browser, browse

N, CHUNK = 3_000, 400
VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def frame() -> pd.DataFrame:
    return sensors(N)


@pytest.fixture
def ds(client, frame):
    return client.ingest(frame, "w", chunk_rows=CHUNK, time_column="time", device_column="dev",
                         progress=False)


@pytest.fixture
def plain(client):
    """No time column: last values cannot exist."""
    return client.ingest(pd.DataFrame({"a": np.arange(1_000), "tag": ["x"] * 1_000}), "plain",
                         chunk_rows=100, progress=False)


def test_browse_returns_a_widget_panel(ds):
    b = ds.browse()
    assert isinstance(b, Browser) and isinstance(b, ipywidgets.Widget)
    assert b.sn.value == 0 and b.sn.max == N - 1 and b.sn_box.max == N - 1
    assert isinstance(b.chunk, ipywidgets.Dropdown) and len(b.chunk.options) == 8
    assert b.chunk.value == 0
    assert all(isinstance(w, ipywidgets.Widget) for w in b.children)
    assert "3,000 rows in 8 chunks" in b.title.value


def test_moving_the_slider_shows_that_row_and_its_chunk(ds, frame):
    b = browse(ds)
    before = b.row.value
    b.sn.value = 1_234
    assert b.row.value != before and "sn 1,234" in b.row.value
    assert f"{frame['x'].iloc[1_234]:.6f}"[:6] in b.row.value
    assert b.sn_box.value == 1_234  # linked
    assert b.chunk.value == 1_234 // CHUNK
    assert ds.chunks["key"].iloc[3] in b.chunk_info.value
    b.sn_box.value = 5
    assert b.sn.value == 5 and "sn 5" in b.row.value and b.chunk.value == 0


def test_jumping_to_a_chunk_moves_to_its_first_row(ds):
    b = browse(ds, sn=10)
    b.chunk.value = 5
    assert b.sn.value == 5 * CHUNK and f"sn {5 * CHUNK:,}" in b.row.value
    assert b.chunk.value == 5
    b.jump(99)  # no such chunk: nothing moves
    assert b.sn.value == 5 * CHUNK


def test_step_buttons_are_clamped(ds):
    b = browse(ds)
    b.prev_button.click()
    assert b.sn.value == 0
    b.next_button.click()
    b.next_button.click()
    assert b.sn.value == 2
    b.sn.value = N - 1
    b.next_button.click()
    assert b.sn.value == N - 1


def test_start_row_is_clamped(ds):
    assert browse(ds, sn=10**9).sn.value == N - 1
    assert browse(ds, sn=-5).sn.value == 0


def test_many_chunks_get_a_number_box(ds, monkeypatch):
    monkeypatch.setattr(cfw, "DROPDOWN_MAX_CHUNKS", 3)
    b = browse(ds)
    assert isinstance(b.chunk, ipywidgets.BoundedIntText) and b.chunk.max == 7
    b.chunk.value = 2
    assert b.sn.value == 2 * CHUNK
    b.sn.value = 7 * CHUNK + 1
    assert b.chunk.value == 7


def test_search_box_finds_tags(ds):
    ds.tag("owner", "ana, data team", keywords=["q3"])
    ds.tag("units", {"x": "celsius"}, type="DATA", keywords=["physics"])
    b = browse(ds)
    b.search.value = "q3"
    assert "owner" in b.results.value and "units" not in b.results.value
    b.search.value = "physics"
    assert "units" in b.results.value
    b.search.value = "nothing-here"
    assert "no tag" in b.results.value and "nothing-here" in b.results.value
    b.search.value = "   "
    assert b.results.value == ""


def test_last_values_failing_leave_the_panel_working(plain):
    b = browse(plain)
    assert "no last values" in b.last.value
    b.sn.value = 512
    assert "sn 512" in b.row.value and b.chunk.value == 5


def test_last_values_are_shown(ds):
    b = browse(ds)
    assert "<table" in b.last.value and "measurement" in b.last.value


def test_a_corrupt_chunk_is_shown_not_raised(client, ds):
    key = ds.chunks["key"].iloc[2]
    client.store.put(key, b"not an arrow file")
    client.reader.clear()
    b = browse(ds)
    b.sn.value = 2 * CHUNK + 3
    assert "ChunkCorruptionError" in b.row.value and key in b.row.value
    b.sn.value = 1  # other chunks still browse
    assert "sn 1" in b.row.value and "Error" not in b.row.value


def test_refresh_sees_appended_rows(ds, frame):
    b = browse(ds)
    more = frame.head(500).assign(time=frame["time"] + pd.Timedelta(days=1))
    ds.append(more, progress=False)
    b.refresh()
    assert b.sn.max == N + 499 and "3,500 rows" in b.title.value
    b.sn.value = N + 10
    assert f"sn {N + 10:,}" in b.row.value


def test_text_outside_a_kernel(ds, frame):
    b = browse(ds)
    b.sn.value = 777
    text = str(b)
    assert "row 777 of 3,000" in text and "chunk 1 (sn 400–799)" in text
    assert str(frame["k"].iloc[777]) in text and len(text) < 2_000
    bundle = b._repr_mimebundle_()
    assert VIEW not in bundle  # not in a kernel: no widget view to show
    assert bundle["text/plain"] == text and "sn 777" in bundle["text/html"]


def test_mimebundle_in_a_kernel_carries_the_widget_view(ds, monkeypatch):
    monkeypatch.setattr(cfw, "in_kernel", lambda: True)
    bundle = browse(ds)._repr_mimebundle_()
    assert bundle[VIEW]["model_id"] and "row 0" in bundle["text/plain"]


# -- HTML reprs: small, and cheap whatever the dataset's size ----------------------------------

def test_dataset_and_context_reprs_fetch_no_chunk(client):
    n = 200_000
    big = client.ingest(pd.DataFrame({"a": np.arange(n), "b": np.arange(n) % 7}), "big",
                        chunk_rows=500, progress=False)
    for i in range(60):
        big.tag(f"key{i}", f"value number {i} " * 20, keywords=["bulk"])
    client.reader.clear()
    fetches = client.reader.fetches
    html, text = big._repr_html_(), repr(big)
    ctx_html, ctx_text = big.context._repr_html_(), repr(big.context)
    assert client.reader.fetches == fetches
    assert "400 chunks" in text and "200,000" in html
    assert len(html) < 2_000 and len(text) < 300
    assert len(ctx_html) < 4_000 and len(ctx_text) < 300


def test_widgets_and_the_cli_use_only_the_public_api_of_a_dataset():
    """No ``x._client``, ``x._snap`` ... on anything but ``self`` in the notebook browser or
    the command line: they hold a Dataset handle, not its insides."""
    import ast
    import inspect

    import chunkframe.display.widgets as widgets_mod
    import chunkframe.frontends.cli as cli_mod
    from chunkframe.dataset import Dataset

    private = {n for n in dir(Dataset) if n.startswith("_") and not n.startswith("__")}
    private |= {"_client"}  # set in __init__
    for module in (widgets_mod, cli_mod):
        tree = ast.parse(inspect.getsource(module))
        reached = sorted({(node.lineno, node.attr) for node in ast.walk(tree)
                          if isinstance(node, ast.Attribute) and node.attr in private
                          and not (isinstance(node.value, ast.Name) and node.value.id == "self")})
        assert reached == [], f"{module.__name__} reaches into a Dataset: {reached}"


# -- the redesign: plot around the row, sections, device filter, tag add ----------------------

def test_plot_around_the_row_follows_it_through_the_cache(ds, frame):
    b = browse(ds, sn=1_000)
    assert b.column.value == "x" and list(b.column.options) == ["x", "k"]
    assert "<svg" in b.plot.value and "sn 500–1,500" in b.plot.value
    top = frame["x"].iloc[500:1_501].max()
    assert f"{top:.4g}" in b.plot.value
    fetches = ds.cache_info()["fetches"]
    b.next_button.click()
    assert "sn 501–1,501" in b.plot.value and "cf-mark" in b.plot.value
    assert ds.cache_info()["fetches"] == fetches  # read through the cache
    b.column.value = "k"
    assert "k, sn 501" in b.plot.value
    b.sn.value = 0
    assert "sn 0–500" in b.plot.value
    assert 0 < b.update_seconds < 1


def test_sections_hold_chunk_key_and_checksum(ds):
    b = browse(ds, sn=CHUNK + 1)
    chunk = ds.chunks.iloc[1]
    assert chunk["key"] in b.chunk_info.value and chunk["checksum"] in b.chunk_info.value
    assert b.sections.get_title(0) == f"chunk 1 · {chunk['checksum']}"
    assert b.sections.children[0] is b.chunk_info and b.sections.selected_index == 0
    assert "cf-browser" in b._dom_classes and "--jp-layout-color1" in b.children[0].value


def test_last_values_filter_by_device(ds):
    b = browse(ds)
    assert b.last_device.options[0] == cfw.ALL_DEVICES and "d3" in b.last_device.options
    b.last_device.value = "d3"
    assert "d3" in b.last.value and "d4" not in b.last.value
    assert "of device 'd3'" in b.sections.get_title(1)
    b.last_device.value = cfw.ALL_DEVICES
    assert "d4" in b.last.value


def test_adding_a_tag_from_the_panel(ds):
    b = browse(ds)
    b.search.value = "calibrated"
    assert "no tag" in b.results.value
    b.tag_key.value, b.tag_value.value = "note", "calibrated in March"
    b.tag_button.click()
    assert "tagged" in b.tag_status.value and b.tag_key.value == ""
    assert "note" in b.results.value  # the search shows it at once
    assert ds.context["note"] == "calibrated in March"
    b.add_tag("  ", "x")
    assert "give the tag a key" in b.tag_status.value


def test_no_numeric_column_means_no_plot(client):
    ds = client.ingest(pd.DataFrame({"s": ["a", "b", "c"]}), "txt", progress=False)
    b = browse(ds)
    assert b.column.disabled and "no numeric column" in b.plot.value
    assert "row 0 of 3" in str(b)


def test_sparkline_edges():
    flat = cfw.sparkline(np.arange(3), np.array([2.0, 2.0, 2.0]), mark=1)
    assert "<polyline" in flat and "nan" not in flat
    assert "no values" in cfw.sparkline(np.arange(2), np.array([np.nan, np.nan]))
    many = cfw.sparkline(np.arange(100_000), np.random.default_rng(0).normal(size=100_000))
    assert many.count(",") < 1_500  # about one point a pixel


def test_sparkline_labels_the_window_not_the_points_kept():
    svg = cfw.sparkline(np.arange(100, 2_101), np.random.default_rng(1).normal(size=2_001))
    assert "sn 100<" in svg and "sn 2,100<" in svg
