"""ds.plot: only the chunks a date range needs, min/max downsampling, one line per device."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
from frames import sensors
from matplotlib.figure import Figure

from chunkframe.core.errors import InvalidArgumentError
from chunkframe.display.plot import MAX_LINES, band_downsample, chunks_overlapping, minmax_downsample
from chunkframe.display.zoom import ZoomPlot

matplotlib.use("Agg")

N, CHUNK = 6_000, 500  # sensors(): one row a second from 2026-01-01 UTC, 10 devices


FRAME = sensors(N)


@pytest.fixture
def frame() -> pd.DataFrame:
    return FRAME.copy()


@pytest.fixture
def ds(client):
    """Chunks of 500 rows (8 minutes 20 s each), with per-device time statistics."""
    return client.ingest(FRAME, "pl", chunk_rows=CHUNK, time_column="time",
                         device_column="dev", progress=False)


def lines(fig: Figure) -> list:
    return fig.axes[0].get_lines()


def test_a_device_in_a_date_range_reads_only_its_chunks(ds, frame):
    start = pd.Timestamp("2026-01-01 00:20", tz="UTC")
    end = pd.Timestamp("2026-01-01 00:30", tz="UTC")
    fig = ds.plot("x", device="d3", date_range=(start, end))
    info = ds.cache_info()
    assert info["misses"] == 2  # rows 1,200..1,800: chunks 2 and 3 of 12
    want = frame[(frame.dev == "d3") & frame.time.between(start, end)]
    (line,) = lines(fig)
    assert np.allclose(line.get_ydata(), want["x"].to_numpy())
    assert pd.Timestamp(line.get_xdata()[0]) == want["time"].iloc[0].tz_localize(None)
    assert "pl · x · d3" in fig.axes[0].get_title(loc="left")


def test_without_a_device_each_device_is_a_line(ds, frame):
    fig = ds.plot("x", date_range=("2026-01-01 00:00", "2026-01-01 00:05"))
    got = {line.get_label(): len(line.get_xdata()) for line in lines(fig)}
    part = frame[frame.time <= pd.Timestamp("2026-01-01 00:05", tz="UTC")]
    assert got == part.groupby("dev", observed=True).size().to_dict()


def test_many_points_are_a_band_with_a_mean_keeping_spikes(client):
    n = 100_000
    y = np.sin(np.arange(n) / 1_000.0)
    y[77_777] = 50.0
    df = pd.DataFrame({"t": pd.date_range("2026-01-01", periods=n, freq="min"), "v": y})
    ds = client.ingest(df, "big", chunk_rows=10_000, time_column="t", progress=False)
    fig = ds.plot("v", max_points=1_000)
    ax = fig.axes[0]
    mean = next(line for line in lines(fig) if line.get_label() == "mean")
    (band,) = ax.collections
    top = max(path.vertices[:, 1].max() for path in band.get_paths())
    bottom = min(path.vertices[:, 1].min() for path in band.get_paths())
    assert top == 50.0 and bottom == pytest.approx(-1, abs=1e-3)  # the spike survives
    assert len(mean.get_ydata()) <= 500 and mean.get_ydata().max() < 2  # the mean does not jump
    assert np.all(np.diff(mean.get_xdata()).astype("int64") > 0)  # still in time order
    assert mean.get_label() == "mean" and "min–max band and mean" in ax.get_title(loc="left")


def test_band_downsample_buckets_by_time():
    x = np.r_[np.arange(100), np.arange(900, 1_000)]  # a gap: empty buckets are skipped
    b = band_downsample(x, np.ones(200), 10, lo=0, hi=1_000)
    assert not b.raw and list(b.x) == [50.0, 950.0] and list(b.mean) == [1.0, 1.0]
    small = band_downsample(np.arange(5), np.array([1.0, np.nan, 3, 4, 5]), 10)
    assert small.raw and list(small.x) == [0, 2, 3, 4]


def test_legend_outside_unit_from_tags_utc_and_a_transparent_figure(client, frame):
    ds = client.ingest(frame, "lab", chunk_rows=CHUNK, time_column="time", device_column="dev",
                       progress=False)
    ds.tag("units", {"x": "°C"}, type="DATA")
    fig = ds.plot("x", date_range=("2026-01-01 00:00", "2026-01-01 00:05"))
    ax = fig.axes[0]
    assert ax.get_ylabel() == "x [°C]" and ax.get_xlabel() == "time (UTC)"
    assert ax.get_legend() is None and len(fig.legends) == 1  # outside the data
    assert len(fig.legends[0].get_texts()) == 10
    assert fig.get_facecolor()[3] == 0 and fig.get_figwidth() * fig.dpi == 960
    assert ds.plot("k").axes[0].get_ylabel() == "k"  # no unit for k


def test_an_integer_column_without_time_is_plotted_against_sn(client):
    ds = client.ingest(pd.DataFrame({"a": np.arange(300) % 7}), "nt", chunk_rows=100,
                       progress=False)
    (line,) = lines(ds.plot("a"))
    assert list(line.get_xdata()[:3]) == [0, 1, 2] and fig_label(ds.plot("a")) == "sn"
    with pytest.raises(InvalidArgumentError, match="'nt' has no time column, so date_range"):
        ds.plot("a", date_range=("2026-01-01", None))
    with pytest.raises(InvalidArgumentError, match="'nt' has no device column"):
        ds.plot("a", device="d1")


def fig_label(fig: Figure) -> str:
    return fig.axes[0].get_xlabel()


def test_an_empty_range_says_so(ds):
    fig = ds.plot("x", date_range=("2030-01-01", None))
    assert not lines(fig) or all(len(line.get_xdata()) == 0 for line in lines(fig))
    assert "no rows of 'x'" in fig.axes[0].texts[0].get_text()


def test_failure_modes_name_the_dataset_and_the_fix(ds):
    with pytest.raises(KeyError, match="'pl' has no column 'nope'"):
        ds.plot("nope")
    with pytest.raises(InvalidArgumentError, match="column 's' of dataset 'pl' is .*pick a numeric"):
        ds.plot("s")
    with pytest.raises(KeyError, match="'pl' has no device 'zz'; devices are"):
        ds.plot("x", device="zz")
    with pytest.raises(InvalidArgumentError, match="not a pair"):
        ds.plot("x", date_range="2026-01-01")
    with pytest.raises(InvalidArgumentError, match="starts after it ends"):
        ds.plot("x", date_range=("2026-02-01", "2026-01-01"))
    with pytest.raises(InvalidArgumentError, match="max_points=1 .*'pl'"):
        ds.plot("x", max_points=1)


def test_too_many_devices_ask_for_one(client, frame, monkeypatch):
    import chunkframe.display.plot as cfp

    monkeypatch.setattr(cfp, "MAX_LINES", 3)
    ds = client.ingest(frame, "many", chunk_rows=CHUNK, time_column="time", device_column="dev",
                       progress=False)
    with pytest.raises(InvalidArgumentError, match="10 devices .* pick one with device="):
        ds.plot("x")
    assert MAX_LINES == 12


def test_chunks_overlapping_and_downsample_edges():
    from chunkframe.core.model import ChunkMeta

    metas = [ChunkMeta(0, 0, 1, "a", "c", 1, {}), ChunkMeta(1, 1, 1, "b", "c", 1, {"d": [5, 6]})]
    assert chunks_overlapping(metas, 7, None) == [0]  # no statistics: it may hold anything
    assert chunks_overlapping(metas, None, 5, "d") == [0, 1]
    x, y = minmax_downsample(np.arange(5), np.array([1.0, np.nan, 3, 4, 5]), 10)
    assert list(x) == [0, 2, 3, 4]  # NaN dropped, nothing else to do
    with pytest.raises(InvalidArgumentError, match="max_points=1 is too small"):
        minmax_downsample(x, y, 1)


# -- interactive: zoom re-reads only the chunks in view ----------------------------------------

def test_interactive_zoom_reads_only_the_chunks_in_view(client):
    minutes = 60 * 24 * 30
    t = pd.date_range("2026-01-01", periods=minutes, freq="min", tz="UTC")
    df = pd.DataFrame({"time": np.repeat(t, 2), "dev": np.tile(["a", "b"], minutes),
                       "v": np.random.default_rng(0).normal(size=2 * minutes)})
    ds = client.ingest(df, "month", chunk_rows=10_000, time_column="time", device_column="dev",
                       progress=False)
    ds.tag("units", {"v": "bar"}, type="DATA")
    client.reader.clear()
    w = ds.plot("v", device="a", interactive=True)
    assert isinstance(w, ZoomPlot) and w.ylabel == "v [bar]" and w.xlabel == "time (UTC)"
    assert w.full == [t[0].value / 1e6, t[-1].value / 1e6] and w.view == w.full
    (whole,) = w.series
    assert not whole["raw"] and len(whole["x"]) <= w.width and max(whole["high"]) == (
        df.loc[df.dev == "a", "v"].max())
    assert w.reads[-1][1:3] == (len(ds.chunks), minutes) and "min–max band" in w.status
    client.reader.clear()
    misses, skipped = ds.cache_info()["misses"], ds.cache_info()["skipped"]
    hour = t[10 * 24 * 60].value / 1e6
    w.view = [hour, hour + 3_600_000]  # what the wheel sends: one hour, in ms
    (part,) = w.series
    assert part["raw"] and len(part["x"]) == 61  # single readings, both ends included
    want = df[(df.dev == "a") & df.time.between(t[10 * 24 * 60], t[10 * 24 * 60 + 60])]["v"]
    assert np.allclose(part["mean"], want.to_numpy())
    assert w.reads[-1][1] == 1 and ds.cache_info()["misses"] - misses == 1  # one chunk read
    assert ds.cache_info()["skipped"] - skipped == len(ds.chunks) - 1  # the rest by statistics
    assert "61 rows · 1 of 9 chunks read · 61 readings" in w.status
    w.view = list(w.full)  # a double click: the whole range again, from memory
    assert w.series == [whole] and ds.cache_info()["misses"] - misses == 1


def test_interactive_without_time_zooms_by_serial_number(client):
    ds = client.ingest(pd.DataFrame({"a": np.arange(10_000) % 97}), "rows", chunk_rows=1_000,
                       progress=False)
    w = ds.plot("a", interactive=True)
    assert not w.time_axis and w.full == [0.0, 9_999.0] and w.xlabel == "sn"
    w.view = [2_500.0, 2_600.0]
    assert w.series[0]["raw"] and w.series[0]["x"][0] == 2_500 and w.reads[-1][1] == 1
    with pytest.raises(InvalidArgumentError, match="no time column"):
        ds.plot("a", date_range=("2026-01-01", None), interactive=True)


def test_categorical_and_integer_device_columns(client, frame):
    cat = frame.assign(dev=frame["dev"].astype("category"))
    ds = client.ingest(cat, "cat", chunk_rows=CHUNK, time_column="time", device_column="dev",
                       progress=False)
    (line,) = lines(ds.plot("x", device="d3", date_range=("2026-01-01 00:20", "2026-01-01 00:30")))
    want = frame[(frame.dev == "d3") & frame.time.between(pd.Timestamp("2026-01-01 00:20", tz="UTC"),
                                                          pd.Timestamp("2026-01-01 00:30", tz="UTC"))]
    assert np.allclose(line.get_ydata(), want["x"].to_numpy())
    ints = frame.assign(dev=frame["dev"].str[1:].astype("int64"))
    ds = client.ingest(ints, "ints", chunk_rows=CHUNK, time_column="time", device_column="dev",
                       progress=False)
    (line,) = lines(ds.plot("x", device=3, date_range=("2026-01-01 00:20", "2026-01-01 00:30")))
    assert np.allclose(line.get_ydata(), want["x"].to_numpy())
    many = ds.plot("x", date_range=("2026-01-01 00:00", "2026-01-01 00:01"))
    assert sorted(line.get_label() for line in lines(many)) == sorted(str(i) for i in range(10))


def test_a_device_plot_fetches_only_the_chunks_holding_the_device(client):
    """Without a date range too: the device's span from the statistics skips the chunks
    not holding it, and the line is the device's rows, as pandas selects them."""
    n = 4_000
    df = pd.DataFrame({
        "time": pd.date_range("2026-01-01", periods=n, freq="s", tz="UTC"),
        "dev": pd.array(np.repeat(["a", "b", "c", "d"], n // 4), dtype="str"),
        "x": np.random.default_rng(5).normal(size=n),
    })
    df.loc[1_700, "x"] = np.nan  # a missing value of b is not drawn
    ds = client.ingest(df, "blocks", chunk_rows=CHUNK, time_column="time",
                       device_column="dev", progress=False)
    cold = client.open("blocks")
    before = cold.cache_info()
    (line,) = lines(cold.plot("x", device="b", max_points=10_000))
    info = cold.cache_info()
    assert info["fetches"] - before["fetches"] == 2  # rows 1,000..1,999: chunks 2 and 3 of 8
    assert info["skipped"] - before["skipped"] == 6
    want = df[(df.dev == "b") & df.x.notna()]
    assert np.array_equal(line.get_ydata(), want["x"].to_numpy())
    assert np.array_equal(pd.to_datetime(line.get_xdata()),
                          want["time"].dt.tz_localize(None).to_numpy())
    mixed = client.ingest(df.assign(dev=pd.array(np.tile(["a", "b", "c", "d"], n // 4),
                                                 dtype="str"), x=np.arange(n, dtype=float)),
                          "mixed",
                          chunk_rows=CHUNK, time_column="time", device_column="dev",
                          progress=False)
    skipped = mixed.cache_info()["skipped"]
    (line,) = lines(mixed.plot("x", device="c", max_points=10_000))  # every chunk holds c
    assert len(line.get_ydata()) == n // 4 and mixed.cache_info()["skipped"] == skipped
    with pytest.raises(KeyError, match="no device 'z'"):
        ds.plot("x", device="z")
