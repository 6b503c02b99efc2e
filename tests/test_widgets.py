"""The notebook side: Browser widgets driven without a browser, and cheap HTML reprs."""

from __future__ import annotations

import anywidget
import ipywidgets
import numpy as np
import pandas as pd
import pytest
from frames import sensors

import chunkframe.display.widgets as cfw
from chunkframe.core.errors import InvalidArgumentError
from chunkframe.display.grid import VIEW_ROWS, RowWindow
from chunkframe.display.panelplot import describe, device_window, robust_limits, sparkline
from chunkframe.display.widgets import Browser, browse, sn_at_time

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


def test_browse_is_a_window_of_rows_with_dtypes(ds, frame):
    b = ds.browse()
    assert isinstance(b, Browser) and isinstance(b, ipywidgets.Widget)
    assert isinstance(b.table, RowWindow) and isinstance(b.table, anywidget.AnyWidget)
    assert b.sn == 0 and b.table.total == N and b.sn_box.max == N - 1
    assert isinstance(b.chunk, ipywidgets.Dropdown) and len(b.chunk.options) == 8
    assert b.chunk.value == 0
    assert all(isinstance(w, ipywidgets.Widget) for w in b.children)
    assert "3,000 rows · 8 chunks · 10 devices · " in b.title.value
    assert " KiB · 2026-01-01 00:00:00 – 2026-01-01 00:49:59 UTC" in b.title.value
    assert [c["name"] for c in b.table.columns] == list(frame.columns)
    dtypes = {c["name"]: c["dtype"] for c in b.table.columns}
    assert dtypes == {c: str(t) for c, t in frame.dtypes.items()}  # pandas', not Arrow's
    assert "large_string" not in str(dtypes) and dtypes["time"].startswith("datetime64")
    assert b.table.view == VIEW_ROWS and b.table.top == 0
    assert b.table.buffer_start == 0 and len(b.table.buffer) == 2 * VIEW_ROWS  # clamped at 0
    first = b.table.buffer[0]
    assert first[0] == "2026-01-01 00:00:00"  # to the second, the zone in the dtype
    assert first[2] == f"{frame['x'].iloc[0]:,.6f}"  # pandas' display precision


def test_moving_the_row_reads_only_the_rows_around_it(ds, frame):
    b = browse(ds)
    b.table.sn = 1_234  # what a key press does
    assert b.table.top <= 1_234 < b.table.top + VIEW_ROWS
    start, rows = b.table.buffer_start, b.table.buffer
    assert start <= b.table.top and start + len(rows) >= b.table.top + VIEW_ROWS
    assert len(rows) == 3 * VIEW_ROWS  # one window each side of the view, never more
    assert rows[1_234 - start][2] == f"{frame['x'].iloc[1_234]:,.6f}"
    assert b.sn_box.value == 1_234 and b.chunk.value == 1_234 // CHUNK
    b.table.sn = 1_190
    assert b.table.boundaries == [1_200]  # chunk 3 starts in the buffer: drawn as a line
    b.sn_box.value = 5
    assert b.sn == 5 and b.table.top == 0 and b.chunk.value == 0


def test_a_step_inside_the_buffer_reads_nothing(ds):
    b = browse(ds, sn=1_000)
    start = b.table.buffer_start
    b.table.sn = 1_001
    assert b.table.buffer_start == start  # the front end draws it from what it has
    b.table.top = b.table.top + VIEW_ROWS  # a page down: re-centred
    assert b.table.buffer_start > start


def test_paging_and_scrolling_keep_the_row_in_view(ds):
    b = browse(ds, sn=100)
    top = b.table.top
    b.table.page(1)
    assert b.table.top == top + VIEW_ROWS and b.sn == 100 + VIEW_ROWS
    b.table.page(-100)
    assert b.table.top == 0 and b.sn == 0
    b.table.move(N + 50)
    assert b.sn == N - 1 and b.table.top == N - VIEW_ROWS
    assert len(b.table.rows_in_view()) == VIEW_ROWS


def test_jumping_to_a_chunk_moves_to_its_first_row(ds):
    b = browse(ds, sn=10)
    b.chunk.value = 5
    assert b.sn == 5 * CHUNK and b.table.top <= 5 * CHUNK
    assert b.chunk.value == 5
    b.jump(99)  # no such chunk: nothing moves
    assert b.sn == 5 * CHUNK


def test_jumping_to_a_time(ds, frame):
    b = browse(ds)
    b.time_box.value = "2026-01-01 00:30"
    assert b.sn == 1_800 and frame["time"].iloc[b.sn] == pd.Timestamp("2026-01-01 00:30", tz="UTC")
    assert sn_at_time(ds, "2026-01-01 00:30:00.5") == 1_801
    assert sn_at_time(ds, "2025-01-01") == 0 and sn_at_time(ds, "2030-01-01") == N - 1
    b.time_box.value = "not a time"
    assert "cannot jump to time &#x27;not a time&#x27;" in b.status.value and b.sn == 1_800


def test_no_time_column_no_time_jump(plain):
    b = browse(plain)
    assert b.time_box.disabled
    with pytest.raises(InvalidArgumentError, match="'plain' has no time column"):
        sn_at_time(plain, "2026-01-01")


def test_step_buttons_are_clamped(ds):
    b = browse(ds)
    b.prev_button.click()
    assert b.sn == 0
    b.next_button.click()
    b.next_button.click()
    assert b.sn == 2
    b.table.sn = N - 1
    b.next_button.click()
    assert b.sn == N - 1


def test_start_row_is_clamped(ds):
    assert browse(ds, sn=10**9).sn == N - 1
    assert browse(ds, sn=-5).sn == 0


def test_many_chunks_get_a_number_box(ds, monkeypatch):
    monkeypatch.setattr(cfw, "DROPDOWN_MAX_CHUNKS", 3)
    b = browse(ds)
    assert isinstance(b.chunk, ipywidgets.BoundedIntText) and b.chunk.max == 7
    b.chunk.value = 2
    assert b.sn == 2 * CHUNK
    b.table.sn = 7 * CHUNK + 1
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
    b.table.sn = 512
    assert b.table.frame.loc[512, "a"] == 512 and b.chunk.value == 5


def test_last_values_are_shown(ds):
    b = browse(ds)
    assert "<table" in b.last.value and "measurement" in b.last.value


def test_a_corrupt_chunk_is_shown_not_raised(client, ds):
    key = ds.chunks["key"].iloc[2]
    client.store.put(key, b"not an arrow file")
    client.reader.clear()
    b = browse(ds)
    b.table.sn = 2 * CHUNK + 3
    assert "ChunkCorruptionError" in b.table.error and key in b.table.error
    assert "ChunkCorruptionError" in str(b) and "Error" in b.plot.value
    b.table.sn = 1  # other chunks still browse
    assert b.table.error == "" and b.table.frame.loc[1, "k"] == ds.get(1)["k"]


def test_refresh_sees_appended_rows(ds, frame):
    b = browse(ds)
    more = frame.head(500).assign(time=frame["time"] + pd.Timedelta(days=1))
    ds.append(more, progress=False)
    b.refresh()
    assert b.table.total == N + 500 and b.sn_box.max == N + 499 and "3,500 rows" in b.title.value
    b.table.sn = N + 10
    assert b.table.frame.loc[N + 10, "k"] == more["k"].iloc[10]


def test_text_outside_a_kernel(ds, frame):
    b = browse(ds)
    b.table.sn = 777
    text = str(b)
    assert "row 777 of 3,000" in text and "chunk 1 (sn 400–799)" in text
    marked = [line for line in text.splitlines() if "▶" in line]
    assert len(marked) == 1 and marked[0].startswith("777") and str(frame["k"].iloc[777]) in marked[0]
    assert len(text.splitlines()) <= VIEW_ROWS + 5 and len(text) < 3_000
    bundle = b._repr_mimebundle_()
    assert VIEW not in bundle  # not in a kernel: no widget view to show
    page = bundle["text/html"]
    assert bundle["text/plain"] == b.text(7) and len(bundle["text/plain"].splitlines()) == 11
    assert "<tr class='cf-current'><th>777</th>" in page and page.count("<tr") == 8
    assert "datetime64[" in page and "<svg" in page


def test_mimebundle_in_a_kernel_carries_the_widget_view(ds, monkeypatch):
    monkeypatch.setattr(cfw, "in_kernel", lambda: True)
    bundle = browse(ds)._repr_mimebundle_()
    assert bundle[VIEW]["model_id"] and "row 0" in bundle["text/plain"]


# -- HTML reprs: small, and cheap whatever the dataset's size ----------------------------------

def test_dataset_and_context_reprs_fetch_at_most_the_first_chunk(client):
    n = 200_000
    big = client.ingest(pd.DataFrame({"a": np.arange(n), "b": np.arange(n) % 7}), "big",
                        chunk_rows=500, progress=False)
    for i in range(60):
        big.tag(f"key{i}", f"value number {i} " * 20, keywords=["bulk"])
    client.reader.clear()
    fetches = client.reader.fetches
    text = repr(big)
    ctx_html, ctx_text = big.context._repr_html_(), repr(big.context)
    assert client.reader.fetches == fetches
    html = big._repr_html_()
    assert client.reader.fetches == fetches + 1  # the first rows, from the first chunk only
    assert "400 chunks" in text and "200,000" in html
    assert len(html) < 6_000 and len(text) < 300
    assert len(ctx_html) < 7_000 and len(ctx_text) < 300


def test_widgets_and_the_cli_use_only_the_public_api_of_a_dataset():
    """No ``x._client``, ``x._snap`` ... on anything but ``self`` in the notebook views or
    the command line: they hold a Dataset handle, not its insides."""
    import ast
    import inspect

    import chunkframe.display.grid as grid_mod
    import chunkframe.display.panelplot as panelplot_mod
    import chunkframe.display.plot as plot_mod
    import chunkframe.display.reprs as reprs_mod
    import chunkframe.display.widgets as widgets_mod
    import chunkframe.display.zoom as zoom_mod
    import chunkframe.frontends.cli as cli_mod
    from chunkframe.dataset import Dataset

    private = {n for n in dir(Dataset) if n.startswith("_") and not n.startswith("__")}
    private |= {"_client"}  # set in __init__
    private -= {"_repr_html_"}  # IPython's display protocol, public (pandas' own is called)
    for module in (widgets_mod, grid_mod, panelplot_mod, plot_mod, reprs_mod, zoom_mod, cli_mod):
        tree = ast.parse(inspect.getsource(module))
        reached = sorted({(node.lineno, node.attr) for node in ast.walk(tree)
                          if isinstance(node, ast.Attribute) and node.attr in private
                          and not (isinstance(node.value, ast.Name) and node.value.id == "self")})
        assert reached == [], f"{module.__name__} reaches into a Dataset: {reached}"


# -- the panel's plot: the current row's device, percentiles, the row marked -------------------

def test_plot_shows_the_current_rows_device_through_the_cache(ds, frame):
    b = browse(ds, sn=1_000)
    device = frame["dev"].iloc[1_000]
    assert b.column.value == "x" and list(b.column.options) == ["x", "k"]
    assert "<svg" in b.plot.value and f"x · {device} around sn 1,000" in b.plot.value
    assert "time (UTC)" in b.plot.value and "cf-mark" in b.plot.value
    w = b._window
    assert w is not None and w.device == device and w.lo <= 1_000 < w.hi
    want = frame.iloc[w.lo:w.hi]
    want = want[want["dev"] == device]
    assert np.allclose(w.y, want["x"].to_numpy()) and len(w.y) == describe(w)["readings"]
    assert np.all(np.diff(w.x) > 0)  # on a time axis, in time order
    fetches = ds.cache_info()["fetches"]
    b.next_button.click()
    assert "around sn 1,001" in b.plot.value
    assert ds.cache_info()["fetches"] == fetches  # read through the cache
    b.column.value = "k"
    assert "k · " in b.plot.value
    b.table.sn = 0
    assert "around sn 0<" in b.plot.value
    assert 0 < b.update_seconds < 1


def test_one_spike_does_not_flatten_the_plot(client):
    n = 3_000
    t = pd.date_range("2026-01-01", periods=n, freq="s", tz="UTC")
    df = pd.DataFrame({"time": t, "dev": np.tile(["a", "b", "c"], n // 3),
                       "temp": 60 + np.sin(np.arange(n) / 50.0)})
    df.loc[1_500, "temp"] = 140.0
    ds = client.ingest(df, "spike", chunk_rows=1_000, time_column="time", device_column="dev",
                       progress=False)
    w = device_window(ds, 1_500, "temp")
    lo, hi = robust_limits(w.y)
    assert hi < 70 and lo > 58 and describe(w)["clipped"] == 1 and w.device == df["dev"][1_500]
    svg = sparkline(w)
    assert svg.count("class='cf-spike'") == 1 and "140.000000 (off the scale)" in svg
    assert "1 value off the scale" in svg
    calm = device_window(ds, 10, "temp")
    assert describe(calm)["clipped"] == 0 and "cf-spike" not in sparkline(calm)


def test_sections_are_collapsed_and_hold_chunk_internals(ds):
    b = browse(ds, sn=CHUNK + 1)
    chunk = ds.chunks.iloc[1]
    assert chunk["key"] in b.chunk_info.value and chunk["checksum"] in b.chunk_info.value
    assert "KiB" in b.chunk_info.value or " B<" in b.chunk_info.value  # bytes humanized
    assert b.sections.get_title(0) == "chunk 1 internals"
    assert b.sections.children[0] is b.chunk_info and b.sections.selected_index is None
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


def test_no_time_column_plots_against_sn(plain):
    w = device_window(plain, 500, "a")
    assert w.zone is None and w.device is None and w.mark_x == 500
    svg = sparkline(w)
    assert "<polyline" in svg and ">sn · " in svg


def test_without_time_or_device_columns_the_window_still_shows(plain):
    b = browse(plain)
    assert b.table.buffer[0] == ["0", "x"] and "1,000 rows · 10 chunks" in b.title.value
