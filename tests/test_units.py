"""The one byte formatter: binary units, every repr and the command line use it."""

from __future__ import annotations

import math

import pytest

from chunkframe.core.units import format_bytes


@pytest.mark.parametrize("n, text", [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
    (2**20, "1.0 MiB"), (256 * 2**20, "256.0 MiB"), (3 * 2**30, "3.0 GiB"),
    (5 * 2**40, "5.0 TiB"), (2**60, "1024.0 PiB"), (1024.0, "1.0 KiB"), (-2048, "-2.0 KiB"),
])
def test_sizes_in_binary_units(n, text):
    assert format_bytes(n) == text


@pytest.mark.parametrize("n", [None, math.nan, float("nan")])
def test_unknown_sizes_are_a_dash(n):
    assert format_bytes(n) == "-"


def test_no_other_byte_formatter_is_left():
    """Reprs of datasets, contexts, the remote client and the CLI share this one."""
    import chunkframe.contextcache.cache as contexts
    import chunkframe.contextcache.context as context
    import chunkframe.display.reprs as reprs
    import chunkframe.display.widgets as widgets
    import chunkframe.frontends.cli as cli
    import chunkframe.service.remote as remote

    for module in (reprs, widgets, contexts, context, cli, remote):
        assert module.format_bytes is format_bytes, module.__name__
