"""Table schemas, validation and atomic Parquet writing.

Every stage talks to the next through Parquet tables whose schemas live as JSON in
``schemas/`` (shipped as ``weaksup.schemas``). Writers go through :func:`write_table`,
which conforms the data to the schema, writes to a temporary name and renames, so a
killed job never leaves a half-written table under the final name. Inputs and outputs
are paths or object-store uris (:mod:`weaksup.uris`).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from weaksup import uris
from weaksup.errors import InputError
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
    name: str
    type: str
    nullable: bool
    description: str

    @property
    def arrow_type(self) -> pa.DataType:
        return parse_arrow_type(self.type)


@dataclass(frozen=True)
class Schema:
    name: str
    version: int
    description: str
    fields: tuple[Field, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

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
                    {"name": f.name, "type": f.type, "nullable": f.nullable, "description": f.description}
                    for f in self.fields
                ],
            },
            indent=2,
        )


def _schema_files() -> Any:
    """The schema folder: the installed ``weaksup.schemas`` package, or ``schemas/`` beside
    the package in a source checkout imported without installing (Ray workers started in a
    checkout put it first on ``sys.path``)."""
    try:
        return resources.files("weaksup.schemas")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "schemas"


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
        Field(f["name"], f["type"], bool(f.get("nullable", False)), f.get("description", "")) for f in raw["fields"]
    )
    return Schema(raw["name"], int(raw.get("version", 1)), raw.get("description", ""), fields)


def _same_type(actual: pa.DataType, expected: pa.DataType) -> bool:
    if actual.equals(expected):
        return True
    if pa.types.is_string(expected) and pa.types.is_large_string(actual):
        return True
    if pa.types.is_list(expected) and (pa.types.is_list(actual) or pa.types.is_large_list(actual)):
        return _same_type(actual.value_type, expected.value_type)
    if pa.types.is_timestamp(expected) and pa.types.is_timestamp(actual):
        return True
    return False


def check_table(table: pa.Table, schema: Schema, source: str) -> None:
    """Raise InputError naming ``source``, the column and the problem if ``table`` breaks ``schema``.

    Extra columns are allowed (schemas say what a table holds at least).
    """
    for f in schema.fields:
        if f.name not in table.column_names:
            raise InputError(f"{source}: missing column {f.name!r} (table {schema.name!r} needs {', '.join(schema.names)})")
        col = table.column(f.name)
        if not _same_type(col.type, f.arrow_type):
            raise InputError(f"{source}: column {f.name!r} has type {col.type}, expected {f.type}")
        if not f.nullable and col.null_count:
            raise InputError(f"{source}: column {f.name!r} has {col.null_count} null value(s) but is not nullable")


def _parquet_source(name: str, path: PathOrUri) -> tuple[Any, str, str]:
    """(pyarrow filesystem, path in it, name for messages) of an existing table file."""
    label = uris.display(path)
    try:
        filesystem, inner = uris.pyarrow_filesystem(path)
    except uris.UnsupportedUri as exc:
        raise InputError(str(exc)) from None
    if uris.is_local(path):
        found = Path(inner).exists()
    else:
        try:
            found = uris.exists(path)
        except Exception as exc:  # noqa: BLE001 - credentials, network: one line naming the uri
            raise InputError(f"{label}: cannot reach ({type(exc).__name__}: {_first_line(exc)})") from None
    if not found:
        raise InputError(f"{label}: file not found")
    return filesystem, inner, label


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else ""


def read_table(name: str, path: PathOrUri, columns: list[str] | None = None) -> pa.Table:
    """Read a Parquet table (a path or any uri, see :mod:`weaksup.uris`) and check it against
    schema ``name``; bad or missing files raise InputError."""
    filesystem, inner, label = _parquet_source(name, path)
    schema = load_schema(name)
    try:
        present = pq.read_schema(inner, filesystem=filesystem).names
    except Exception as exc:  # pyarrow raises several types for non-Parquet or truncated files
        raise InputError(f"{label}: not a readable Parquet file ({type(exc).__name__}: {_first_line(exc)})")
    for col in columns or []:
        if col not in present:
            raise InputError(f"{label}: missing column {col!r} (table {schema.name!r} needs {', '.join(schema.names)})")
    try:
        table = pq.read_table(inner, columns=columns, filesystem=filesystem)
    except Exception as exc:
        raise InputError(f"{label}: not a readable Parquet file ({type(exc).__name__}: {_first_line(exc)})")
    if columns is not None:
        schema = Schema(schema.name, schema.version, schema.description, tuple(f for f in schema.fields if f.name in columns))
    check_table(table, schema, label)
    return table


def conform(data: pa.Table | Mapping[str, Any], schema: Schema) -> pa.Table:
    """Cast ``data`` to ``schema``: declared columns first, in order, with declared types; extras kept after."""
    table = data if isinstance(data, pa.Table) else pa.table(dict(data))
    arrays, fields = [], []
    for f in schema.fields:
        if f.name not in table.column_names:
            if not f.nullable:
                raise ValueError(f"table {schema.name!r}: writer did not provide column {f.name!r}")
            col = pa.nulls(table.num_rows, f.arrow_type)
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


def require_local_output(*paths: str | os.PathLike[str] | None) -> None:
    """Refuse, in one line, an object-store uri for an output that this stage writes only locally
    (folders of parts, streamed Parquet writers, checkpoints); None is skipped."""
    for path in paths:
        if path is not None and not uris.is_local(path):
            raise InputError(f"{uris.as_uri(path)}: this output must be a local path "
                             "(write it locally, then copy it to the object store)")


def atomic_path(path: Path) -> Path:
    """A temporary sibling of the local ``path``, renamed over it once complete.

    Writers that stream into a local file and rename it themselves cannot write to an
    object store: a remote uri is bad input here (use :func:`atomic_output`, which uploads).
    """
    require_local_output(path)
    path = uris.local_path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _prepare_output(path: Path) -> Path:
    """Create the folder of a local output ``path`` and return its temporary name.

    An output path that is a folder, or whose folder cannot be made (a file in the way, no
    permission), is bad input: InputError naming the path, not a traceback.
    """
    require_local_output(path)
    path = uris.local_path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected an output file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path}: cannot create output folder {path.parent} ({exc.strerror or exc})") from None
    return atomic_path(path)


@contextmanager
def atomic_output(path: PathOrUri) -> Iterator[Path]:
    """A temporary local file to write for ``path``: renamed (or uploaded) to ``path`` when the
    block ends without error, deleted otherwise. Every writer of final outputs goes through it.

    Local paths and ``file://`` get a temporary sibling and ``os.replace``. Remote uris
    (``s3://``, ``gs://``, ``memory://``, ...) get a file in a local temporary folder,
    uploaded on success with :func:`weaksup.uris.upload_atomic` (whole or not at all), so
    every writer keeps writing a plain local file.
    """
    if uris.is_local(path):
        local = uris.local_path(path)
        tmp = _prepare_output(local)
        try:
            yield tmp
            os.replace(tmp, local)
        finally:
            if tmp.exists():
                tmp.unlink()
        return
    uri = uris.as_uri(path)
    try:
        is_dir = uris.isdir(uri)
    except uris.UnsupportedUri as exc:
        raise InputError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - credentials, network: one line naming the uri
        raise InputError(f"{uri}: cannot reach ({type(exc).__name__}: {_first_line(exc)})") from None
    if is_dir:
        raise InputError(f"{uri}: is a directory, expected an output file path")
    with tempfile.TemporaryDirectory(prefix="weaksup-upload-") as folder:
        tmp = Path(folder) / f".{uris.basename(uri)}.tmp-{os.getpid()}"
        yield tmp
        uris.upload_atomic(tmp, uri)


def write_table(name: str, data: pa.Table | Mapping[str, Any], path: PathOrUri, *,
                metadata: Mapping[bytes, bytes] | None = None) -> pa.Table:
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


def write_json(obj: Any, path: PathOrUri) -> None:
    """Write JSON atomically (summaries, reports) to a path or any uri."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")


def validate_file(name: str, path: PathOrUri) -> int:
    """Validate a Parquet file (a path or any uri) against schema ``name``; return its row count or raise InputError."""
    return read_table(name, path).num_rows
