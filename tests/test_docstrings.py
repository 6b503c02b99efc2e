"""Public methods carry numpydoc docstrings: a summary line, Parameters, Returns, Examples."""

from __future__ import annotations

import inspect

import pytest

from chunkframe.contextcache import Context
from chunkframe.dataset import Dataset

DOCUMENTED = [
    *((Dataset, name) for name in ("meta", "columns", "schema", "chunks", "get", "get_many",
                                   "slice", "head", "tail", "update", "verify", "cache_info",
                                   "append", "last", "delete", "reset_last", "context", "tag",
                                   "tags", "find",
                                   "export", "browse", "iter_chunks", "to_pandas", "to_arrow",
                                   "to_batches", "plot", "chunk_metas", "storage")),
    *((Context, name) for name in ("put", "put_many", "remove", "clear", "get", "search",
                                   "to_frame", "items", "values", "keys", "info")),
]


@pytest.mark.parametrize("cls, name", DOCUMENTED, ids=lambda x: getattr(x, "__name__", x))
def test_numpydoc(cls, name):
    member = inspect.getattr_static(cls, name)
    doc = inspect.getdoc(member) or ""
    summary, _, body = doc.partition("\n")
    assert summary.endswith(".") and len(summary) <= 100, f"{cls.__name__}.{name}: {summary!r}"
    assert "Examples\n--------" in body, f"{cls.__name__}.{name} has no Examples"
    if isinstance(member, property):
        return
    params = [p for p in inspect.signature(member).parameters if p != "self"]
    if params:
        assert "Parameters\n----------" in body, f"{cls.__name__}.{name} has no Parameters"
        for p in params:
            assert p in body, f"{cls.__name__}.{name} does not describe {p!r}"
