"""``chunkframe demo``: the main job on the sample data shipped with the package."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..core.errors import Arg, ChunkFrameError, Hint, PathNotFoundError
from ..core.units import plural
from .cli_output import table

if TYPE_CHECKING:
    from ..session import Client

__all__ = ["run_demo", "SAMPLES_DIR"]

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
"""The demo's sample files, package data: copies of the source tree's ``data/samples``
(``python data/samples/make_samples.py`` writes both; a test checks they are equal)."""


def _comparable(df: pd.DataFrame) -> pd.DataFrame:
    """Datetimes at one resolution, so Parquet (us) and CSV (s) reads compare by value."""
    df = df.copy()
    for col in df.columns:
        if isinstance(df[col].dtype, pd.DatetimeTZDtype) or df[col].dtype.kind == "M":
            df[col] = df[col].dt.as_unit("ns")
    return df


def run_demo(client: Client, samples_dir: str | os.PathLike[str] = SAMPLES_DIR,
             out: Callable[[str], Any] = print, progress: bool | None = False) -> dict[str, Any]:
    """The main job on one client: ingest the samples, read, last values, tags, verify.

    Ingests ``sensors.parquet`` as ``sensors`` and ``sensors.csv`` as ``sensors_csv`` (with
    ``mode="overwrite"``, so it can run again), checks both read back equal, reads values by
    serial number, shows the last value of every series, tags the dataset and searches a tag,
    verifies every chunk, and prints what it did with timings. Returns that summary.
    """
    samples = Path(samples_dir)
    files = {"parquet": samples / "sensors.parquet", "csv": samples / "sensors.csv"}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise PathNotFoundError(
            f"demo sample data not found: {', '.join(missing)}",
            hint=Hint("pass {} (a folder holding sensors.parquet and sensors.csv), or make them "
                      "with python data/samples/make_samples.py in a source checkout",
                      Arg("samples_dir")),
        )
    steps: list[dict[str, Any]] = []

    def step(name: str, began: float, result: str) -> None:
        steps.append({"step": name, "seconds": time.perf_counter() - began, "result": result})

    options: dict[str, Any] = {"time_column": "time", "device_column": "sensor", "mode": "overwrite",
               "chunk_rows": 8_192, "progress": progress}
    t = time.perf_counter()
    ds = client.ingest(str(files["parquet"]), "sensors", **options)
    step("ingest sensors.parquet", t,
         f"{plural(len(ds), 'row')} in {plural(ds.meta.chunks, 'chunk')} as 'sensors'")
    t = time.perf_counter()
    ds_csv = client.ingest(str(files["csv"]), "sensors_csv", **options)
    step("ingest sensors.csv", t,
         f"{plural(len(ds_csv), 'row')} in {plural(ds_csv.meta.chunks, 'chunk')} as 'sensors_csv'")

    t = time.perf_counter()
    a, b = _comparable(ds.to_pandas()), _comparable(ds_csv.to_pandas())
    try:
        pd.testing.assert_frame_equal(a, b)
    except AssertionError as exc:
        raise ChunkFrameError(
            f"demo: 'sensors' (from Parquet) and 'sensors_csv' (from CSV) read back different: "
            f"{' '.join(str(exc).split())[:300]}") from None
    step("compare parquet vs csv", t,
         f"equal: {plural(len(a), 'row')} x {plural(a.shape[1], 'column')}")

    t = time.perf_counter()
    n = len(ds)
    sns = [0, n // 2, n - 1]
    row = ds.get(n // 2)
    value = ds.get(n // 2, "temperature")
    picked = ds.get_many(sns)
    step("read by serial number", t, f"get({n // 2}, 'temperature') = {value}; "
                                     f"get_many: {plural(len(picked), 'row')}")
    out(f"row {n // 2} of 'sensors':")
    out(row.to_string())
    out("")
    out(f"rows {sns}:")
    out(table(picked, index=True))
    out("")

    t = time.perf_counter()
    last = ds.last()
    step("last values", t, plural(len(last), "series", "series"))
    out("last value of every series of 'sensors':")
    out(table(_last_view(last)))
    out("")

    t = time.perf_counter()
    ds.tag("source", str(files["parquet"]), keywords=["demo", "samples"])
    ds.tag("description", "readings of 20 sensors: temperature, humidity, pressure, battery",
           keywords=["demo"])
    ds_csv.tag("source", str(files["csv"]), keywords=["demo", "samples"])
    found = ds.find("demo")
    step("tag and search", t, f"find('demo') -> {plural(len(found), 'tag')}")
    out("tags of 'sensors' with keyword 'demo':")
    out(table(found))
    out("")

    t = time.perf_counter()
    bad = pd.concat([ds.verify(progress=progress), ds_csv.verify(progress=progress)])
    chunks = ds.meta.chunks + ds_csv.meta.chunks
    step("verify checksums", t, f"{plural(chunks, 'chunk')}, {len(bad)} damaged")
    if len(bad):
        raise ChunkFrameError(f"demo: {plural(len(bad), 'chunk')} failed verification: "
                              f"{bad['problem'].iloc[0]}")

    total = sum(s["seconds"] for s in steps)
    view = pd.DataFrame(steps)
    view["seconds"] = view["seconds"].map("{:.3f}".format)
    out("summary:")
    out(table(view))
    out(f"done in {total:.2f} s; datasets 'sensors' and 'sensors_csv' are ready "
        f"(try: chunkframe get sensors 0 1 2)")
    return {"datasets": ["sensors", "sensors_csv"], "rows": n, "equal": True,
            "steps": steps, "seconds": total}


def _last_view(last: pd.DataFrame) -> pd.DataFrame:
    """Last values as one row per device and one column per measurement, when that fits."""
    try:
        wide = last.pivot(index="device", columns="measurement", values="value")
        wide = wide[list(dict.fromkeys(last["measurement"]))]  # the dataset's column order
        wide.columns.name = None
        return wide.reset_index()
    except (KeyError, ValueError):
        return last


