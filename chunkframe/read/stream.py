"""The Arrow PyCapsule stream of a dataset: DuckDB, Polars and pyarrow read it chunk by chunk."""

from __future__ import annotations

from typing import Any, Protocol

import pyarrow as pa

from ..core.errors import InvalidArgumentError

__all__ = ["arrow_c_stream", "requested_columns", "Batched"]


class Batched(Protocol):
    """What a stream is made from: a dataset (local, remote, or its read engine) that names
    itself, knows its schema and hands out its batches, of some columns if asked."""

    @property
    def id(self) -> str: ...

    @property
    def schema(self) -> pa.Schema: ...

    def to_batches(self, columns: list[str] | None = None) -> pa.RecordBatchReader: ...


def requested_columns(schema: pa.Schema, requested: pa.Schema, dataset_id: str) -> list[str] | None:
    """The columns to read for ``requested`` (None: all of them, in order), each checked to
    exist and to have a cast from its type to the one asked.

    A requested schema naming some of the columns, or them in another order, is a projection;
    one whose types differ asks for a cast, as pyarrow's own readers do.
    """
    names = schema.names
    unknown = [f.name for f in requested if f.name not in names]
    if unknown:
        raise InvalidArgumentError(
            f"the requested schema of the Arrow stream of dataset {dataset_id!r} names "
            f"{unknown!r}, which it has no column of; its columns are {names!r}. Request some "
            "of those (any order: a projection), or none (requested_schema=None)")
    if len(set(requested.names)) != len(requested.names):
        raise InvalidArgumentError(
            f"the requested schema of the Arrow stream of dataset {dataset_id!r} names a "
            f"column twice ({requested.names!r}); request each once")
    for f in requested:
        have = schema.field(f.name).type
        if have.equals(f.type):
            continue
        try:
            pa.array([], have).cast(f.type)
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            raise InvalidArgumentError(
                f"column {f.name!r} of dataset {dataset_id!r} is {have}, and Arrow has no cast "
                f"from it to the requested {f.type}; request {have} (or a type it casts to), "
                "or leave the column's type as it is") from None
    return None if requested.names == names else list(requested.names)


def arrow_c_stream(ds: Batched, requested_schema: Any = None) -> Any:
    """``ds.__arrow_c_stream__(requested_schema)``: a PyCapsule of an ``ArrowArrayStream``
    over ``ds.to_batches()``, so each chunk is fetched, verified and decoded as the consumer
    asks for it (a few ahead), never the whole dataset at once.

    ``requested_schema`` (a PyCapsule of an ``ArrowSchema``, from the consumer) selects and
    orders columns by name and casts them to its types; a name the dataset lacks or a type
    Arrow cannot cast to raises :class:`InvalidArgumentError` at once.

    Examples
    --------
    >>> import pyarrow as pa
    >>> pa.table(ds).num_rows == len(ds)                                # doctest: +SKIP
    True
    """
    if requested_schema is None:
        return ds.to_batches().__arrow_c_stream__()
    requested = pa.Schema._import_from_c_capsule(requested_schema)
    columns = requested_columns(ds.schema, requested, ds.id)
    reader = ds.to_batches(columns)
    if reader.schema.remove_metadata().equals(requested.remove_metadata()):
        return reader.__arrow_c_stream__()
    target = pa.schema(list(requested), metadata=requested.metadata)
    return pa.RecordBatchReader.from_batches(
        target, (batch.cast(target) for batch in reader)).__arrow_c_stream__()
