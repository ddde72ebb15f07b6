"""Reading the input videos table (Parquet, CSV or JSONL), streamed in record batches.

Hashtags arrive as ``list<string>`` (the fast path) or as text holding ``#tags`` (CSV,
captions); either way they are normalised with the same rule as
:func:`weaksup.labels.hashtags.normalize_hashtag`, vectorised: ASCII tags with Arrow
kernels, the rare non-ASCII ones through the Python function (NFKC, case-folding).
Tables are local paths or object-store uris (:mod:`weaksup.uris`).
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath
from typing import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.compute as pc
import pyarrow.dataset as ds

from weaksup import uris
from weaksup.errors import InputError
from weaksup.labels.hashtags import normalize_hashtag
from weaksup.tables import check_csv_file
from weaksup.uris import PathOrUri

TEXT_COLUMNS = ("hashtags", "text", "caption")
_TAG = re.compile(r"#([^\s#,;]+)")
_SPLIT = re.compile(r"[\s,;|]+")


def open_table(path: PathOrUri) -> ds.Dataset:
    """Open a Parquet/CSV/JSONL file (or a folder of Parquet files) as a streaming dataset.

    ``path`` is a local path or any uri (``s3://bucket/videos.parquet``, or a prefix
    ``s3://bucket/videos/`` holding Parquet parts): remote files are read through
    :func:`weaksup.uris.pyarrow_filesystem`, batch by batch like local ones.
    """
    label = uris.display(path)
    try:
        filesystem, inner = uris.pyarrow_filesystem(path)
        found = True if uris.is_local(path) else uris.exists(path)
    except uris.UnsupportedUri as exc:
        raise InputError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - credentials, network: one line naming the uri
        raise InputError(f"{label}: cannot reach ({type(exc).__name__}: {str(exc).strip()[:200]})") from None
    if not found:
        raise InputError(f"{label}: file not found")
    # A regular file, or a folder of parts; a FIFO or device would hang or never end.
    uris.check_input_file(path, "videos table", folder_ok=True)
    suffix = PurePosixPath(uris.basename(path)).suffix.lower()
    fmt = "parquet"
    if suffix in (".csv", ".tsv"):
        delimiter = "\t" if suffix == ".tsv" else ","
        if not uris.isdir(path):
            # Arrow would read an unterminated quote as one value holding the following rows
            # (rows silently lost): every line is checked first, errors name the line.
            check_csv_file(path, delimiter=delimiter)
        fmt = ds.CsvFileFormat(
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in ("video_id", "uri") + TEXT_COLUMNS}, strings_can_be_null=True
            ),
        )
    elif suffix in (".jsonl", ".ndjson", ".json"):
        fmt = "json"
    try:
        dataset = ds.dataset(inner, format=fmt, filesystem=filesystem)
        dataset.schema  # noqa: B018 - forces the header/footer read
    except Exception as exc:
        if fmt == "json":
            raise _read_error(path, exc) from None
        raise InputError(f"{label}: cannot read as {suffix.lstrip('.') or 'parquet'} table ({str(exc).splitlines()[0][:200]})")
    return dataset


_ARROW_READ_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)


def _first_bad_json_line(path: PathOrUri) -> tuple[int, str] | None:
    """(line, reason) of the first line of a JSON-lines file that is not one JSON object."""
    try:
        with uris.open_input(path, "rb") as fh:
            for n, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    value = json.loads(raw.rstrip(b"\r\n"))
                except json.JSONDecodeError as exc:
                    return n, f"not valid JSON ({exc.msg} at column {exc.colno})"
                except ValueError as exc:  # not UTF-8
                    return n, f"not valid JSON ({str(exc).splitlines()[0][:160]})"
                if not isinstance(value, dict):
                    return n, f"a JSON {type(value).__name__}, expected an object"
    except OSError:
        return None
    return None


def _read_error(path: PathOrUri, exc: BaseException) -> InputError:
    """One line for an Arrow read error of a videos table; for JSON lines, the bad line's number
    (Arrow counts rows within a block)."""
    label = uris.display(path)
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    if PurePosixPath(uris.basename(path)).suffix.lower() in (".jsonl", ".ndjson", ".json") and not uris.isdir(path):
        bad = _first_bad_json_line(path)
        if bad is not None:
            return InputError(f"{label}:{bad[0]}: {bad[1]}")
    return InputError(f"{label}: cannot read the table ({reason})")


def _batches(dataset: ds.Dataset, path: PathOrUri, **kwargs: object) -> Iterator[pa.RecordBatch]:
    """``dataset.to_batches`` with read errors met on the way (a bad JSON line, a CSV value that
    does not convert) as InputError naming the file."""
    batches = dataset.to_batches(**kwargs)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except _ARROW_READ_ERRORS as exc:
            raise _read_error(path, exc) from None
        yield batch


def _durations(column: pa.Array, path: str, row0: int) -> pa.Array:
    """``duration_s`` as float64; text that is not a number is InputError naming the row."""
    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type) or pa.types.is_null(column.type):
        return column.cast(pa.float64())
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise InputError(f"{path}: column 'duration_s' has type {column.type}, expected float64 (seconds)")
    try:
        return pc.cast(pc.utf8_trim_whitespace(column), pa.float64())
    except _ARROW_READ_ERRORS:
        for i, value in enumerate(column.to_pylist()):
            try:
                if value is not None:
                    float(value)
            except ValueError:
                raise InputError(f"{path}: row {row0 + i}: duration_s {value!r} is not a number of seconds") from None
        raise InputError(f"{path}: column 'duration_s' holds text that is not a number of seconds") from None


def _require(dataset: ds.Dataset, path: str, names: tuple[str, ...]) -> None:
    have = dataset.schema.names
    for name in names:
        if name not in have:
            raise InputError(f"{path}: missing column {name!r} (columns: {', '.join(have)})")
    for name in ("video_id", "uri"):
        t = dataset.schema.field(name).type
        if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t) or pa.types.is_null(t)):
            raise InputError(f"{path}: column {name!r} has type {t}, expected string")


def tag_column(dataset: ds.Dataset, path: str) -> str:
    """The column that holds hashtags: ``hashtags`` (list or text), else ``text``/``caption``."""
    for name in TEXT_COLUMNS:
        if name in dataset.schema.names:
            t = dataset.schema.field(name).type
            ok = (pa.types.is_list(t) or pa.types.is_large_list(t)) and (
                pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)
            )
            if ok or pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t):
                return name
            raise InputError(f"{path}: column {name!r} has type {t}, expected list<string> or text with #tags")
    raise InputError(f"{path}: missing column 'hashtags' (a list<string>, or text with #tags; columns: {', '.join(dataset.schema.names)})")


def normalize_tags(values: pa.Array) -> pa.Array:
    """Normalise a string array of hashtags (nulls stay null)."""
    values = values.cast(pa.string())
    ascii_mask = pc.fill_null(pc.string_is_ascii(values), True)
    fast = pc.ascii_lower(values)
    needs_regex = pc.invert(pc.fill_null(pc.ascii_is_alnum(fast), True))
    if pc.any(needs_regex).as_py():
        fixed = pc.replace_substring_regex(fast.filter(needs_regex), r"[^a-z0-9]+", "")
        fast = pc.replace_with_mask(fast, needs_regex, fixed)
    if pc.all(ascii_mask).as_py():
        return fast
    slow = pa.array([None if v is None else normalize_hashtag(v) for v in values.to_pylist()], pa.string())
    return pc.if_else(ascii_mask, fast, slow)


def normalize_tag_lists(lists: pa.Array) -> pa.Array:
    """Normalise every tag of a list<string> array, keeping list boundaries and nulls."""
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    lists = lists.cast(pa.list_(pa.string()))
    offsets = lists.offsets
    first = offsets[0].as_py()
    values = lists.values.slice(first, offsets[-1].as_py() - first)
    offsets = pc.subtract(offsets, pa.scalar(first, offsets.type))  # a fresh array, also for sliced batches
    return pa.ListArray.from_arrays(offsets, normalize_tags(values), mask=lists.is_null())


def tags_from_text(texts: pa.Array) -> pa.Array:
    """Hashtag lists from text: the ``#tags`` in it, or its tokens if it has no ``#``."""
    out = []
    for text in texts.cast(pa.string()).to_pylist():
        if text is None:
            out.append(None)
            continue
        raw = _TAG.findall(text) if "#" in text else _SPLIT.split(text)
        out.append([t for t in (normalize_hashtag(r) for r in raw) if t])
    return pa.array(out, pa.list_(pa.string()))


def iter_videos(path: PathOrUri, *, batch_size: int = 1 << 20) -> Iterator[pa.RecordBatch]:
    """Stream the videos table (a path or any uri) as batches of video_id, uri, hashtags
    (normalised), duration_s.

    Raises InputError for missing columns or wrong types (checked before any row is read).
    """
    if batch_size < 1:
        raise InputError(f"--batch-size {batch_size}: must be at least 1")
    source = path
    dataset = open_table(path)
    path = uris.display(path)
    _require(dataset, path, ("video_id", "uri"))
    tags_col = tag_column(dataset, path)
    cols = ["video_id", "uri", tags_col] + [c for c in ("duration_s",) if c in dataset.schema.names]
    tag_type = dataset.schema.field(tags_col).type
    is_text = not (pa.types.is_list(tag_type) or pa.types.is_large_list(tag_type))
    row0 = 0
    # Read-ahead of one batch keeps memory bounded (the default buffers 16 batches).
    for batch in _batches(dataset, source, columns=cols, batch_size=batch_size, batch_readahead=1, fragment_readahead=1):
        if batch.num_rows == 0:
            continue
        raw = batch.column(tags_col)
        tags = tags_from_text(raw) if is_text else normalize_tag_lists(raw)
        duration = (
            _durations(batch.column("duration_s"), path, row0)
            if "duration_s" in batch.schema.names
            else pa.nulls(batch.num_rows, pa.float64())
        )
        row0 += batch.num_rows
        yield pa.RecordBatch.from_arrays(
            [batch.column("video_id").cast(pa.string()), batch.column("uri").cast(pa.string()), tags, duration],
            names=["video_id", "uri", "hashtags", "duration_s"],
        )


def read_id_uri(path: PathOrUri) -> pa.Table:
    """Only ``video_id`` and ``uri`` of a videos (or manifest) table (a path or any uri), as
    strings, in order; no nulls."""
    dataset = open_table(path)
    source, path = path, uris.display(path)
    _require(dataset, path, ("video_id", "uri"))
    try:
        table = dataset.to_table(columns=["video_id", "uri"])
    except _ARROW_READ_ERRORS as exc:
        raise _read_error(source, exc) from None
    for name in ("video_id", "uri"):
        nulls = table.column(name).null_count
        if nulls:
            raise InputError(f"{path}: column {name!r} has {nulls} empty value(s); every video needs one")
    return pa.table({"video_id": table.column("video_id").cast(pa.string()), "uri": table.column("uri").cast(pa.string())})
