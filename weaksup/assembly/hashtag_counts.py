"""`weaksup hashtag-counts`: videos per hashtag of a videos table, streamed.

Reads the videos table exactly as ``weaksup match`` does (:func:`weaksup.assembly.videos.iter_videos`:
list or ``#tag`` text columns, the same normalisation) and rejects the rows match would
reject (null ``video_id``, ``uri`` or ``hashtags``; a repeated ``video_id`` after its first
row), so the counts are the corpus match sees. Each batch is reduced to distinct
(row, tag) pairs with Arrow/numpy kernels and to one (hashtag, count) row per tag; those
small tables are merged with an Arrow group-by whenever they outgrow the running total,
so memory is bounded by the number of distinct tags, not by the corpus.

Writes table ``hashtag_counts`` (hashtag, count = videos carrying it, each video once per
tag; sorted by count descending, then hashtag), the rejects (schema ``match_rejects``) and
a summary where videos read = with tags + without tags + rejected. The table is what
``build-labels --source verb-noun --pair-counts`` reads.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from weaksup import uris
from weaksup.assembly.videos import (
    duplicate_rows,
    finish_rejects,
    iter_videos,
    open_table,
    reject_null_rows,
    require_columns,
    tag_column,
)
from weaksup.errors import InputError
from weaksup.hashing import stable_hash64
from weaksup.outputs import output_set, side_path
from weaksup.progress import count_progress
from weaksup.tables import load_schema, write_json, write_table
from weaksup.uris import PathOrUri

_ACC_SCHEMA = pa.schema([("hashtag", pa.large_string()), ("count", pa.int64())])
MERGE_ROWS = 1 << 20  # batch (hashtag, count) rows that wait before a merge, at least


@dataclass(frozen=True)
class HashtagCountsConfig:
    """Options of ``weaksup hashtag-counts``."""

    videos: Path  # videos table (Parquet file or folder of parts, CSV, JSONL; a path or uri)
    out: Path  # output table hashtag_counts (.parquet); rejects and summary go beside it
    min_count: int = 1  # keep tags with at least this many videos
    batch_size: int = 1 << 18  # rows per streamed batch
    progress: bool = True  # show a progress bar


@dataclass(frozen=True)
class HashtagCountsResult:
    out: Path | str  # the hashtag_counts table
    rejects_path: Path | str  # rejected rows (schema match_rejects)
    summary_path: Path | str  # OUT-stem.summary.json
    summary: dict


def side_paths(out: PathOrUri) -> tuple[Path | str, Path | str]:
    """Rejects and summary paths beside ``out`` (Paths for a local ``out``, else uris)."""
    return side_path(out, ".rejects.parquet"), side_path(out, ".summary.json")


def batch_tag_counts(tags: pa.Array, keep: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    """(hashtag, count) of one batch, each row counted once per distinct tag, and which rows
    carry at least one tag. Only rows with ``keep`` count; null and empty tags are no tags."""
    if isinstance(tags, pa.ChunkedArray):
        tags = tags.combine_chunks()
    has_tags = np.zeros(len(tags), bool)
    flat = pc.list_flatten(tags)
    parents = pc.list_parent_indices(tags).to_numpy(zero_copy_only=False).astype(np.int64)
    ok = keep[parents] & pc.fill_null(pc.greater(pc.binary_length(flat), 0), False).to_numpy(zero_copy_only=False)
    if not ok.any():
        return _ACC_SCHEMA.empty_table(), has_tags
    encoded = pc.dictionary_encode(flat.filter(pa.array(ok)))
    n_tags = len(encoded.dictionary)
    key = np.unique(parents[ok] * n_tags + encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64))
    has_tags[key // n_tags] = True
    counts = np.bincount(key % n_tags, minlength=n_tags)  # every dictionary entry occurs: all >= 1
    return pa.table(
        [encoded.dictionary.cast(pa.large_string()), pa.array(counts, pa.int64())], schema=_ACC_SCHEMA
    ), has_tags


class _TagCounter:
    """Running (hashtag, count) totals: batch tables pile up and are merged by an Arrow group-by
    once they hold as many rows as the total (at least ``merge_rows``), so memory stays within a
    small multiple of the number of distinct tags and the merge cost is amortised."""

    def __init__(self, merge_rows: int | None = None) -> None:
        self.merge_rows = MERGE_ROWS if merge_rows is None else merge_rows
        self.total = _ACC_SCHEMA.empty_table()
        self.pending: list[pa.Table] = []
        self.pending_rows = 0

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self.pending.append(table)
        self.pending_rows += table.num_rows
        if self.pending_rows >= max(self.merge_rows, self.total.num_rows):
            self._merge()

    def _merge(self) -> None:
        if not self.pending:
            return
        merged = pa.concat_tables([self.total, *self.pending]).group_by("hashtag").aggregate([("count", "sum")])
        self.total = pa.table([merged.column("hashtag"), merged.column("count_sum")], schema=_ACC_SCHEMA)
        self.pending, self.pending_rows = [], 0

    def result(self) -> pa.Table:
        self._merge()
        return self.total


def merge_tag_counts(tables: Iterable[pa.Table]) -> pa.Table:
    """(hashtag, count) tables (of parts of a corpus split by video id) summed per hashtag, with
    the same bounded merges as one count: memory within a small multiple of the distinct tags."""
    counter = _TagCounter()
    for table in tables:
        counter.add(pa.table([table.column("hashtag").cast(pa.large_string()), table.column("count")], _ACC_SCHEMA))
    return counter.result()


def final_counts(counts: pa.Table, min_count: int) -> tuple[pa.Table, int, int]:
    """The written table of running totals: tags with a positive count (a duplicate's own tags
    go back to 0), those of at least ``min_count`` sorted by count descending then hashtag; and
    the distinct tags and (tag, video) pairs before the ``min_count`` cut."""
    counts = counts.filter(pc.greater(counts.column("count"), 0))
    pairs = int(pc.sum(counts.column("count")).as_py() or 0)
    kept = counts.filter(pc.greater_equal(counts.column("count"), min_count))
    return kept.sort_by([("count", "descending"), ("hashtag", "ascending")]), counts.num_rows, pairs


def check_options(cfg: HashtagCountsConfig) -> None:
    """Refuse, before any work, options that make no sense (one line each)."""
    if cfg.min_count < 1:
        raise InputError(f"--min-count {cfg.min_count}: must be at least 1")
    if cfg.batch_size < 1:
        raise InputError(f"--batch-size {cfg.batch_size}: must be at least 1")
    out = uris.as_uri(cfg.out)
    if uris.is_local(out) and uris.local_path(out).is_dir():
        raise InputError(f"{uris.display(out)}: is a directory, expected an output file path (.parquet)")
    if not uris.basename(out).endswith(".parquet"):
        # build-labels --pair-counts reads a non-.parquet name as CSV
        raise InputError(f"{uris.display(out)}: hashtag-counts writes Parquet; name the output *.parquet")


@output_set()  # counts, rejects and summary: all or none
def count_hashtags(cfg: HashtagCountsConfig) -> HashtagCountsResult:
    """Count the videos carrying each hashtag of a videos table; write counts, rejects, summary."""
    start = time.perf_counter()
    check_options(cfg)
    videos = cfg.videos
    dataset = open_table(videos)  # a missing or unreadable table fails before anything is created
    label = uris.display(videos)
    require_columns(dataset, label, ("video_id", "uri"))
    tag_column(dataset, label)
    out = uris.local_path(cfg.out) if uris.is_local(cfg.out) else uris.as_uri(cfg.out)
    rejects_path, summary_path = side_paths(out)
    total = dataset.count_rows() if str(videos).endswith((".parquet", ".pq")) or Path(videos).is_dir() else None

    counter = _TagCounter()
    rejects: list[dict] = []
    hashes: list[np.ndarray] = []
    n_read = n_with = n_without = 0
    with count_progress(cfg.progress, "hashtag-counts") as bar:
        task = bar.add_task("hashtag-counts", total=total)
        for batch in iter_videos(videos, batch_size=cfg.batch_size):
            n, row0 = batch.num_rows, n_read
            n_read += n
            vid, uri, tags = batch.column("video_id"), batch.column("uri"), batch.column("hashtags")
            rejected = reject_null_rows(vid, uri, tags, row0, rejects)  # match's rules
            h = stable_hash64(vid, 0, "video_id")
            h[rejected] = 0  # as in match: rejected rows take no part in duplicate detection
            hashes.append(h)
            table, has_tags = batch_tag_counts(tags, ~rejected)
            counter.add(table)
            n_with += int(has_tags.sum())
            n_without += int((~rejected & ~has_tags).sum())
            bar.advance(task, n)

    all_hashes = np.concatenate(hashes) if hashes else np.empty(0, np.uint64)
    del hashes
    duplicates = duplicate_rows(videos, all_hashes, cfg.batch_size)
    del all_hashes
    if duplicates:  # a repeated video_id counts once (its first row), as match keeps only the first
        dup_rows = np.fromiter(duplicates, np.int64)
        row0 = 0
        for batch in iter_videos(videos, batch_size=cfg.batch_size):
            n = batch.num_rows
            mask = np.isin(np.arange(row0, row0 + n), dup_rows)
            row0 += n
            if not mask.any():
                continue
            table, has_tags = batch_tag_counts(batch.column("hashtags"), mask)
            counter.add(table.set_column(1, "count", pc.negate(table.column("count"))))
            n_with -= int(has_tags.sum())
            n_without -= int((mask & ~has_tags).sum())
        rejects.extend(
            {"row": r, "video_id": v, "reason": "duplicate video_id", "first": first}
            for r, (v, first) in sorted(duplicates.items())
        )

    kept, n_distinct, pairs = final_counts(counter.result(), cfg.min_count)
    write_table("hashtag_counts", kept, out)
    rejects = finish_rejects(videos, rejects)
    write_table(
        "match_rejects", pa.Table.from_pylist(rejects, schema=load_schema("match_rejects").to_arrow()), rejects_path
    )
    summary = {
        "videos_read": n_read,
        "videos_with_tags": n_with,
        "videos_without_tags": n_without,
        "rejected": len(rejects),
        "rejected_by_reason": dict(Counter(r["reason"].split(" (")[0] for r in rejects)),
        "accounted": n_with + n_without + len(rejects) == n_read,
        "distinct_hashtags": n_distinct,
        "hashtags_written": kept.num_rows,
        "tag_video_pairs": pairs,
        "min_count": cfg.min_count,
        "wall_s": round(time.perf_counter() - start, 3),
        "outputs": {"hashtag_counts": str(out), "rejects": str(rejects_path)},
    }
    write_json(summary, summary_path)
    return HashtagCountsResult(out, rejects_path, summary_path, summary)
