"""Deterministic test frames covering every dtype chunkframe promises to round-trip."""

from __future__ import annotations

import numpy as np
import pandas as pd


def all_dtypes(n: int = 5_000, seed: int = 0) -> pd.DataFrame:
    """int, Int64/boolean with NA, float with NaN, bool, str with missing, categorical,
    naive and tz-aware datetimes, timedeltas."""
    rng = np.random.default_rng(seed)
    missing = rng.random(n) < 0.1
    ints = pd.array(rng.integers(-5, 5, n), dtype="Int64")
    ints[missing] = pd.NA
    flags = pd.array(rng.random(n) < 0.5, dtype="boolean")
    flags[rng.random(n) < 0.1] = pd.NA
    floats = rng.normal(size=n)
    floats[rng.random(n) < 0.1] = np.nan
    text = pd.Series(rng.choice(["alpha", "beta", "gamma", "δέλτα"], n), dtype="str")
    text[rng.random(n) < 0.1] = None
    return pd.DataFrame({
        "i": rng.integers(0, 1_000, n),
        "ni": ints,
        "nb": flags,
        "f": floats,
        "b": rng.random(n) < 0.5,
        "s": text,
        "c": pd.Categorical(rng.choice(["lo", "mid", "hi"], n), categories=["lo", "mid", "hi", "x"],
                            ordered=True),
        "t": pd.date_range("2025-01-01", periods=n, freq="min"),
        "tz": pd.date_range("2025-01-01", periods=n, freq="h", tz="Europe/Paris"),
        "td": pd.to_timedelta(rng.integers(0, 10_000, n), unit="s"),
    })


def sensors(n: int = 20_000, devices: int = 10, seed: int = 1) -> pd.DataFrame:
    """Time-ordered readings of a few devices: a float, an int and a string measurement."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "time": pd.date_range("2026-01-01", periods=n, freq="s", tz="UTC"),
        "dev": pd.Categorical(rng.choice([f"d{i}" for i in range(devices)], n)),
        "x": rng.normal(size=n),
        "k": rng.integers(0, 100, n),
        "s": pd.Series(rng.choice(["ok", "warn"], n), dtype="str"),
    })
