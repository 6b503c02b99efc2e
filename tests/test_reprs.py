"""Issue 17: ds.last() and cf.contexts() show a small HTML repr in notebooks, and stay plain
DataFrames for code (type, equality, text repr)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pandas as pd
import pytest
from traitlets.config import Config

from chunkframe.display.reprs import MAX_TABLE_ROWS, mark, register, repr_html

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def sensors(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame({
        "time": T0 + pd.to_timedelta(range(n), unit="s"),
        "dev": [f"d{i % 2}" for i in range(n)],
        "temp": [float(i) for i in range(n)],
        "note": ["<script>alert(1)</script>", "a & b"] * (n // 2),
    })


@pytest.fixture
def shell(tmp_path, monkeypatch) -> Iterator[object]:
    """A real IPython shell (no history file), as a kernel has; cleared afterwards."""
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    config = Config()
    config.HistoryManager.enabled = False
    yield InteractiveShell.instance(config=config)
    InteractiveShell.clear_instance()


def plain(df: pd.DataFrame) -> pd.DataFrame:
    """The same data, built afresh as a user's own frame."""
    return pd.DataFrame({c: df[c].tolist() for c in df.columns}).astype(df.dtypes.to_dict())


def test_last_is_a_plain_frame_with_a_compact_html_repr(client):
    ds = client.ingest(sensors(), "reprs", time_column="time", device_column="dev",
                       progress=False)
    got = ds.last()
    assert type(got) is pd.DataFrame
    pd.testing.assert_frame_equal(plain(got), got)  # check_frame_type holds
    assert repr(got) == repr(plain(got))  # the text repr is pandas'
    page = repr_html(got)
    assert page is not None and "cf-repr" in page
    assert "<b>last values</b> <code>reprs</code>" in page
    assert "4 series · 2 devices · newest 2026-01-01 00:00:05<" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "a &amp; b" in page
    assert "<script>" not in page
    assert repr_html(plain(got)) is None  # an unmarked frame: pandas' own HTML
    assert repr_html(got.head(2)) is None  # derived frames too


def test_contexts_repr_counts_entries_and_memory(client):
    client.context("a&b").put("k", "v")
    client.context("a&b").put("k2", "v")
    client.context("other").put("k", "v")
    got = client.contexts()
    assert type(got) is pd.DataFrame and set(got["context_id"]) >= {"a&b", "other"}
    pd.testing.assert_frame_equal(plain(got), got)
    page = repr_html(got)
    assert page is not None and "<b>contexts</b> <span" in page
    assert f"{len(got)} contexts · {got['entries'].sum()} entries · 2 loaded, " in page
    assert "a&amp;b" in page and "a&b" not in page


def test_long_frames_are_cut_and_counted():
    df = mark(pd.DataFrame({"device": range(50), "measurement": "m", "time": range(50),
                            "value": range(50)}), "last", "big")
    page = repr_html(df)
    assert page.count("<tr>") == MAX_TABLE_ROWS + 1 and f"… {50 - MAX_TABLE_ROWS} more" in page
    assert "50 series · 50 devices · newest 49" in page


def test_header_follows_in_place_changes():
    df = mark(pd.DataFrame({"device": ["a", "b"], "measurement": "m", "time": [1, 2],
                            "value": [1, 2]}), "last")
    df.loc[1, "device"] = "a"
    df.loc[1, "time"] = 7
    assert "<b>last values</b> <span class='cf-muted'>2 series · 1 device · newest 7</span>" in (
        repr_html(df) or "")


def test_mark_refuses_unknown_kinds_and_forgets_dead_frames():
    with pytest.raises(ValueError, match=r"no chunkframe repr of kind 'plot'; use one of "
                                         r"\['contexts', 'datasets', 'last', 'slice', 'snapshots', "
                                         r"'storage', 'tags', 'versions'\]"):
        mark(pd.DataFrame(), "plot")
    from chunkframe.display import reprs

    df = mark(pd.DataFrame({"x": [1]}), "contexts")
    key = id(df)
    assert key in reprs._MARKED
    del df
    gc.collect()
    assert key not in reprs._MARKED


def test_ipython_shows_marked_frames_and_leaves_others_to_pandas(shell):
    """Registered once with the running shell; unmarked frames keep pandas' HTML, or the
    formatter registered before chunkframe's."""
    formatter = shell.display_formatter.formatters["text/html"]
    other = pd.DataFrame({"x": [1, 2]})
    marked = mark(pd.DataFrame({"device": ["a"], "measurement": ["m"], "time": [T0],
                                "value": [1.0]}), "last", "ds")
    data, _ = shell.display_formatter.format(marked)
    assert data["text/html"] == repr_html(marked)
    assert data["text/plain"] == repr(marked)
    data, _ = shell.display_formatter.format(other)
    assert data["text/html"] == other._repr_html_()
    printer = formatter.type_printers[pd.DataFrame]
    register()  # a second registration changes nothing
    assert formatter.type_printers[pd.DataFrame] is printer

    formatter.for_type(pd.DataFrame, lambda df: "<p>theirs</p>")  # someone else's, before ours
    register()
    assert shell.display_formatter.format(other)[0]["text/html"] == "<p>theirs</p>"
    assert shell.display_formatter.format(marked)[0]["text/html"] == repr_html(marked)


def test_no_shell_no_registration():
    """Outside IPython nothing is registered (and nothing imports IPython)."""
    from IPython.core.interactiveshell import InteractiveShell

    assert not InteractiveShell.initialized()
    register()
    assert not InteractiveShell.initialized()


def test_counts_are_singular_for_one_everywhere():
    from chunkframe.core.units import plural

    assert [plural(n, "chunk") for n in (0, 1, 2, 1_000)] == [
        "0 chunks", "1 chunk", "2 chunks", "1,000 chunks"]
    assert plural(1, "series", "series") == "1 series" and plural(1, "entry", "entries") == "1 entry"
    one = pd.DataFrame({"device": ["d"], "measurement": ["x"], "time": [pd.Timestamp(0)],
                        "value": [1.0]})
    assert "1 series · 1 device · newest" in repr_html(mark(one, "last", "ds"))


# -- issue 27: one style for every repr ---------------------------------------------------------

def test_slices_have_a_caption_and_pandas_dtypes(client):
    ds = client.ingest(sensors(60), "cap", time_column="time", device_column="dev",
                       chunk_rows=16, progress=False)
    part = ds.slice(10, 20)
    assert type(part) is pd.DataFrame and repr(part) == repr(plain(part).set_axis(part.index))
    page = repr_html(part)
    assert "<b>rows</b> <code>cap</code> <span class='cf-muted'>rows 10–19 of 60 · 4 columns" in page
    assert "datetime64[ns, UTC]" in page or "datetime64[us, UTC]" in page
    assert "<div class='cf-dtype'>float64</div>" in page and "large_string" not in page
    assert "2026-01-01 00:00:10<" in page and "10.000000" in page  # to the second, precision
    assert "rows 0–59 of 60" in repr_html(ds.slice())
    assert "no rows of 60" in repr_html(ds.slice(5, 5))


def test_datasets_versions_and_tags_share_the_header(client):
    client.ingest(pd.DataFrame({"a": range(1_500)}), "plain-one", progress=False)
    ds = client.ingest(sensors(), "tagged", time_column="time", device_column="dev",
                       progress=False)
    ds.tag("owner", "ana", keywords=["q3"])
    ds.tag("units", {"temp": "°C"}, type="DATA")
    page = repr_html(client.datasets())
    assert "<b>datasets</b> <span class='cf-muted'>2 datasets · 1,506 rows · " in page
    assert "KiB</td>" in page and "<td>—</td>" in page and "NaN" not in page  # no device column
    assert "1,500</td>" in page
    versions = repr_html(ds.versions())
    assert "<b>versions</b> <code>tagged</code> <span class='cf-muted'>1 version · newest " in versions
    tags = repr_html(ds.tags())
    assert "<b>tags</b> <code>tagged</code> <span class='cf-muted'>2 tags · DATA 1, METADATA 1" in tags
    assert "<td>ana</td>" in tags
    ctx = ds.context._repr_html_()
    assert "<b>Context</b> <code>tagged</code> <span class='cf-muted'>2 entries · " in ctx
    assert "<td>ana</td>" in ctx and "&#x27;ana&#x27;" not in ctx  # not quoted, as tags()


def test_the_dataset_repr_has_span_devices_dtypes_and_first_rows(client):
    ds = client.ingest(sensors(), "whole", time_column="time", device_column="dev",
                       progress=False)
    text = repr(ds)
    assert text.startswith("<chunkframe.Dataset 'whole': 6 rows in 1 chunk, 2 devices, ")
    assert "time 2026-01-01 00:00:00 – 2026-01-01 00:00:05 UTC" in text
    page = ds._repr_html_()
    assert "<b>chunkframe.Dataset</b> <code>whole</code> <span class='cf-muted'>6 rows · 1 chunk · " in page
    assert "2 devices" in page and "device <code>dev</code>" in page and "hit rate" not in page
    assert "2026-01-01 00:00:00 – 2026-01-01 00:00:05 UTC" in page
    assert "<div class='cf-dtype'>str</div>" in page and page.count("<tr>") == 4  # 3 rows
    assert "… 3 more rows: ds.browse()" in page


def test_numbers_at_pandas_precision_with_separators():
    from chunkframe.core.formats import format_value

    assert format_value(65.07802633094698) == "65.078026"
    assert format_value(1234567.5) == "1,234,567.500000" and format_value(3) == "3"
    with pd.option_context("display.precision", 2):
        assert format_value(65.07802633094698) == "65.08"
    assert format_value(pd.Timestamp("2026-01-01 10:00:00.123456789", tz="UTC")) == (
        "2026-01-01 10:00:00")
    assert format_value(float("nan")) == "<NA>" and format_value(1e-9) == "1.000000e-09"
