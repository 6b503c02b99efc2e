"""Regenerate the sample sensor readings (deterministic): python data/samples/make_samples.py

Writes them here and to ``chunkframe/samples/``, the copy shipped in the package for
``chunkframe demo`` (tests/test_cli.py checks the two are equal).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
PACKAGED = HERE.parents[1] / "chunkframe" / "frontends" / "samples"


def sensors(rows: int = 50_000, devices: int = 20, seed: int = 7) -> pd.DataFrame:
    """Readings from ``devices`` sensors every ~30 s, with some gaps (nulls) and a status."""
    rng = np.random.default_rng(seed)
    names = [f"sensor-{i:02d}" for i in range(devices)]
    device = rng.choice(names, rows)
    time = pd.Timestamp("2026-01-01T00:00:00Z") + pd.to_timedelta(
        np.sort(rng.integers(0, rows * 30, rows)), unit="s")
    base = rng.normal(21.0, 2.0, devices)[np.searchsorted(names, device)]
    df = pd.DataFrame({
        "time": time,
        "sensor": device,
        "temperature": np.round(base + rng.normal(0, 0.5, rows), 2),
        "humidity": np.round(rng.uniform(30, 70, rows), 1),
        "pressure": np.round(rng.normal(1013, 5, rows), 1),
        "battery": rng.integers(5, 101, rows),
        "status": rng.choice(["ok", "ok", "ok", "warn", "fail"], rows),
    })
    for col, frac in (("temperature", 0.01), ("humidity", 0.02), ("pressure", 0.005)):
        df.loc[rng.random(rows) < frac, col] = np.nan
    return df


def flights(rows: int = 336_776, seed: int = 13) -> pd.DataFrame:
    """A wide, real-looking table shaped like nycflights13's ``flights`` (19 columns): text
    with missing values and hundreds to thousands of distinct values, nullable integers,
    floats with NaN, a tz-aware timestamp. Benchmarks use it where users are, not where
    chunkframe is easy."""
    rng = np.random.default_rng(seed)
    sched = np.sort(rng.integers(0, 365 * 24 * 60, rows))  # minutes into 2013, in order
    when = (pd.Timestamp("2013-01-01 05:00", tz="UTC") + pd.to_timedelta(sched, unit="min")
            ).tz_convert("America/New_York")
    hour, minute = (sched // 60) % 24, sched % 60
    cancelled = rng.random(rows) < 0.025
    dep_delay = np.round(rng.gamma(0.6, 20.0, rows) - 5.0)
    dep_delay[cancelled] = np.nan
    arr_delay = np.round(dep_delay + rng.normal(-5.0, 10.0, rows))
    arr_delay[rng.random(rows) < 0.003] = np.nan

    def clock(minutes: np.ndarray, missing: np.ndarray) -> pd.array:
        m = np.nan_to_num(minutes).astype(np.int64) % (24 * 60)
        out = pd.array((m // 60) * 100 + m % 60, dtype="Int64")
        out[missing] = pd.NA
        return out

    sched_dep = hour * 60 + minute
    air_time = np.round(rng.uniform(20, 690, rows))
    air_time[np.isnan(arr_delay)] = np.nan
    carriers = ["UA", "B6", "EV", "DL", "AA", "MQ", "US", "9E", "WN", "VX", "FL", "AS",
                "F9", "YV", "HA", "OO"]
    tails = np.array([f"N{n}{rng.choice(list('ABCDEFGHJKLMNPRSTUVWXYZ'))}"
                      for n in rng.integers(100, 999, 4_043)], dtype=object)
    tailnum = pd.Series(tails[rng.integers(0, len(tails), rows)], dtype="str")
    tailnum[rng.random(rows) < 0.0075] = None
    dests = np.array([f"{a}{b}{c}" for a, b, c in rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
                                                                (105, 3))], dtype=object)
    return pd.DataFrame({
        "year": np.full(rows, 2013),
        "month": when.month.to_numpy(),
        "day": when.day.to_numpy(),
        "dep_time": clock(sched_dep + dep_delay, cancelled),
        "sched_dep_time": hour * 100 + minute,
        "dep_delay": dep_delay,
        "arr_time": clock(sched_dep + air_time + arr_delay, np.isnan(arr_delay)),
        "sched_arr_time": ((sched_dep + 150) % 1440 // 60) * 100 + (sched_dep + 150) % 60,
        "arr_delay": arr_delay,
        "carrier": pd.Series(rng.choice(carriers, rows), dtype="str"),
        "flight": rng.integers(1, 8_500, rows),
        "tailnum": tailnum,
        "origin": pd.Series(rng.choice(["EWR", "JFK", "LGA"], rows), dtype="str"),
        "dest": pd.Series(dests[rng.integers(0, len(dests), rows)], dtype="str"),
        "air_time": air_time,
        "distance": rng.integers(17, 4_983, rows),
        "hour": hour,
        "minute": minute,
        "time_hour": when.tz_convert("UTC").floor("h").tz_convert("America/New_York"),
    })


if __name__ == "__main__":
    df = sensors()
    for where in (HERE, PACKAGED):
        df.to_csv(where / "sensors.csv", index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
        df.to_parquet(where / "sensors.parquet", index=False)
        print(f"wrote {len(df)} rows to {where}")
