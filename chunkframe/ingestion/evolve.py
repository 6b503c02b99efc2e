"""Schema evolution on append: the dataset's newest schema when appended data adds or widens
columns, with the dtypes ``pd.concat`` would give."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..core.errors import Arg, Hint, SchemaMismatchError
from ..core.model import schema_dictionaries, with_dictionaries

__all__ = ["evolve_schema", "align_units"]


def evolve_schema(schema: pa.Schema, incoming: pa.Schema, dataset_id: str,
                  required: tuple[str | None, ...] = (),
                  categories: Mapping[str, pa.Array] | None = None) -> pa.Schema:
    """``schema`` grown to hold rows of ``incoming`` as ``pd.concat`` would.

    Columns only one side has are kept (new ones at the end); rows without them read them
    as missing, so an integer column becomes float64 (a nullable one stays nullable). A
    column both have in different numeric types is widened to their common type (int ->
    float, int32 -> int64, int64 -> Int64...). Any other difference, or a ``required``
    column (time, device) missing from ``incoming``, is a :class:`SchemaMismatchError`
    naming every such column. ``categories``: the categories of categorical columns, of
    which those only one side has are recorded in the schema (the other side's rows read
    as missing values of that categorical dtype).
    """
    old_types, new_types = _dtypes(schema), _dtypes(incoming)
    if schema.equals(incoming) and old_types == new_types:
        return schema
    old_meta, new_meta = _entries(schema), _entries(incoming)
    names = schema.names + [n for n in incoming.names if n not in schema.names]
    fields, entries, problems = [], [], []
    recorded = schema_dictionaries(schema)
    for name in names:
        if name in required and name not in incoming.names:
            problems.append(f"{name!r} (the dataset's {'time' if name == required[0] else 'device'}"
                            " column) is missing")
            continue
        if name in schema.names and name in incoming.names:
            a, b = schema.field(name), incoming.field(name)
            same = a.type.equals(b.type)
            common = None if same and old_types[name] == new_types[name] else _common(
                old_types[name], new_types[name])
            if common is None and same:
                fields.append(a)
                entries.append(old_meta.get(name))
                continue
            if common is None:
                problems.append(f"{name!r} is {old_types[name]} in the dataset but "
                                f"{new_types[name]} in the appended data")
                continue
            field, entry = _typed(name, common)
        else:  # the rows of the other side read it as missing
            field = schema.field(name) if name in schema.names else incoming.field(name)
            entry = (old_meta if name in schema.names else new_meta).get(name)
            dtype = (old_types if name in schema.names else new_types)[name]
            if isinstance(dtype, np.dtype) and dtype.kind in "iu":
                field, entry = _typed(name, np.dtype("float64"))
            if pa.types.is_dictionary(field.type) and categories and name in categories:
                recorded.setdefault(name, categories[name])
        fields.append(field)
        entries.append(entry)
    if problems:
        raise SchemaMismatchError(
            f"cannot evolve the schema of dataset {dataset_id!r}: {'; '.join(problems)}",
            hint=Hint("convert those columns first, or use {} to replace the dataset",
                      Arg("mode", "overwrite")))
    return with_dictionaries(pa.schema(fields, metadata=_metadata(schema, entries)),
                             {n: d for n, d in recorded.items() if n in names})


def align_units(table: pa.Table, schema: pa.Schema, dataset_id: str) -> pa.Table:
    """``table`` with each column that differs from ``schema``'s only in its time unit (a
    timestamp in the same time zone, a duration) cast to the dataset's unit, as a plain
    append casts it: a unit is not an evolution. A cast that would lose precision or
    overflow is a :class:`SchemaMismatchError` naming the column."""
    for field in schema:
        i = table.schema.get_field_index(field.name)
        if i < 0 or not _unit_change(table.schema.field(i).type, field.type):
            continue
        column = table.column(i)
        try:
            cast = column.cast(field.type, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SchemaMismatchError(
                f"cannot append to dataset {dataset_id!r}: column {field.name!r} of the appended "
                f"data is {column.type} but the dataset stores {field.type}, and it cannot be "
                f"converted without loss ({exc})",
                hint=Hint("round the column to the dataset's unit first, or use {} to replace "
                          "the dataset", Arg("mode", "overwrite"))) from exc
        table = table.set_column(i, table.schema.field(i).with_type(field.type), cast)
    return table


def _unit_change(got: pa.DataType, want: pa.DataType) -> bool:
    """Whether ``got`` and ``want`` are one time type in two units."""
    if got.equals(want):
        return False
    if pa.types.is_timestamp(got) and pa.types.is_timestamp(want):
        return bool(got.tz == want.tz)
    return pa.types.is_duration(got) and pa.types.is_duration(want)


def _dtypes(schema: pa.Schema) -> dict[str, Any]:
    """The pandas dtype of each column of ``schema`` (through its pandas metadata)."""
    return dict(schema.empty_table().to_pandas().dtypes.items())


def _entries(schema: pa.Schema) -> dict[str, Any]:
    """Each column's entry in the pandas metadata, by name."""
    meta = schema.pandas_metadata or {}
    return {c["name"]: c for c in meta.get("columns", []) if c.get("name") is not None}


def _typed(name: str, dtype: Any) -> tuple[pa.Field, Any]:
    """The Arrow field and pandas metadata entry of a column of ``dtype``."""
    schema = pa.Schema.from_pandas(pd.DataFrame({name: pd.Series([], dtype=dtype)}),
                                   preserve_index=False)
    return schema.field(name), _entries(schema).get(name)


def _common(a: Any, b: Any) -> Any:
    """The dtype ``pd.concat`` gives two numeric columns (None if either is not numeric)."""
    def numeric(d: Any) -> bool:
        return pd.api.types.is_numeric_dtype(d) and not pd.api.types.is_bool_dtype(d)

    if not (numeric(a) and numeric(b)):
        return None
    result = np.result_type(getattr(a, "numpy_dtype", a), getattr(b, "numpy_dtype", b))
    if isinstance(a, np.dtype) and isinstance(b, np.dtype):
        return result
    # a nullable side keeps the result nullable: Int64, Float64, UInt16...
    return pd.api.types.pandas_dtype(
        result.name.replace("uint", "UInt").replace("int", "Int").replace("float", "Float"))


def _metadata(schema: pa.Schema, entries: list[Any]) -> dict[bytes, bytes]:
    """``schema``'s metadata with the pandas column entries replaced by ``entries``."""
    meta = dict(schema.metadata or {})
    pandas_meta = schema.pandas_metadata
    if pandas_meta is not None:
        pandas_meta["columns"] = [e for e in entries if e is not None]
        meta[b"pandas"] = json.dumps(pandas_meta).encode()
    return meta
