"""The active Dask ``distributed.Client`` that parallel ingest, compaction and aggregations use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import BackendUnavailableError

if TYPE_CHECKING:
    import distributed

__all__ = ["INSTALL", "dask_client"]

INSTALL = "pip install 'chunkframe[dask]'"
"""How to install what Dask needs."""


def dask_client(dataset_id: str, doing: str = "ingesting") -> distributed.Client:
    """The active ``distributed.Client``, or a :class:`BackendUnavailableError` saying how
    to start one (or to install the extra) for ``doing`` (what needs it) the dataset."""
    try:
        import distributed
    except ImportError as exc:
        raise BackendUnavailableError(
            f"{doing} dataset {dataset_id!r} on Dask needs dask and distributed: {INSTALL}"
        ) from exc
    try:
        return distributed.default_client()
    except ValueError:
        raise BackendUnavailableError(
            f"{doing} dataset {dataset_id!r} on Dask needs a running distributed.Client, and "
            "this process has none. Start one first: `from distributed import Client; "
            "client = Client()` (a LocalCluster on this machine) or "
            "`Client('tcp://scheduler:8786')` (a cluster that reaches the same Redis and store)"
        ) from None
