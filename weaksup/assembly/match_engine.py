"""The DuckDB side of `weaksup match`: a videos table as a relation, and the hashtag join on it.

:class:`VideosScan` opens one videos table in an in-memory DuckDB as the view ``src``
(``row``, ``video_id``, ``uri``, ``duration_s``, ``hashtags``) and answers the questions
match asks of it, each as one parallel scan:

* :meth:`VideosScan.join`: the join. Every tag is unnested, normalised and looked up in
  the hashtag index (a hash join with a small build side); the answer is one int64 key
  ``row * n_tags + tag_position`` per hit, sorted and distinct. Grouping per video is left
  to numpy on those keys: DuckDB streams them nearly in row order, so a stable sort is
  almost free, and no per-video hash table over the whole corpus is ever built. The same
  scan finds the rows whose tag list is null; with those of a null id or uri they are
  the rows match rejects.
* :meth:`VideosScan.id_hashes`: a 64-bit hash per row to find duplicate ids (confirmed on
  the exact strings later).
* :meth:`VideosScan.rows`: ``row, video_id, uri, duration_s`` in input order, for the
  manifest.

Two ways in, one meaning. A local Parquet file whose ``hashtags`` is a list of strings
(today's common case) is read by DuckDB itself, and the tags are normalised in SQL:
ASCII tags by the rule of :func:`weaksup.assembly.videos.normalize_tags` (lower-case,
then drop everything but ``[a-z0-9]``), the others by calling that function (NFKC,
case-folding) as a DuckDB UDF, so both give the same tags as before. Any other input
(CSV, JSONL, text hashtags, ``--text-column``, folders, object-store uris) is read once
by :func:`weaksup.assembly.videos.iter_videos`, exactly as before, into a local staging
Parquet file that DuckDB then scans with no further normalisation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from weaksup import uris
from weaksup.assembly.videos import iter_videos, normalize_tags, open_table
from weaksup.errors import InputError, first_line
from weaksup.tables import open_parquet
from weaksup.threads import thread_budget

#: Suffixes :func:`weaksup.assembly.videos.open_table` reads as something other than Parquet.
_NOT_PARQUET = (".csv", ".tsv", ".jsonl", ".ndjson", ".json")
_UDF = "weaksup_normalize_tags"
#: The tag normalisation of the direct Parquet path, on the unnested tag ``t``: ASCII tags
#: (as many bytes as characters) by the Arrow fast path's rule (a tag of [a-z0-9] only is
#: its own normal form), others by the Python function.
NORMALIZE_SQL = (  # already normal (the common case) first: the cheapest test that settles most tags
    "CASE WHEN regexp_full_match(t, '[a-z0-9]*') THEN t "
    f"WHEN strlen(t) <> length(t) THEN {_UDF}(t) "
    "ELSE regexp_replace(lower(t), '[^a-z0-9]+', '', 'g') END"
)
_STAGED_SCHEMA = pa.schema(
    [("video_id", pa.string()), ("uri", pa.string()), ("hashtags", pa.list_(pa.string())), ("duration_s", pa.float64())]
)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def direct_parquet(videos: str | Path, text_column: str | None) -> Path | None:
    """The local Parquet file DuckDB may read itself (same rows, same values as
    :func:`iter_videos` gives), or None when the input needs the Arrow reader."""
    if text_column is not None or not uris.is_local(videos):
        return None
    path = uris.local_path(videos)
    if not path.is_file() or path.suffix.lower() in _NOT_PARQUET:
        return None
    schema = open_table(videos).schema
    names = schema.names
    if "hashtags" not in names or not all(n in names for n in ("video_id", "uri")):
        return None
    tags = schema.field("hashtags").type
    list_of_text = (pa.types.is_list(tags) or pa.types.is_large_list(tags)) and _is_text(tags.value_type)
    ids_text = _is_text(schema.field("video_id").type) and _is_text(schema.field("uri").type)
    duration_ok = "duration_s" not in names or pa.types.is_floating(schema.field("duration_s").type)
    return path if list_of_text and ids_text and duration_ok else None


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _normalize_udf(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The DuckDB UDF of non-ASCII tags: :func:`normalize_tags` itself."""
    return normalize_tags(values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values)


def register_normalize_udf(con: duckdb.DuckDBPyConnection) -> None:
    """Give ``con`` the function :data:`NORMALIZE_SQL` calls for non-ASCII tags."""
    con.create_function(_UDF, _normalize_udf, [duckdb.sqltype("VARCHAR")], duckdb.sqltype("VARCHAR"), type="arrow")


class VideosScan:
    """One videos table opened in DuckDB for match (see the module doc); a context manager
    that closes the connection and deletes the staging file."""

    def __init__(
        self,
        videos: str | Path,
        tags: pa.Array,
        *,
        staging: Path,
        text_column: str | None = None,
        batch_size: int = 1 << 18,
        threads: int | None = None,
        on_rows: Callable[[int], None] | None = None,
    ) -> None:
        self.videos = videos
        self.n_tags = len(tags)
        self.threads = threads or thread_budget()
        # insertion order kept (the default, relied on by :meth:`rows`, and checked there)
        self.con = duckdb.connect(config={"threads": self.threads, "preserve_insertion_order": True})
        self.staged: Path | None = None
        try:
            self._register_tags(tags)
            direct = direct_parquet(videos, text_column)
            if direct is not None:
                register_normalize_udf(self.con)
                parquet = open_parquet(direct)
                self.n_read = parquet.metadata.num_rows
                duration = "duration_s::DOUBLE" if "duration_s" in parquet.schema_arrow.names else "NULL::DOUBLE"
                self._view(direct, duration)
                self.ids_source: str | Path = videos
                self.normalize = NORMALIZE_SQL
            else:
                self.staged = staging
                vocabulary = tags if text_column is not None else None  # phrases not in the index are dropped early
                self.n_read = self._stage(videos, staging, text_column, vocabulary, batch_size, on_rows)
                self._view(staging, "duration_s")
                self.ids_source = staging
                self.normalize = "t"
        except BaseException:
            self.close()
            raise

    def _view(self, path: Path, duration: str) -> None:
        self.con.execute(
            f"CREATE VIEW src AS SELECT file_row_number AS row, video_id, uri, {duration} AS duration_s, hashtags "
            f"FROM read_parquet({_quote(path)}, file_row_number = true)"
        )

    @staticmethod
    def _stage(
        videos: str | Path,
        staging: Path,
        text_column: str | None,
        vocabulary: pa.Array | None,
        batch_size: int,
        on_rows: Callable[[int], None] | None,
    ) -> int:
        """Read the table once with :func:`iter_videos` (normalised tags, captions' candidates)
        into the local Parquet file ``staging``; returns the rows read."""
        n = 0
        with pq.ParquetWriter(staging, _STAGED_SCHEMA, compression="snappy") as writer:
            for batch in iter_videos(videos, batch_size=batch_size, text_column=text_column, vocabulary=vocabulary):
                writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=_STAGED_SCHEMA))
                n += batch.num_rows
                if on_rows is not None:
                    on_rows(n)
        return n

    def close(self) -> None:
        self.con.close()
        if self.staged is not None and self.staged.exists():
            self.staged.unlink()

    def __enter__(self) -> "VideosScan":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _reader(self, sql: str, batch_size: int, params: dict | None = None) -> Iterator[pa.RecordBatch]:
        """Record batches of a query; DuckDB's errors (a corrupt page) as one line naming the table."""
        try:
            yield from self.con.sql(sql, params=params).to_arrow_reader(batch_size)
        except duckdb.Error as exc:
            reason = first_line(exc) or type(exc).__name__
            raise InputError(f"{uris.display(self.videos)}: cannot read the table ({reason})") from None

    def id_hashes(self, batch_size: int) -> np.ndarray:
        """DuckDB's 64-bit hash of every row's video_id, in row order (equal ids, equal hashes)."""
        out = np.empty(self.n_read, np.uint64)
        for row0, batch in self._ordered("SELECT row, hash(video_id) AS h FROM src", batch_size):
            out[row0 : row0 + batch.num_rows] = batch.column("h").to_numpy()
        return out

    def join(self, tags_reason: str, on_row: Callable[[int], None] | None = None) -> tuple[np.ndarray, list[dict]]:
        """The join: sorted distinct ``row * n_tags + tag position`` of every tag in the index (rows
        with a video_id and a uri); and the rejects of rows with a null video_id, uri or tags (one
        reason a row, in that order), by row. One scan: a null tag list is unnested as the marker
        tag, which the index maps to position -1, and comes back as the key ``-1 - row``."""
        sql = (
            f"SELECT CASE WHEN idx.pos < 0 THEN -1 - u.row ELSE u.row * {self.n_tags} + idx.pos END AS key FROM "
            "(SELECT row, hashtags IS NULL AS missing, unnest(coalesce(hashtags, [$marker])) AS t "
            " FROM src WHERE video_id IS NOT NULL AND uri IS NOT NULL AND uri <> '') AS u "
            f"JOIN idx ON idx.tag = (CASE WHEN u.missing THEN u.t ELSE ({self.normalize}) END)"
        )
        parts: list[np.ndarray] = []
        for batch in self._reader(sql, 1 << 20, {"marker": self.marker}):
            parts.append(batch.column(0).to_numpy())
            if on_row is not None and len(parts[-1]) and parts[-1].max() >= 0:
                on_row(int(parts[-1].max()) // max(self.n_tags, 1) + 1)
        keys = np.concatenate(parts) if parts else np.empty(0, np.int64)
        del parts
        keys.sort(kind="stable")  # timsort: DuckDB returns the keys in runs of row order
        if len(keys) > 1:
            keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
        n_missing = int(np.searchsorted(keys, 0))
        return keys[n_missing:], self._null_rejects((-1 - keys[:n_missing])[::-1], tags_reason)

    def _null_rejects(self, missing: np.ndarray, tags_reason: str) -> list[dict]:
        """Rejects of null video_ids, null or empty uris (an empty one: a row fetch could not
        download) and of
        the rows ``missing`` (null tags)."""
        sql = (
            "SELECT row, video_id, CASE WHEN video_id IS NULL THEN 'null video_id' WHEN uri IS NULL THEN 'null uri' "
            "ELSE 'empty uri' END AS reason FROM src WHERE video_id IS NULL OR uri IS NULL OR uri = ''"
        )
        out = [r for batch in self._reader(sql, 1 << 16) for r in batch.to_pylist()]
        if len(missing):
            self.con.register("missing_rows", pa.table({"row": pa.array(missing, pa.int64())}))
            sql = "SELECT row, video_id, $reason AS reason FROM src SEMI JOIN missing_rows USING (row)"
            out += [r for batch in self._reader(sql, 1 << 16, {"reason": tags_reason}) for r in batch.to_pylist()]
            self.con.unregister("missing_rows")
        return sorted(out, key=lambda r: r["row"])

    def _register_tags(self, tags: pa.Array) -> None:
        """The index's hashtags as table ``idx(tag, pos)``, pos their position in ``tags``; and the
        marker of a null tag list at position -1: NUL, which no normalised tag holds (longer if
        the index has it)."""
        tags = tags.cast(pa.string())
        self.marker = "\x00"
        while pc.any(pc.equal(tags, self.marker)).as_py():
            self.marker += "\x00"
        self.con.register(
            "idx_arrow",
            pa.table(
                {
                    "tag": pa.concat_arrays([tags, pa.array([self.marker])]),
                    "pos": pa.array(np.append(np.arange(len(tags)), -1), pa.int64()),
                }
            ),
        )
        self.con.execute("CREATE TABLE idx AS SELECT * FROM idx_arrow")
        self.con.unregister("idx_arrow")

    def _ordered(self, sql: str, batch_size: int) -> Iterator[tuple[int, pa.RecordBatch]]:
        """Batches of a scan of ``src`` (``row`` first) checked to come in row order, with their first row."""
        expected = 0
        for batch in self._reader(sql, batch_size):
            rows = batch.column("row").to_numpy()
            if len(rows) and not np.array_equal(rows, np.arange(expected, expected + len(rows))):
                raise RuntimeError(f"DuckDB returned rows {rows[0]}.. where row {expected} was expected")
            yield expected, batch
            expected += len(rows)

    def rows(self, batch_size: int) -> Iterator[tuple[int, pa.RecordBatch]]:
        """``video_id, uri, duration_s`` of every row, in input order, with each batch's first row."""
        return self._ordered("SELECT row, video_id, uri, duration_s FROM src", batch_size)
