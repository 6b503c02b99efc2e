"""Regenerate the sample sensor readings (deterministic): python data/samples/make_samples.py

Writes them here and to ``chunkframe/samples/``, the copy shipped in the package for
``chunkframe demo`` (tests/test_cli.py checks the two are equal).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
PACKAGED = HERE.parents[1] / "chunkframe" / "samples"


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


if __name__ == "__main__":
    df = sensors()
    for where in (HERE, PACKAGED):
        df.to_csv(where / "sensors.csv", index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
        df.to_parquet(where / "sensors.parquet", index=False)
        print(f"wrote {len(df)} rows to {where}")
