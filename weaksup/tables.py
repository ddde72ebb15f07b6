"""Table schemas, validation and atomic Parquet writing.

Every stage talks to the next through Parquet tables whose schemas live as JSON in
``schemas/`` (shipped as ``weaksup.schemas``). Writers go through :func:`write_table`,
which conforms the data to the schema, writes to a temporary name and renames, so a
killed job never leaves a half-written table under the final name. Inputs and outputs
are paths or object-store uris (:mod:`weaksup.uris`).

Readers (:func:`read_table`) accept tables written by other tools (pandas,
``pa.Table.from_pylist``): types are cast where every value fits and refused naming the
column and row where one does not; columns a schema marks ``"required": false`` may be
missing and are filled. CSV inputs are read strictly (:func:`strict_csv_rows`). A stage that
needs an input Parquet file's footer or row groups rather than a checked table opens it with
:func:`open_parquet`, which words a missing or non-Parquet file like :func:`read_table` does.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from weaksup import uris
from weaksup.errors import InputError, first_line
from weaksup.outputs import atomic_output
from weaksup.uris import PathOrUri

SCHEMA_META_KEY = b"weaksup.schema"

_PRIMITIVES: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "string": pa.string(),
    "binary": pa.binary(),
    "timestamp[us]": pa.timestamp("us"),
    "timestamp[us, UTC]": pa.timestamp("us", tz="UTC"),
}


def parse_arrow_type(text: str) -> pa.DataType:
    """Parse the small Arrow type language used in schema files: primitives and list<...>."""
    text = text.strip()
    m = re.fullmatch(r"list<(.+)>", text)
    if m:
        return pa.list_(parse_arrow_type(m.group(1)))
    if text in _PRIMITIVES:
        return _PRIMITIVES[text]
    raise ValueError(f"unknown Arrow type {text!r} in schema")


@dataclass(frozen=True)
class Field:
    """One column. ``required`` columns must be in every input table; an optional one that
    is missing is filled by :func:`read_table` with ``default`` (or nulls when nullable)."""

    name: str
    type: str
    nullable: bool
    description: str
    required: bool = True
    default: Any = None

    @property
    def arrow_type(self) -> pa.DataType:
        return parse_arrow_type(self.type)

    @property
    def fillable(self) -> bool:
        """Whether a missing column can be filled (with the default, or nulls)."""
        return self.default is not None or self.nullable


@dataclass(frozen=True)
class Schema:
    name: str
    version: int
    description: str
    fields: tuple[Field, ...]
    # Groups of optional columns of which an input needs at least one (features: label_id or label).
    require_one_of: tuple[tuple[str, ...], ...] = ()

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def requirement(self) -> str:
        """What an input table needs at least, in words (for missing-column messages)."""
        parts = [f.name for f in self.fields if f.required]
        parts += [" or ".join(group) for group in self.require_one_of]
        return ", ".join(parts)

    def subset(self, names: list[str]) -> "Schema":
        """The schema of only the columns ``names`` (groups keep their members among them)."""
        fields = tuple(f for f in self.fields if f.name in names)
        groups = tuple(g for g in (tuple(c for c in group if c in names) for group in self.require_one_of) if g)
        return Schema(self.name, self.version, self.description, fields, groups)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_arrow(self) -> pa.Schema:
        meta = {SCHEMA_META_KEY: f"{self.name}/{self.version}".encode()}
        return pa.schema([pa.field(f.name, f.arrow_type, nullable=f.nullable) for f in self.fields], metadata=meta)

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "version": self.version,
                "description": self.description,
                "fields": [
                    {
                        "name": f.name,
                        "type": f.type,
                        "nullable": f.nullable,
                        "required": f.required,
                        **({"default": f.default} if f.default is not None else {}),
                        "description": f.description,
                    }
                    for f in self.fields
                ],
                **({"require_one_of": [list(g) for g in self.require_one_of]} if self.require_one_of else {}),
            },
            indent=2,
        )


def _schema_files() -> Any:
    """The schema folder, ``weaksup/schemas`` (``schemas/`` at the top of a checkout)."""
    return resources.files("weaksup.schemas")


def schema_names() -> list[str]:
    """Names of every declared table schema."""
    return sorted(p.name[:-5] for p in _schema_files().iterdir() if p.name.endswith(".json"))


def load_schema(name: str) -> Schema:
    """Load ``schemas/NAME.json``; unknown names raise InputError listing the known ones."""
    res = _schema_files().joinpath(f"{name}.json")
    if not res.is_file():
        raise InputError(f"unknown table schema {name!r}; known: {', '.join(schema_names())}")
    raw = json.loads(res.read_text(encoding="utf-8"))
    fields = tuple(
        Field(
            f["name"],
            f["type"],
            bool(f.get("nullable", False)),
            f.get("description", ""),
            bool(f.get("required", True)),
            f.get("default"),
        )
        for f in raw["fields"]
    )
    groups = tuple(tuple(g) for g in raw.get("require_one_of", ()))
    return Schema(raw["name"], int(raw.get("version", 1)), raw.get("description", ""), fields, groups)


# ---- reading tables written by other tools: safe casts where every value fits -------------------


def _is_listlike(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _is_text(t: pa.DataType) -> bool:
    return (
        pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", lambda _: False)(t)
    )


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)


def _cast_problem(actual: pa.DataType, expected: pa.DataType) -> str | None:
    """None when ``actual`` may be cast to ``expected`` (values still checked), ``"text"`` for
    text where numbers are needed, ``"type"`` for any other mismatch."""
    if actual.equals(expected) or pa.types.is_null(actual):
        return None
    if pa.types.is_timestamp(expected) and pa.types.is_timestamp(actual):
        return None
    if _is_listlike(expected):
        return _cast_problem(actual.value_type, expected.value_type) if _is_listlike(actual) else "type"
    if pa.types.is_integer(expected):  # floats are not silently truncated to ids
        if pa.types.is_integer(actual):
            return None
        return "text" if _is_text(actual) else "type"
    if pa.types.is_floating(expected):
        if _is_number(actual):
            return None
        return "text" if _is_text(actual) else "type"
    if _is_text(expected):
        return None if _is_text(actual) or pa.types.is_integer(actual) else "type"
    if pa.types.is_binary(expected):
        return None if pa.types.is_binary(actual) or pa.types.is_large_binary(actual) else "type"
    return "type"


def _leaves(arr: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """The innermost values of a (nested) list array, and the row of ``arr`` each belongs to."""
    rows = np.arange(len(arr), dtype=np.int64)
    while _is_listlike(arr.type):
        parents = pc.list_parent_indices(arr).to_numpy(zero_copy_only=False)
        rows = rows[parents]
        arr = pc.list_flatten(arr)
    return arr, rows


def _leaf_type(t: pa.DataType) -> pa.DataType:
    while _is_listlike(t):
        t = t.value_type
    return t


def _bad_values(values: pa.Array, target: pa.DataType) -> np.ndarray | None:
    """Mask of the non-null values that do not fit ``target`` (integers out of its range, floats
    beyond float32, integers beyond 2^53 for floats), or None when every value fits by type."""
    source = values.type
    valid = values.is_valid().to_numpy(zero_copy_only=False)
    if pa.types.is_integer(target) and pa.types.is_integer(source):
        info, have = np.iinfo(target.to_pandas_dtype()), np.iinfo(source.to_pandas_dtype())
        if have.min >= info.min and have.max <= info.max:
            return None
        v = pc.fill_null(values, 0).to_numpy(zero_copy_only=False)
        bad = np.zeros(len(v), bool)
        if have.min < info.min:
            bad |= v < info.min
        if have.max > info.max:
            bad |= v > info.max
        return bad & valid
    if pa.types.is_float32(target) and pa.types.is_float64(source):
        v = pc.fill_null(values, 0).to_numpy(zero_copy_only=False)
        return np.isfinite(v) & (np.abs(v) > np.finfo(np.float32).max) & valid
    if pa.types.is_floating(target) and pa.types.is_integer(source) and source.bit_width > 32:
        v = pc.fill_null(values, 0).to_numpy(zero_copy_only=False)
        return (np.abs(v.astype(np.float64)) > 2.0**53) & valid  # beyond 2^53 a float64 rounds the id
    return None


def _first_valid(col: pa.ChunkedArray) -> tuple[int, Any] | None:
    """(row, value) of the first non-null innermost value of a column."""
    offset = 0
    for chunk in col.chunks:
        leaves, rows = _leaves(chunk)
        valid = np.flatnonzero(leaves.is_valid().to_numpy(zero_copy_only=False))
        if len(valid):
            return offset + int(rows[valid[0]]), leaves[int(valid[0])].as_py()
        offset += len(chunk)
    return None


def _conform_column(col: pa.ChunkedArray, f: Field, source: str) -> pa.ChunkedArray:
    """``col`` as type ``f.type``, cast where every value fits; InputError naming the column and
    the first row that does not fit."""
    expected = f.arrow_type
    actual = col.type
    if actual.equals(expected) or (pa.types.is_timestamp(expected) and pa.types.is_timestamp(actual)):
        return col
    problem = _cast_problem(actual, expected)
    if problem == "text":
        first = _first_valid(col)
        where = f"; row {first[0]}: {first[1]!r}" if first else ""
        raise InputError(
            f"{source}: column {f.name!r} has type {actual}, expected {f.type} (text where numbers are needed{where})"
        )
    if problem is not None:
        raise InputError(f"{source}: column {f.name!r} has type {actual}, expected {f.type}")
    target = _leaf_type(expected)
    offset = 0
    for chunk in col.chunks:
        leaves, rows = _leaves(chunk)
        bad = _bad_values(leaves, target)
        if bad is not None and bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"{source}: column {f.name!r} row {offset + int(rows[i])}: value {leaves[i].as_py()!r} "
                f"does not fit {f.type} (out of range)"
            )
        offset += len(chunk)
    try:
        return col.cast(expected)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise InputError(
            f"{source}: column {f.name!r} has type {actual} and cannot be read as {f.type} ({first_line(exc)})"
        ) from None


def check_table(table: pa.Table, schema: Schema, source: str) -> pa.Table:
    """Check ``table`` against ``schema`` and return it with every declared column in its
    declared type; InputError naming ``source``, the column (and a row) otherwise.

    Types written by other tools are cast where every value fits: int64 ids to int32 when in
    range, large_string to string, float64 to float32 and back, integers to floats, large_list
    to list and list values likewise, integers to text. A value that does not fit (out of
    range) is refused naming its column and row; text where numbers are needed names the
    first row; floats where integers are needed are refused (never truncated).
    Required columns must be present; optional ones may be missing (:func:`read_table` fills
    them). Extra columns are allowed (schemas say what a table holds at least).
    """
    have = set(table.column_names)
    for f in schema.fields:
        if f.required and f.name not in have:
            raise InputError(
                f"{source}: missing column {f.name!r} (table {schema.name!r} needs {schema.requirement()})"
            )
    for group in schema.require_one_of:
        if not have & set(group):
            raise InputError(
                f"{source}: missing column {' or '.join(repr(c) for c in group)} "
                f"(table {schema.name!r} needs {schema.requirement()})"
            )
    for f in schema.fields:
        if f.name not in have:
            continue
        i = table.column_names.index(f.name)
        col = _conform_column(table.column(i), f, source)
        if col is not table.column(i):
            table = table.set_column(i, pa.field(f.name, col.type, nullable=table.schema.field(i).nullable), col)
        if not f.nullable and col.null_count:
            raise InputError(f"{source}: column {f.name!r} has {col.null_count} null value(s) but is not nullable")
    return table


def fill_optional(table: pa.Table, schema: Schema) -> pa.Table:
    """Add the optional columns of ``schema`` that ``table`` lacks: the field's default, or
    nulls. (An optional column that is neither nullable nor has a default, like features'
    ``label_id`` when ``label`` is there, stays missing: its reader derives it.)"""
    for f in schema.fields:
        if f.name in table.column_names or not f.fillable:
            continue
        if f.default is not None:
            col = pa.array([f.default] * table.num_rows, f.arrow_type)
        else:
            col = pa.nulls(table.num_rows, f.arrow_type)
        table = table.append_column(pa.field(f.name, f.arrow_type, nullable=f.nullable), col)
    return table


def _parquet_source(path: PathOrUri, kind: str = "Parquet table") -> tuple[Any, str, str]:
    """(pyarrow filesystem, path in it, name for messages) of an existing table file."""
    label = uris.display(path)
    try:
        filesystem, inner = uris.pyarrow_filesystem(path)
    except uris.UnsupportedUri as exc:
        raise InputError(str(exc)) from None
    if uris.is_local(path):
        uris.check_input_file(path, kind)  # a folder, FIFO or device: one line, no hang
        return filesystem, inner, label
    try:
        found = uris.exists(path)
    except Exception as exc:  # noqa: BLE001 - credentials, network: one line naming the uri
        raise InputError(f"{label}: cannot reach ({type(exc).__name__}: {first_line(exc)})") from None
    if not found:
        raise InputError(f"{label}: file not found")
    return filesystem, inner, label


def not_parquet(source: PathOrUri, exc: BaseException) -> InputError:
    """The one-line error for a file pyarrow cannot read as Parquet (not Parquet, truncated)."""
    return InputError(f"{uris.display(source)}: not a readable Parquet file ({type(exc).__name__}: {first_line(exc)})")


def open_parquet(path: PathOrUri, kind: str = "Parquet table") -> pq.ParquetFile:
    """An input Parquet file (a path or any uri) opened for its footer, schema and row groups,
    nothing checked against a schema (:func:`read_table` does that). Missing, a folder, a FIFO
    or device (``kind`` names what was expected), unreachable, or not Parquet: InputError in
    one line naming the file. Reading its row groups later may still fail on a corrupt page."""
    filesystem, inner, label = _parquet_source(path, kind)
    try:
        return pq.ParquetFile(inner if uris.is_local(path) else filesystem.open_input_file(inner))
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for non-Parquet or truncated files
        raise not_parquet(label, exc) from None


def read_table(name: str, path: PathOrUri, columns: list[str] | None = None) -> pa.Table:
    """Read a Parquet table (a path or any uri, see :mod:`weaksup.uris`) and check it against
    schema ``name``; bad or missing files raise InputError."""
    parquet = open_parquet(path)
    label = uris.display(path)
    schema = load_schema(name)
    present = parquet.schema_arrow.names
    declared = {f.name: f for f in schema.fields}
    for col in columns or []:
        if col not in present and (col not in declared or declared[col].required or not declared[col].fillable):
            raise InputError(f"{label}: missing column {col!r} (table {schema.name!r} needs {schema.requirement()})")
    read = None if columns is None else [c for c in columns if c in present]
    try:
        table = parquet.read(columns=read)
    except Exception as exc:  # noqa: BLE001 - a corrupt page
        raise not_parquet(label, exc) from None
    if columns is not None:
        schema = schema.subset(columns)
    table = fill_optional(check_table(table, schema, label), schema)
    if columns is not None:
        table = table.select([c for c in columns if c in table.column_names])
    return table


def read_batches(name: str, path: PathOrUri, batch_size: int = 1 << 16) -> Iterator[pa.Table]:
    """:func:`read_table` for a table too big to hold: the whole table checked against schema
    ``name``, ``batch_size`` rows at a time (a table without rows gives one empty batch)."""
    parquet = open_parquet(path)
    label = uris.display(path)
    schema = load_schema(name)
    check_table(parquet.schema_arrow.empty_table(), schema, label)  # a missing column: before any row
    batches = iter(parquet.iter_batches(batch_size=batch_size))
    empty = True
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            break
        except Exception as exc:  # noqa: BLE001 - a corrupt page
            raise not_parquet(label, exc) from None
        empty = False
        yield fill_optional(check_table(pa.Table.from_batches([batch]), schema, label), schema)
    if empty:
        yield fill_optional(check_table(parquet.schema_arrow.empty_table(), schema, label), schema)


def read_rows(path: Path | str, first: int, rows: int, columns: Sequence[str] | None = None) -> pa.Table:
    """Rows ``first .. first + rows - 1`` of one Parquet file (fewer where the file ends),
    reading only the row groups they overlap (planned from the footer)."""
    filesystem, inner = uris.pyarrow_filesystem(path)
    with pq.ParquetFile(inner, filesystem=filesystem) as parquet:
        names = list(columns if columns is not None else parquet.schema_arrow.names)
        meta, start, pieces = parquet.metadata, 0, []
        for g in range(meta.num_row_groups):
            n = meta.row_group(g).num_rows
            lo, hi = max(first, start), min(first + rows, start + n)
            if lo < hi:
                pieces.append(parquet.read_row_group(g, columns=names).slice(lo - start, hi - lo))
            start += n
            if start >= first + rows:
                break
        return pa.concat_tables(pieces) if pieces else parquet.schema_arrow.empty_table().select(names)


def conform(data: pa.Table | Mapping[str, Any], schema: Schema) -> pa.Table:
    """Cast ``data`` to ``schema``: declared columns first, in order, with declared types; extras kept after."""
    table = data if isinstance(data, pa.Table) else pa.table(dict(data))
    arrays, fields = [], []
    for f in schema.fields:
        if f.name not in table.column_names:
            if f.default is not None:
                col = pa.array([f.default] * table.num_rows, f.arrow_type)
            elif f.nullable:
                col = pa.nulls(table.num_rows, f.arrow_type)
            else:
                raise ValueError(f"table {schema.name!r}: writer did not provide column {f.name!r}")
        else:
            col = table.column(f.name).cast(f.arrow_type)
        if not f.nullable and col.null_count:
            raise ValueError(f"table {schema.name!r}: column {f.name!r} has nulls but is not nullable")
        arrays.append(col)
        fields.append(pa.field(f.name, f.arrow_type, nullable=f.nullable))
    for name in table.column_names:
        if name not in schema.names:
            arrays.append(table.column(name))
            fields.append(table.schema.field(name))
    meta = {SCHEMA_META_KEY: f"{schema.name}/{schema.version}".encode()}
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=meta))


def write_table(
    name: str, data: pa.Table | Mapping[str, Any], path: PathOrUri, *, metadata: Mapping[bytes, bytes] | None = None
) -> pa.Table:
    """Conform ``data`` to schema ``name`` and write it to ``path`` (a path or any uri)
    atomically (temp name + rename, or a whole upload).

    ``metadata`` adds key/value pairs to the file's schema metadata (e.g. how features were made).
    """
    table = conform(data, load_schema(name))
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return table


class RowGroupWriter:
    """A Parquet file written piece by piece (a big table streamed block by block): pieces are
    gathered into row groups of about ``rows_per_group`` rows, so the footer, which the writer
    holds until the file is closed, has one entry per row group, not one per piece."""

    def __init__(self, path: Path, rows_per_group: int = 1 << 16) -> None:
        self.path, self.rows_per_group = path, rows_per_group
        self.writer: pq.ParquetWriter | None = None
        self.pending: list[pa.Table] = []
        self.rows = 0
        self.empty = True

    def add(self, table: pa.Table, force: bool = False) -> None:
        self.pending.append(table)
        self.rows += table.num_rows
        self.empty = False
        if force or self.rows >= self.rows_per_group:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        table = pa.concat_tables(self.pending)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self.writer.write_table(table)
        self.pending, self.rows = [], 0

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self.writer is not None:
                self.writer.close()


def write_json(obj: Any, path: PathOrUri) -> None:
    """Write JSON atomically (summaries, reports) to a path or any uri."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")


def validate_file(name: str, path: PathOrUri) -> int:
    """Validate a Parquet file (a path or any uri) against schema ``name``; return its row count or raise InputError."""
    return read_table(name, path).num_rows


# ---- strict CSV: an unterminated quote or a ragged row is an error naming the line, never a merge ----


def strict_csv_rows(lines: Iterable[str], source: str, *, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every row of CSV text, the header first; blank lines skipped.

    Values cannot span lines: a quoted value that runs over a line end (an unterminated
    quote swallows the following rows into one field), a row with another number of fields
    than the header, and malformed quoting raise InputError naming ``source:line``.
    ``lines`` must keep its line ends (a file opened with ``newline=""``).
    """
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    prev = 0
    width: int | None = None
    try:
        for row in reader:
            line = prev + 1
            if reader.line_num - prev != 1:
                raise InputError(
                    f"{source}:{line}: a quoted value runs over {reader.line_num - prev} lines "
                    "(unterminated quote?); values cannot hold line breaks"
                )
            prev = reader.line_num
            if not row:
                continue
            if width is None:
                width = len(row)
            elif len(row) != width:
                raise InputError(f"{source}:{line}: {len(row)} field(s) but the header has {width} (ragged row)")
            yield line, row
    except csv.Error as exc:
        raise InputError(f"{source}:{prev + 1}: malformed CSV ({exc}; an unterminated quote?)") from None


_CHECKED_CSV: set[tuple[str, int, int]] = set()


def check_csv_file(uri: PathOrUri, *, delimiter: str = ",") -> None:
    """Read a CSV file (a path or any uri) once through :func:`strict_csv_rows` so that a
    malformed line stops the job before any work. A local file is checked once per process
    while its size and modification time stay the same."""
    label = uris.display(uri)
    key = None
    if uris.is_local(uri):
        st = os.stat(uris.local_path(uri))
        key = (str(uris.local_path(uri).resolve()), st.st_size, st.st_mtime_ns)
        if key in _CHECKED_CSV:
            return
    last = 0
    try:
        with uris.open_input(uri, "rb") as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
            for last, _ in strict_csv_rows(text, label, delimiter=delimiter):
                pass
    except UnicodeDecodeError as exc:
        raise InputError(f"{label}: not valid UTF-8 after line {last} ({exc.reason})") from None
    if key is not None:
        _CHECKED_CSV.add(key)
