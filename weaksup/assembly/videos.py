"""Reading the input videos table (Parquet, CSV or JSONL), streamed in record batches.

Hashtags arrive as ``list<string>`` (the fast path) or as text holding ``#tags`` (CSV,
captions); either way they are normalised with the same rule as
:func:`weaksup.labels.hashtags.normalize_hashtag`, vectorised: ASCII tags with Arrow
kernels, the rare non-ASCII ones through the Python function (NFKC, case-folding).

A free-text column named by ``text_column`` (``match --text-column``) gives phrase
candidates as well (:func:`text_candidates`): its ``#tags`` and every run of 1..4
consecutive words, concatenated ("a man catching a fish" -> ``catchingafish``), plus every
run of 2..3 consecutive content words once stop words are removed (``catchingfish``).
Tables are local paths or object-store uris (:mod:`weaksup.uris`).
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds

from weaksup import uris
from weaksup.blocks import TableInput
from weaksup.errors import InputError, first_line, one_line
from weaksup.labels.hashtags import APOSTROPHES, STOP_WORDS, normalize_hashtag
from weaksup.tables import check_csv_file
from weaksup.uris import PathOrUri

TEXT_COLUMNS = ("hashtags", "text", "caption")
_TAG = re.compile(r"#([^\s#,;]+)")
_SPLIT = re.compile(r"[\s,;|]+")
#: Phrase candidates of a free-text column: runs of 1..PHRASE_WORDS consecutive words, and
#: runs of 2..CONTENT_WORDS consecutive content words (stop words removed).
PHRASE_WORDS = 4
CONTENT_WORDS = 3
_CHUNK_WORDS = 1 << 20  # words per step of the phrase builder: bounds its memory on long texts
_STOP = pa.array(sorted(STOP_WORDS), pa.string())


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
        raise InputError(f"{label}: cannot reach ({one_line(exc)})") from None
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
        raise InputError(f"{label}: cannot read as {suffix.lstrip('.') or 'parquet'} table ({first_line(exc)})")
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
                    return n, f"not valid JSON ({first_line(exc)})"
                if not isinstance(value, dict):
                    return n, f"a JSON {type(value).__name__}, expected an object"
    except OSError:
        return None
    return None


def _read_error(path: PathOrUri, exc: BaseException) -> InputError:
    """One line for an Arrow read error of a videos table; for JSON lines, the bad line's number
    (Arrow counts rows within a block)."""
    label = uris.display(path)
    reason = first_line(exc) or type(exc).__name__
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


def require_columns(dataset: ds.Dataset, path: str, names: tuple[str, ...]) -> None:
    """Refuse (one line naming the table) a videos table without these columns, or ids that are not text."""
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
    raise InputError(
        f"{path}: missing column 'hashtags' (a list<string>, or text with #tags; "
        f"columns: {', '.join(dataset.schema.names)})"
    )


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


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)


def candidate_columns(dataset: ds.Dataset, path: str, text_column: str | None = None) -> tuple[str | None, str | None]:
    """(tags column, free-text column) of a videos table.

    Without ``text_column``: (:func:`tag_column`, None), today's rule. With it: that column
    (text, required) and, when the table has one, the ``hashtags`` column beside it (the
    candidates are the union); ``text``/``caption`` are then only read when named.
    """
    if text_column is None:
        return tag_column(dataset, path), None
    names = dataset.schema.names
    if text_column not in names:
        raise InputError(f"{path}: missing column {text_column!r} named by --text-column (columns: {', '.join(names)})")
    t = dataset.schema.field(text_column).type
    if not _is_text(t):
        raise InputError(f"{path}: column {text_column!r} (--text-column) has type {t}, expected text")
    tags = tag_column(dataset, path) if "hashtags" in names and text_column != "hashtags" else None
    return tags, text_column


def _flat(lists: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """(values, parent row of each value) of a list array, also for sliced arrays."""
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    return pc.list_flatten(lists), pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)


def _build_lists(values: pa.Array, owners: np.ndarray, n: int, nulls: pa.Array | None) -> pa.Array:
    """One list<string> per row of ``n`` from values and their owner rows (order kept within a row)."""
    if len(owners) and np.any(owners[1:] < owners[:-1]):
        order = np.argsort(owners, kind="stable")
        values, owners = values.take(pa.array(order)), owners[order]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(owners, minlength=n))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values.cast(pa.string()), mask=nulls)


def union_lists(a: pa.Array, b: pa.Array) -> pa.Array:
    """Per row, the values of ``a`` then those of ``b``; null only where both are null."""
    va, pa_ = _flat(a)
    vb, pb = _flat(b)
    nulls = pc.and_(a.is_null(), b.is_null())
    values = pa.concat_arrays([va.cast(pa.string()), vb.cast(pa.string())])
    return _build_lists(values, np.concatenate([pa_, pb]), len(a), nulls)


def _split_words(text: str) -> list[str]:
    """Normalised words of one (non-ASCII) text: split at spaces and punctuation (not at
    combining marks, which :func:`normalize_hashtag` then drops, as it does for labels)."""
    text = APOSTROPHES.sub("", unicodedata.normalize("NFKC", text))
    chars = [ch if ch.isalnum() or unicodedata.category(ch)[0] == "M" else " " for ch in text]
    return [w for w in (normalize_hashtag(t) for t in "".join(chars).split()) if w]


def text_words(texts: pa.Array) -> pa.Array:
    """The normalised words of each text as list<string> (nulls stay null): apostrophes
    removed ("don't" -> dont), split at anything that is not a letter or digit, each word
    normalised like a hashtag. ASCII texts with Arrow kernels, others in Python."""
    texts = texts.cast(pa.string())
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    low = pc.replace_substring_regex(pc.ascii_lower(texts), r"['`]", "")
    words = pc.split_pattern_regex(low, r"[^a-z0-9]+")
    ascii_mask = pc.fill_null(pc.string_is_ascii(texts), True)
    if not pc.all(ascii_mask).as_py():
        slow = [None if t is None or a else _split_words(t) for t, a in zip(texts.to_pylist(), ascii_mask.to_pylist())]
        slow_arr = pa.array(slow, pa.list_(pa.string()))
        words = pc.if_else(ascii_mask, words, slow_arr)
    values, parents = _flat(words)
    keep = pc.not_equal(pc.utf8_length(values), 0).to_numpy(zero_copy_only=False)
    return _build_lists(values.filter(pa.array(keep)), parents[keep], len(texts), texts.is_null())


def _runs(
    words: pa.Array, parents: np.ndarray, lengths: range, positions: np.ndarray | None = None
) -> tuple[list[pa.Array], list[np.ndarray]]:
    """Every run of ``k`` consecutive words of one row (k in ``lengths``), concatenated.

    ``positions`` (the words' places in the full text): only runs with a gap, i.e. runs of
    content words that are not already runs of the text's words.
    """
    values, owners = [], []
    n = len(words)
    for k in lengths:
        if n < k:
            break
        m = n - k + 1
        same = parents[:m] == parents[k - 1 :]  # parents are sorted: first and last in one row
        if positions is not None:
            same &= positions[k - 1 :] - positions[:m] > k - 1
        if not same.any():
            continue
        parts = [words.slice(j, m) for j in range(k)]
        joined = parts[0] if k == 1 else pc.binary_join_element_wise(*parts, "")
        values.append(joined.filter(pa.array(same)))
        owners.append(parents[:m][same])
    return values, owners


def phrase_candidates(words: pa.Array, vocabulary: pa.Array | None = None) -> pa.Array:
    """Phrase candidates per row of a list<string> of normalised words: runs of
    1..:data:`PHRASE_WORDS` consecutive words and of 2..:data:`CONTENT_WORDS` consecutive
    content words (not in :data:`weaksup.labels.hashtags.STOP_WORDS`), each concatenated.

    With ``vocabulary`` (the hashtag index's tags) only candidates in it are kept: the
    lists stay short whatever the length of the texts. Rows are processed in chunks of
    about a million words.
    """
    if isinstance(words, pa.ChunkedArray):
        words = words.combine_chunks()
    n = len(words)
    offsets = words.offsets.to_numpy()
    offsets = offsets - offsets[0]
    values: list[pa.Array] = []
    owners: list[np.ndarray] = []
    row = 0
    while row < n:
        end = int(np.searchsorted(offsets, offsets[row] + _CHUNK_WORDS, side="right")) - 1
        end = min(max(end, row + 1), n)
        flat, parents = _flat(words.slice(row, end - row))
        flat = flat.cast(pa.string())
        got_v, got_o = _runs(flat, parents, range(1, PHRASE_WORDS + 1))
        content = pc.invert(pc.is_in(flat, value_set=_STOP)).to_numpy(zero_copy_only=False)
        more_v, more_o = _runs(
            flat.filter(pa.array(content)), parents[content], range(2, CONTENT_WORDS + 1), np.flatnonzero(content)
        )
        for v, o in zip(got_v + more_v, got_o + more_o):
            if vocabulary is not None:
                hit = pc.is_in(v, value_set=vocabulary)
                v, o = v.filter(hit), o[hit.to_numpy(zero_copy_only=False)]
            values.append(v)
            owners.append(o + row)
        row = end
    value = pa.concat_arrays(values) if values else pa.array([], pa.string())
    owner = np.concatenate(owners) if owners else np.empty(0, np.int64)
    return _build_lists(value, owner, n, words.is_null())


def hash_tags(texts: pa.Array) -> pa.Array:
    """The ``#tags`` of each text, normalised (no ``#``: an empty list; nulls stay null)."""
    texts = texts.cast(pa.string())
    has = pc.fill_null(pc.match_substring(texts, "#"), False)
    if not pc.any(has).as_py():
        values = pa.array([], pa.string())
        return _build_lists(values, np.empty(0, np.int64), len(texts), texts.is_null())
    out = [
        None if t is None else ([x for x in (normalize_hashtag(r) for r in _TAG.findall(t)) if x] if h else [])
        for t, h in zip(texts.to_pylist(), has.to_pylist())
    ]
    return pa.array(out, pa.list_(pa.string()))


def text_candidates(texts: pa.Array, vocabulary: pa.Array | None = None) -> pa.Array:
    """Candidates of a free-text column per row: its ``#tags`` (:func:`hash_tags`) and its
    phrases (:func:`phrase_candidates`); with ``vocabulary``, only those in it."""
    tags = hash_tags(texts)
    if vocabulary is not None:
        values, parents = _flat(tags)
        hit = pc.is_in(values, value_set=vocabulary).to_numpy(zero_copy_only=False)
        tags = _build_lists(values.filter(pa.array(hit)), parents[hit], len(texts), texts.is_null())
    return union_lists(tags, phrase_candidates(text_words(texts), vocabulary))


def iter_videos(
    path: PathOrUri,
    *,
    batch_size: int = 1 << 20,
    text_column: str | None = None,
    vocabulary: pa.Array | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream the videos table (a path or any uri) as batches of video_id, uri, hashtags
    (normalised), duration_s.

    With ``text_column`` the hashtags of a row are the candidates of that free-text column
    (:func:`text_candidates`; only those in ``vocabulary`` when it is given), together with
    the ``hashtags`` column's tags when the table has one.

    Raises InputError for missing columns or wrong types (checked before any row is read).
    """
    if batch_size < 1:
        raise InputError(f"--batch-size {batch_size}: must be at least 1")
    source = path
    dataset = open_table(path)
    path = uris.display(path)
    require_columns(dataset, path, ("video_id", "uri"))
    tags_col, text_col = candidate_columns(dataset, path, text_column)
    read = [c for c in (tags_col, text_col) if c is not None]
    cols = ["video_id", "uri"] + read + [c for c in ("duration_s",) if c in dataset.schema.names]
    is_text = False
    if tags_col is not None:
        tag_type = dataset.schema.field(tags_col).type
        is_text = not (pa.types.is_list(tag_type) or pa.types.is_large_list(tag_type))
    row0 = 0
    # Read-ahead of one batch keeps memory bounded (the default buffers 16 batches).
    for batch in _batches(
        dataset, source, columns=cols, batch_size=batch_size, batch_readahead=1, fragment_readahead=1
    ):
        if batch.num_rows == 0:
            continue
        tags = None
        if tags_col is not None:
            raw = batch.column(tags_col)
            tags = tags_from_text(raw) if is_text else normalize_tag_lists(raw)
        if text_col is not None:
            found = text_candidates(batch.column(text_col), vocabulary)
            tags = found if tags is None else union_lists(tags, found)
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


def iter_video_ids(path: PathOrUri, *, batch_size: int = 1 << 20) -> Iterator[pa.Array]:
    """Only ``video_id`` of a videos table, as strings, batch by batch in the row order of
    :func:`iter_videos` (no tag work: for a second read of the ids)."""
    dataset = open_table(path)
    for batch in _batches(
        dataset, path, columns=["video_id"], batch_size=batch_size, batch_readahead=1, fragment_readahead=1
    ):
        if batch.num_rows:
            yield batch.column("video_id").cast(pa.string())


def check_keep_columns(dataset: ds.Dataset, path: str, names: tuple[str, ...], reserved: tuple[str, ...]) -> None:
    """Refuse (one line naming the table and the column) a ``--keep-columns`` name the table
    lacks, one of the output's own columns ``reserved``, or a name given twice."""
    have = dataset.schema.names
    for i, name in enumerate(names):
        if name in names[:i]:
            raise InputError(f"--keep-columns: column {name!r} named twice")
        if name in reserved:
            raise InputError(f"--keep-columns: {name!r} is a column of the output already ({', '.join(reserved)})")
        if name not in have:
            raise InputError(f"{path}: missing column {name!r} named by --keep-columns (columns: {', '.join(have)})")


class ColumnFeed:
    """Some columns of a videos table, read in the row order of :func:`iter_videos` (the same
    scan), and handed out ``n`` rows at a time, in step with another reader of the table
    (match's DuckDB scan): ``video_id`` comes along so the caller can check both agree."""

    def __init__(self, path: PathOrUri, columns: tuple[str, ...], *, batch_size: int = 1 << 18) -> None:
        dataset = open_table(path)
        self.columns = ("video_id", *columns)
        self.schema = pa.schema([dataset.schema.field(c) for c in self.columns])
        self._batches = _batches(
            dataset, path, columns=list(self.columns), batch_size=batch_size, batch_readahead=1, fragment_readahead=1
        )
        self._pending: list[pa.RecordBatch] = []
        self._held = 0

    def take(self, n: int) -> pa.Table:
        """The next ``n`` rows (RuntimeError when the table has fewer left)."""
        while self._held < n:
            batch = next(self._batches, None)
            if batch is None:
                raise RuntimeError(f"the videos table ended {n - self._held} row(s) early in a second read")
            if batch.num_rows:
                self._pending.append(batch)
                self._held += batch.num_rows
        table = pa.Table.from_batches(self._pending, self.schema)
        self._pending = table.slice(n).to_batches()
        self._held -= n
        return table.slice(0, n).combine_chunks()

    def rest(self) -> int:
        """Rows left unread (0 once the other reader has seen every row)."""
        return self._held + sum(b.num_rows for b in self._batches)


def read_id_uri(path: PathOrUri) -> pa.Table:
    """Only ``video_id`` and ``uri`` of a videos (or manifest) table (a path or any uri), as
    strings, in order; no nulls."""
    dataset = open_table(path)
    source, path = path, uris.display(path)
    require_columns(dataset, path, ("video_id", "uri"))
    try:
        table = dataset.to_table(columns=["video_id", "uri"])
    except _ARROW_READ_ERRORS as exc:
        raise _read_error(source, exc) from None
    for name in ("video_id", "uri"):
        nulls = table.column(name).null_count
        if nulls:
            raise InputError(f"{path}: column {name!r} has {nulls} empty value(s); every video needs one")
    return pa.table(
        {"video_id": table.column("video_id").cast(pa.string()), "uri": table.column("uri").cast(pa.string())}
    )


def id_uri_lists(table: pa.Table, first_row: int, label: str) -> tuple[list[str], list[str]]:
    """``video_id`` and ``uri`` of a block of a videos table as strings; a null names its row."""
    out = []
    for name in ("video_id", "uri"):
        column = table.column(name)
        if column.null_count:
            row = first_row + int(pc.index(pc.is_null(column), True).as_py())
            raise InputError(f"{label}: row {row}: column {name!r} is empty; every video needs one")
        out.append(column.cast(pa.string()).to_pylist())
    return out[0], out[1]


def videos_input(
    path: PathOrUri, columns: tuple[str, ...], to_items: Callable[[pa.Table, int], list[dict]]
) -> TableInput | None:
    """A videos (or manifest) table as a bulk job's :class:`~weaksup.blocks.TableInput`, read
    block by block where the work runs; None for CSV/JSONL (those are read whole)."""
    if uris.is_local(path):
        path = uris.local_path(path).absolute()  # Ray workers do not share the driver's working folder
    dataset = open_table(path)
    require_columns(dataset, uris.display(path), columns)
    if not isinstance(dataset.format, ds.ParquetFileFormat):
        return None
    root = str(path) if uris.is_local(path) else uris.as_uri(path)
    return TableInput(root=root, files=tuple(dataset.files), columns=columns, to_items=to_items)


#: Column a part made by `partition-videos` carries: the row in the table it was split from.
SOURCE_ROW = "source_row"


def duplicate_rows(videos: PathOrUri, hashes: np.ndarray, batch_size: int) -> dict[int, tuple[str, int]]:
    """Rows whose video_id already appeared earlier: {row: (video_id, first row)}.

    Candidates come from equal 64-bit hashes; they are confirmed on the exact strings
    in a second read of the (rare) candidate rows only.
    """
    ordered = np.sort(hashes)  # one copy: 8 bytes per row at 65M rows
    same = ordered[1:] == ordered[:-1]
    dup_hashes = np.unique(ordered[1:][same & (ordered[1:] != 0)])
    del ordered, same
    if len(dup_hashes) == 0:
        return {}
    candidate_rows = np.flatnonzero(np.isin(hashes, dup_hashes) & (hashes != 0))
    wanted = set(candidate_rows.tolist())
    first: dict[str, int] = {}
    out: dict[int, tuple[str, int]] = {}
    row = 0
    for ids in iter_video_ids(videos, batch_size=batch_size):
        for i in range(len(ids)):
            if row + i in wanted:
                v = ids[i].as_py()
                if v in first:
                    out[row + i] = (v, first[v])
                else:
                    first[v] = row + i
        row += len(ids)
    return out


def finish_rejects(videos: str | Path, rejects: list[dict]) -> list[dict]:
    """Rejects in final form: rows of the source table (a part's ``source_row``), reasons, sorted.

    A part made by ``partition-videos`` carries each row's row in the table it was split
    from, so the rejects of a part (and of all parts merged) name the same rows as a match
    over the whole table would.
    """
    dataset = open_table(videos)
    local = sorted({r["row"] for r in rejects} | {r["first"] for r in rejects if "first" in r})
    mapping: dict[int, int] = {}
    if local and SOURCE_ROW in dataset.schema.names and pa.types.is_integer(dataset.schema.field(SOURCE_ROW).type):
        source = dataset.take(pa.array(local, pa.int64()), columns=[SOURCE_ROW]).column(SOURCE_ROW)
        if source.null_count == 0:
            mapping = dict(zip(local, source.to_pylist()))
    out = []
    for r in rejects:
        row = mapping.get(r["row"], r["row"])
        reason = r["reason"]
        if "first" in r:
            reason = f"{reason} (first at row {mapping.get(r['first'], r['first'])})"
        out.append({"row": row, "video_id": r["video_id"], "reason": reason})
    out.sort(key=lambda r: r["row"])
    return out


def reject_null_rows(
    video_id: pa.Array,
    uri: pa.Array,
    tags: pa.Array,
    row0: int,
    rejects: list[dict],
    *,
    tags_reason: str = "null hashtags",
) -> np.ndarray:
    """Rows of a batch with a null video_id, a null or empty uri, or null tags (one reason a row,
    in that order), appended to ``rejects`` as {row, video_id, reason}; returns the rejected mask.
    Shared by match and hashtag-counts so that both reject the same rows."""
    rejected = np.zeros(len(video_id), bool)
    empty_uri = pc.fill_null(pc.equal(uri.cast(pa.string()), ""), False)  # e.g. a row fetch could not download
    checks = (("null video_id", video_id.is_null()), ("null uri", uri.is_null()), ("empty uri", empty_uri))
    for reason, missing in (*checks, (tags_reason, tags.is_null())):
        new = missing.to_numpy(zero_copy_only=False) & ~rejected
        for i in np.flatnonzero(new).tolist():
            rejects.append({"row": row0 + i, "video_id": video_id[i].as_py(), "reason": reason})
        rejected |= new
    return rejected
