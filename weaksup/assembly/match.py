"""`weaksup match`: web videos x label hashtags -> a labelled manifest, streamed.

At 65M videos the join must run in parallel and in bounded memory. DuckDB does the join
(:mod:`weaksup.assembly.match_engine`): it scans the table, unnests and normalises the
tags and hash-joins them with the hashtag index, returning one int64 key per hit
(``row * n_tags + tag``, 8 bytes a hit); numpy groups those keys per video (they arrive
almost sorted) and maps tags to labels through the index's CSR lists. No per-video table
is built over the whole corpus, and nothing but the keys and one hash per row is held.
Two passes over the data:

1. the join; rejects (null id, uri or tags; repeated ids); each label's support (videos
   carrying at least one of its hashtags);
2. drop labels below ``min_videos`` (paper: 50), re-assess their videos against the
   labels they still match, and draw ONE label per video uniformly from what is left,
   reading ``video_id``, ``uri``, ``duration_s`` again in row order.

The draw depends only on ``(seed, video_id)`` so the manifest is the same whatever the
row order, sharding or worker count. Every input row ends up in exactly one of:
manifest, unmatched, dropped by the min-videos filter, or the rejects table.

Partitioned (map/reduce) match: a table split by video-id hash (``partition-videos``)
keeps every copy of an id in one part, so each part is matched alone. Only the
min-videos decision is global: ``count_matches`` writes each part's label support,
``match_videos`` with ``support`` takes the sum of all parts' support for it, and
``match_partitioned`` runs both over a folder of parts; the union of the part manifests
equals one match over the whole table.

Captions: with ``text_column`` (``--text-column``) a free-text column gives phrase
candidates (:func:`weaksup.assembly.videos.text_candidates`) that are looked up in the
index like tags; ``drop_tags`` (``--drop-tags``) removes listed tags from the index first.
Both change what a label's support means, so they are part of the label-space digest
that support counts are checked against.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from weaksup import uris
from weaksup.assembly.match_engine import VideosScan
from weaksup.assembly.partition import PART_META_KEY, list_parts, read_part_label
from weaksup.assembly.videos import (
    ColumnFeed,
    candidate_columns,
    check_keep_columns,
    duplicate_rows,
    finish_rejects,
    open_table,
    require_columns,
)
from weaksup.errors import InputError
from weaksup.hashing import splitmix64, stable_hash64
from weaksup.labels.sources import read_hashtag_list
from weaksup.outputs import atomic_path, commit_output, out_stem, output_set, require_local_output, side_path
from weaksup.progress import count_progress
from weaksup.tables import conform, load_schema, read_table, write_json, write_table
from weaksup.uris import check_input_file

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


@dataclass(frozen=True)
class MatchConfig:
    """Options of ``weaksup match``."""

    videos: Path
    labels: Path
    out: Path
    min_videos: int = 50
    seed: int = 0
    batch_size: int = 1 << 18
    progress: bool = True
    support: Path | None = None  # label support of the whole corpus (match-count output: a file or a folder of parts)
    side_dir: Path | None = None  # where rejects, label counts and summary go (default: beside the manifest)
    text_column: str | None = None  # a free-text column whose #tags and phrases are candidates too
    drop_tags: Path | None = None  # a file of hashtags (one a line) removed from the index before matching
    keep_columns: tuple[str, ...] = ()  # videos-table columns carried, per video, into the manifest (after its own)


@dataclass(frozen=True)
class HashtagIndex:
    """Hashtag -> label ids as a sorted value set plus CSR label lists (collisions allowed)."""

    tags: pa.Array
    starts: np.ndarray
    counts: np.ndarray
    label_ids: np.ndarray
    names: list[str]

    @classmethod
    def from_labels(cls, path: Path) -> "HashtagIndex":
        table = read_table("labels", path, columns=["label_id", "label", "hashtags"])
        ids = table.column("label_id").to_numpy()
        if len(ids) and (ids.min() < 0 or not np.array_equal(np.sort(ids), np.arange(len(ids)))):
            raise InputError(f"{path}: column 'label_id' must be dense 0..{len(ids) - 1}")
        names = [None] * len(ids)
        for i, name in zip(ids.tolist(), table.column("label").to_pylist()):
            names[i] = name
        tags = table.column("hashtags").combine_chunks()
        flat = tags.values.to_numpy(zero_copy_only=False).astype(object)
        owner = np.repeat(ids, np.diff(tags.offsets.to_numpy()))
        order = np.lexsort((owner, flat))
        flat, owner = flat[order], owner[order]
        uniq, starts, counts = np.unique(flat, return_index=True, return_counts=True)
        return cls(pa.array(uniq.tolist(), pa.string()), starts, counts, owner.astype(np.int32), names)

    def __len__(self) -> int:
        return len(self.names)

    def without(self, tags: list[str]) -> tuple["HashtagIndex", int]:
        """This index less the hashtags ``tags`` (normalised), and how many of them it held."""
        drop = pc.is_in(self.tags, value_set=pa.array(sorted(set(tags)), pa.string())).to_numpy(zero_copy_only=False)
        if not drop.any():
            return self, 0
        keep = ~drop
        counts = self.counts[keep]
        starts = (np.cumsum(counts) - counts).astype(self.starts.dtype)
        label_ids = self.label_ids[np.repeat(keep, self.counts)]
        return HashtagIndex(self.tags.filter(pa.array(keep)), starts, counts, label_ids, self.names), int(drop.sum())

    def digest(self) -> str:
        """A fingerprint of the label space (names and hashtag -> label pairs): support counts
        made against one label space must not decide the labels of another."""
        h = hashlib.sha256(json.dumps(self.names).encode())
        h.update(json.dumps(self.tags.to_pylist()).encode())
        h.update(np.ascontiguousarray(self.counts, np.int64).tobytes())
        h.update(np.ascontiguousarray(self.label_ids, np.int32).tobytes())
        return h.hexdigest()[:32]


def load_index(labels: Path, drop_tags: Path | None = None) -> tuple[HashtagIndex, dict]:
    """The hashtag index of a labels table, less the tags of ``drop_tags``; and the summary
    entries of the drop (``dropped_tags``: the file's tags that were in the index,
    ``drop_tags_not_in_index``: those that were not)."""
    dropped = read_hashtag_list(drop_tags) if drop_tags is not None else None  # a bad file fails first
    index = HashtagIndex.from_labels(Path(labels))
    if dropped is None:
        return index, {}
    index, found = index.without(dropped)
    return index, {"drop_tags": str(drop_tags), "dropped_tags": found, "drop_tags_not_in_index": len(dropped) - found}


def space_digest(index: HashtagIndex, text_column: str | None = None) -> str:
    """The label-space digest support counts are stamped with: the index (after
    ``--drop-tags``) and, when phrases are candidates, the text column they come from."""
    digest = index.digest()
    if text_column is None:
        return digest
    return hashlib.sha256(f"{digest}\0text-column:{text_column}".encode()).hexdigest()[:32]


def parse_keep_columns(text: str | None) -> tuple[str, ...]:
    """``--keep-columns a,b,c`` as a tuple of names (blanks around names and empty entries dropped)."""
    return tuple(name.strip() for name in (text or "").split(",") if name.strip())


def check_keep(dataset: ds.Dataset, path: str, keep_columns: tuple[str, ...]) -> None:
    """Refuse, in one line, ``--keep-columns`` the videos table lacks or the manifest has already."""
    if keep_columns:
        check_keep_columns(dataset, path, tuple(keep_columns), tuple(load_schema("manifest").names))


def check_options(*, min_videos: int | None = None, batch_size: int | None = None) -> None:
    """Refuse, before any work, numeric options that make no sense (one line each)."""
    if min_videos is not None and min_videos < 0:
        raise InputError(f"--min-videos {min_videos}: must be 0 or more")
    if batch_size is not None and batch_size < 1:
        raise InputError(f"--batch-size {batch_size}: must be at least 1")


def labels_of_hits(rows: np.ndarray, tag_pos: np.ndarray, index: HashtagIndex) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (row, label_id) pairs of (row, tag) hits, sorted by row then label."""
    n = index.counts[tag_pos]
    rows = np.repeat(rows, n)
    start = np.repeat(index.starts[tag_pos] - np.cumsum(n) + n, n) + np.arange(n.sum())
    labels = index.label_ids[start].astype(np.int64)
    key = rows * len(index) + labels
    key.sort(kind="stable")  # rows come sorted: timsort is about linear here
    if len(key):
        key = key[np.concatenate([[True], key[1:] != key[:-1]])]
    rows, labels = np.divmod(key, len(index))
    return rows, labels.astype(np.int32)


def tags_of_label(tag_lists: pa.Array, label_id: np.ndarray, index: HashtagIndex) -> pa.Array:
    """Per row, its hit hashtags (positions in ``index.tags``) that are relevant hashtags of
    its label ``label_id``: the audit trail of why the video got that label."""
    flat = pc.list_flatten(tag_lists).to_numpy(zero_copy_only=False).astype(np.int64)
    parents = pc.list_parent_indices(tag_lists).to_numpy(zero_copy_only=False)
    want = np.asarray(label_id)[parents]
    start, count = index.starts[flat], index.counts[flat]
    ok = np.zeros(len(flat), bool)
    single = count == 1  # a collision-free tag has one label
    ok[single] = index.label_ids[start[single]] == want[single]
    multi = np.flatnonzero(~single)  # tags of several labels: every (tag, label) pair compared
    n = count[multi]
    entry = np.repeat(multi, n)
    pair = np.repeat(start[multi] - np.cumsum(n) + n, n) + np.arange(n.sum())
    ok[entry[index.label_ids[pair] == want[entry]]] = True
    n = np.bincount(parents[ok], minlength=len(label_id))
    offsets = np.concatenate([[0], np.cumsum(n)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), index.tags.take(pa.array(flat[ok], pa.int64())))


def _draw(hashes: np.ndarray, seed: int, counts: np.ndarray) -> np.ndarray:
    """A uniform choice in [0, count) per video, a function of (seed, video_id) only."""
    mixed = splitmix64(hashes ^ splitmix64(np.full(len(hashes), seed, dtype=np.uint64)))
    return (mixed % np.maximum(counts, 1).astype(np.uint64)).astype(np.int64)


def _group_starts(sorted_values: np.ndarray) -> np.ndarray:
    """Index of the first element of each run of equal values."""
    if not len(sorted_values):
        return np.empty(0, np.int64)
    return np.flatnonzero(np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]]))


def _row_slices(keys: np.ndarray, n_tags: int, size: int = 1 << 22) -> Iterator[slice]:
    """Slices of about ``size`` hit keys that never split one row's hits."""
    start = 0
    while start < len(keys):
        end = min(start + size, len(keys))
        if end < len(keys):
            end = int(np.searchsorted(keys, (keys[end - 1] // n_tags + 1) * n_tags))
        yield slice(start, end)
        start = end


@dataclass
class _FirstPass:
    """What pass 1 learns about one videos table: the hits, support after duplicate removal, rejects, accounting."""

    n_read: int
    support: np.ndarray
    rejects: list[dict]
    n_unmatched: int
    duplicate_rows: dict[int, tuple[str, int]]
    keys: np.ndarray  # sorted distinct row * n_tags + tag position of every hit (duplicate rows included)
    n_tags: int


def _first_pass(
    scan: VideosScan, index: HashtagIndex, batch_size: int, tags_reason: str, on_row: Callable[[int], None]
) -> _FirstPass:
    """The join (hits), rejects, duplicate ids and each label's support (duplicates left out)."""
    keys, rejects = scan.join(tags_reason, on_row)
    n_tags = max(scan.n_tags, 1)
    hashes = scan.id_hashes(batch_size)
    hashes[np.array([r["row"] for r in rejects], np.int64)] = 0  # a rejected row is nobody's first copy
    duplicates = duplicate_rows(scan.ids_source, hashes, batch_size)
    del hashes
    dup_idx = np.sort(np.fromiter(duplicates, np.int64, len(duplicates)))
    support = np.zeros(len(index), np.int64)
    n_matched = n_dup_matched = 0
    for part in _row_slices(keys, n_tags):
        rows, pos = np.divmod(keys[part], n_tags)
        matched_rows = rows[_group_starts(rows)]
        n_matched += len(matched_rows)
        if len(dup_idx):
            n_dup_matched += int(np.isin(matched_rows, dup_idx).sum())
            keep = ~np.isin(rows, dup_idx)
            rows, pos = rows[keep], pos[keep]
        support += np.bincount(labels_of_hits(rows, pos, index)[1], minlength=len(index))
    rejects.extend(
        {"row": r, "video_id": v, "reason": "duplicate video_id", "first": first}
        for r, (v, first) in sorted(duplicates.items())
    )
    n_null = len(rejects) - len(duplicates)
    n_unmatched = scan.n_read - n_null - n_matched - (len(duplicates) - n_dup_matched)
    return _FirstPass(scan.n_read, support, rejects, n_unmatched, duplicates, keys, n_tags)


@contextmanager
def _scanned(
    videos: str | Path, index: HashtagIndex, staging: Path, batch_size: int, progress: bool, text_column: str | None
) -> Iterator[tuple[VideosScan, _FirstPass]]:
    """The videos table opened in DuckDB and its first pass, under a progress bar of rows."""
    dataset = open_table(videos)
    total = dataset.count_rows() if str(videos).endswith((".parquet", ".pq")) or Path(videos).is_dir() else None
    tags_reason = "null hashtags"
    if text_column is not None:  # the reason names the columns that were all null: "null hashtags and caption"
        tags_col, text_col = candidate_columns(dataset, str(videos), text_column)
        tags_reason = "null " + " and ".join(c for c in (tags_col, text_col) if c is not None)
    with count_progress(progress, "match") as bar:
        task = bar.add_task("match", total=total)
        seen = lambda n: bar.update(task, completed=n)  # noqa: E731
        scan = VideosScan(
            videos, index.tags, staging=staging, text_column=text_column, batch_size=batch_size, on_rows=seen
        )
        try:
            first = _first_pass(scan, index, batch_size, tags_reason, seen)
        except BaseException:
            scan.close()
            raise
        bar.update(task, completed=first.n_read)
    with scan:
        yield scan, first


def _manifest_part(
    batch: pa.RecordBatch,
    row0: int,
    first: _FirstPass,
    dup_idx: np.ndarray,
    index: HashtagIndex,
    kept: np.ndarray,
    seed: int,
    extra: pa.Table | None = None,
) -> tuple[pa.Table, int, np.ndarray]:
    """The manifest rows of one batch of input rows (those with a kept label, one drawn), the
    number of matched rows left without a kept label, and the drawn label ids. ``extra``: the
    same input rows' ``--keep-columns`` (and ``video_id``), carried after the manifest's columns."""
    lo, hi = np.searchsorted(first.keys, [row0 * first.n_tags, (row0 + batch.num_rows) * first.n_tags])
    rows, pos = np.divmod(first.keys[lo:hi], first.n_tags)
    if len(dup_idx):
        keep = ~np.isin(rows, dup_idx)
        rows, pos = rows[keep], pos[keep]
    tag_starts = _group_starts(rows)
    matched_rows = rows[tag_starts]
    tag_lists = pa.ListArray.from_arrays(
        pa.array(np.append(tag_starts, len(rows)).astype(np.int32)), pa.array(pos, pa.int64())
    )
    label_rows, labels = labels_of_hits(rows, pos, index)
    ok = kept[labels]
    n_kept = np.bincount(np.searchsorted(matched_rows, label_rows[ok]), minlength=len(matched_rows))
    alive = n_kept > 0
    offsets = np.concatenate([[0], np.cumsum(n_kept)]).astype(np.int32)
    kept_labels = labels[ok]
    sel = pa.array(np.flatnonzero(alive))
    local = pa.array(matched_rows[alive] - row0)
    video_id = batch.column("video_id").take(local)
    pick = _draw(stable_hash64(video_id, 0, "video_id"), seed, n_kept[alive])
    label_id = kept_labels[offsets[:-1][alive] + pick] if alive.any() else np.empty(0, np.int32)
    label_arr = pa.array(label_id, pa.int32())
    table = pa.table(
        {
            "video_id": video_id,
            "uri": batch.column("uri").take(local),
            "label_id": label_arr,
            "label": pa.array(index.names, pa.string()).take(label_arr),
            "matched_label_ids": pa.ListArray.from_arrays(pa.array(offsets), pa.array(kept_labels, pa.int32())).take(
                sel
            ),
            "duration_s": batch.column("duration_s").take(local),
            "matched_hashtags": tags_of_label(tag_lists.take(sel), label_id, index),
        }
    )
    if extra is not None:
        for name in extra.column_names[1:]:  # video_id first: only checked, in _second_pass
            table = table.append_column(pa.field(name, extra.schema.field(name).type), extra.column(name).take(local))
    return table, int((~alive).sum()), label_id


def _side_paths(cfg: MatchConfig) -> tuple[Path, Path, Path]:
    """Rejects, label counts and summary paths: beside the manifest, or in ``cfg.side_dir``."""
    out = Path(cfg.out)
    stem = out_stem(out)
    folder = Path(cfg.side_dir) if cfg.side_dir is not None else out.parent
    return (
        folder / f"{stem}.rejects.parquet",
        folder / f"{stem}.label_counts.parquet",
        folder / f"{stem}.summary.json",
    )


@contextmanager
def _background_writer(path: Path, schema: pa.Schema) -> Iterator[Callable[[pa.Table], None]]:
    """A zstd Parquet writer fed through a short queue by a thread: compressing one batch of
    the manifest overlaps with matching the next. Its error is raised in the caller."""
    tables: queue.Queue[pa.Table | None] = queue.Queue(maxsize=2)
    errors: list[BaseException] = []

    def drain(writer: pq.ParquetWriter) -> None:
        while (table := tables.get()) is not None:
            if not errors:
                try:
                    writer.write_table(table)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    errors.append(exc)

    def write(table: pa.Table) -> None:
        if errors:
            raise errors[0]
        tables.put(table)

    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        thread = threading.Thread(target=drain, args=(writer,), name="match-writer", daemon=True)
        thread.start()
        try:
            yield write
        finally:
            tables.put(None)
            thread.join()
    if errors:
        raise errors[0]


def _in_order(fn: Callable[[_Item], _Result], items: Iterable[_Item], workers: int) -> Iterator[_Result]:
    """``map(fn, items)`` on ``workers`` threads (numpy and Arrow release the GIL), results in
    order, at most two per worker in flight."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="match") as pool:
        pending: deque[Future[_Result]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _second_pass(
    scan: VideosScan,
    first: _FirstPass,
    index: HashtagIndex,
    kept: np.ndarray,
    seed: int,
    batch_size: int,
    tmp_out: Path,
    keep_columns: tuple[str, ...] = (),
) -> tuple[np.ndarray, int, int]:
    """Write the manifest to ``tmp_out``, batch by batch of input rows; returns each label's
    assigned videos, the videos left without a kept label, and the manifest's rows.

    ``keep_columns`` are read from the videos table by a second, pyarrow reader
    (:class:`ColumnFeed`: their types exactly as in the input) in step with the scan's rows,
    whose video ids it checks against its own.
    """
    schema = load_schema("manifest")
    dup_idx = np.sort(np.fromiter(first.duplicate_rows, np.int64, len(first.duplicate_rows)))
    assigned = np.zeros(len(index), np.int64)
    n_dropped = n_manifest = 0
    feed = ColumnFeed(scan.videos, keep_columns, batch_size=batch_size) if keep_columns else None
    arrow_schema = schema.to_arrow()
    if feed is not None:
        for name in keep_columns:
            arrow_schema = arrow_schema.append(pa.field(name, feed.schema.field(name).type))

    def rows() -> Iterator[tuple[int, pa.RecordBatch, pa.Table | None]]:
        for row0, batch in scan.rows(batch_size):
            extra = None
            if feed is not None:
                extra = feed.take(batch.num_rows)
                ids = extra.column("video_id").combine_chunks().cast(pa.string())
                if not ids.equals(batch.column("video_id").cast(pa.string())):
                    raise RuntimeError(
                        f"--keep-columns: a second read of the videos table is out of step at row {row0}"
                    )
            yield row0, batch, extra

    def part(item: tuple[int, pa.RecordBatch, pa.Table | None]) -> tuple[pa.Table, int, np.ndarray]:
        table, dropped, label_id = _manifest_part(item[1], item[0], first, dup_idx, index, kept, seed, item[2])
        return conform(table, schema), dropped, label_id

    with _background_writer(tmp_out, arrow_schema) as write:
        for table, dropped, label_id in _in_order(part, rows(), scan.threads):
            n_dropped += dropped
            n_manifest += table.num_rows
            assigned += np.bincount(label_id, minlength=len(index))
            if table.num_rows:
                write(table)
    if feed is not None and feed.rest():
        raise RuntimeError(f"--keep-columns: a second read of the videos table has {feed.rest()} more row(s)")
    return assigned, n_dropped, n_manifest


@output_set()  # manifest, rejects, label counts and summary: all or none
def match_videos(cfg: MatchConfig) -> dict:
    """Match videos against a label space and write manifest, rejects, label counts, summary.

    With ``cfg.support`` (label support summed over every part of a partitioned corpus,
    from :func:`count_matches`) the min-videos decision uses that global support instead
    of this table's own; everything else is about this table.
    """
    check_options(min_videos=cfg.min_videos, batch_size=cfg.batch_size)
    require_local_output(cfg.out)
    out = Path(cfg.out)
    if out.is_dir():
        raise InputError(f"{out}: is a directory, expected an output file path (a videos folder of parts writes one)")
    rejects_path, counts_path, summary_path = _side_paths(cfg)
    index, drop_info = load_index(Path(cfg.labels), cfg.drop_tags)
    n_labels = len(index)
    dataset = open_table(cfg.videos)  # a missing or unreadable table fails before anything is created
    require_columns(dataset, uris.display(cfg.videos), ("video_id", "uri"))
    candidate_columns(dataset, uris.display(cfg.videos), cfg.text_column)
    check_keep(dataset, uris.display(cfg.videos), cfg.keep_columns)
    global_support = (
        read_support(Path(cfg.support), index, cfg.videos, text_column=cfg.text_column)
        if cfg.support is not None
        else None
    )

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = atomic_path(side_path(out, ".staged", whole_name=True))
    tmp_out: Path | None = None
    try:
        with _scanned(cfg.videos, index, staging, cfg.batch_size, cfg.progress, cfg.text_column) as (scan, first):
            kept = (global_support if global_support is not None else first.support) >= cfg.min_videos
            tmp_out = atomic_path(out)
            assigned, n_dropped, n_manifest = _second_pass(
                scan, first, index, kept, cfg.seed, cfg.batch_size, tmp_out, tuple(cfg.keep_columns)
            )
        commit_output(tmp_out, out)
    except BaseException:
        if tmp_out is not None and tmp_out.exists():
            tmp_out.unlink()
        raise
    n_read, support, rejects, n_unmatched = first.n_read, first.support, first.rejects, first.n_unmatched
    names = pa.array(index.names, pa.string())

    rejects = finish_rejects(cfg.videos, rejects)
    write_table(
        "match_rejects", pa.Table.from_pylist(rejects, schema=load_schema("match_rejects").to_arrow()), rejects_path
    )
    write_table(
        "label_counts",
        {
            "label_id": pa.array(np.arange(n_labels), pa.int32()),
            "label": names,
            "matched_videos": pa.array(support, pa.int64()),
            "assigned_videos": pa.array(assigned, pa.int64()),
            "kept": pa.array(kept),
        },
        counts_path,
    )
    reasons = Counter(r["reason"].split(" (")[0] for r in rejects)
    summary = {
        "videos_read": n_read,
        "rejected": len(rejects),
        "rejected_by_reason": dict(reasons),
        "unmatched": n_unmatched,
        "matched": n_read - len(rejects) - n_unmatched,
        "dropped_by_min_videos": n_dropped,
        "in_manifest": n_manifest,
        "labels": n_labels,
        "labels_kept": int(kept.sum()),
        "labels_dropped": int((~kept).sum()),
        "min_videos": cfg.min_videos,
        "seed": cfg.seed,
        "accounted": n_manifest + n_dropped + n_unmatched + len(rejects) == n_read,
        "outputs": {"manifest": str(out), "rejects": str(rejects_path), "label_counts": str(counts_path)},
    }
    if cfg.support is not None:
        summary["support"] = str(cfg.support)
    if cfg.text_column is not None:
        summary["text_column"] = cfg.text_column
    if cfg.keep_columns:
        summary["keep_columns"] = list(cfg.keep_columns)
    summary.update(drop_info)
    write_json(summary, summary_path)
    return summary


def _local_file(path: str | Path) -> bool:
    """A local file (not a folder, not an object-store uri): only those carry part labels we read."""
    return "://" not in str(path) and Path(path).is_file()


# ---- partitioned match: per-part support counts (map), summed support decides the labels (reduce) ----

LABELS_DIGEST_KEY = b"weaksup.labels_digest"


@dataclass(frozen=True)
class MatchCountConfig:
    """Options of ``weaksup match-count``: phase 1 of a partitioned match."""

    videos: Path
    labels: Path
    out: Path
    batch_size: int = 1 << 18
    progress: bool = True
    text_column: str | None = None  # as MatchConfig.text_column
    drop_tags: Path | None = None  # as MatchConfig.drop_tags


def count_matches(cfg: MatchCountConfig) -> dict:
    """Per-label matched-video support of one videos table (one part), duplicates removed.

    Writes table ``label_support``; its metadata names the label space (digest) and, for a
    part made by ``partition-videos``, which part of how many, so that summing checks that
    every part was counted once against the same labels.
    """
    check_options(batch_size=cfg.batch_size)
    videos, out = cfg.videos, Path(cfg.out)
    index, drop_info = load_index(Path(cfg.labels), cfg.drop_tags)
    dataset = open_table(videos)
    require_columns(dataset, uris.display(videos), ("video_id", "uri"))
    candidate_columns(dataset, uris.display(videos), cfg.text_column)
    if out.is_dir():
        raise InputError(f"{out}: is a directory, expected an output file path")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = atomic_path(side_path(out, ".staged", whole_name=True))
    with _scanned(videos, index, staging, cfg.batch_size, cfg.progress, cfg.text_column) as (_, first):
        pass  # the first pass is all match-count needs
    meta = {LABELS_DIGEST_KEY: space_digest(index, cfg.text_column).encode()}
    part = read_part_label(Path(videos)) if _local_file(videos) else None
    if part is not None:
        meta[PART_META_KEY] = f"{part[0]}/{part[1]}".encode()
    write_table(
        "label_support",
        {
            "label_id": pa.array(np.arange(len(index)), pa.int32()),
            "label": pa.array(index.names, pa.string()),
            "matched_videos": pa.array(first.support, pa.int64()),
        },
        out,
        metadata=meta,
    )
    return {
        "videos_read": first.n_read,
        "rejected": len(first.rejects),
        "unmatched": first.n_unmatched,
        "matched": first.n_read - len(first.rejects) - first.n_unmatched,
        "labels": len(index),
        "labels_with_support": int((first.support > 0).sum()),
        "part": f"{part[0]}/{part[1]}" if part else None,
        "out": str(out),
        **({"text_column": cfg.text_column} if cfg.text_column is not None else {}),
        **drop_info,
    }


def _check_parts(where: Path, labels: list[tuple[int, int] | None], what: str) -> int | None:
    """Every part i/N of one partition exactly once (or no part labels at all); returns N."""
    known = [p for p in labels if p is not None]
    if not known:
        return None
    if len(known) != len(labels):
        raise InputError(f"{where}: mixes {what} of partition parts with {what} of whole tables")
    totals = sorted({n for _, n in known})
    if len(totals) != 1:
        raise InputError(
            f"{where}: {what} of partitions into different numbers of parts ({', '.join(map(str, totals))})"
        )
    n = totals[0]
    seen = Counter(i for i, _ in known)
    twice = sorted(i for i, c in seen.items() if c > 1)
    if twice:
        raise InputError(f"{where}: part {twice[0]} of {n} appears more than once")
    missing = sorted(set(range(n)) - set(seen))
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        raise InputError(f"{where}: {what} of {len(seen)} of {n} parts; missing part(s) {shown}")
    return n


def read_support(
    path: Path, index: HashtagIndex, videos: str | Path | None = None, *, text_column: str | None = None
) -> np.ndarray:
    """Label support summed over a ``label_support`` file or a folder of them (one per part).

    Refuses counts made against another label space, and a folder that misses a part or
    holds one twice (the global min-videos decision would silently change).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: support file or folder not found")
    check_input_file(path, "label support", folder_ok=True)
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise InputError(f"{path}: no .parquet support files in the folder")
    n_labels = len(index)
    digest = space_digest(index, text_column)
    total = np.zeros(n_labels, np.int64)
    parts: list[tuple[int, int] | None] = []
    for f in files:
        table = read_table("label_support", f)
        meta = pq.read_schema(f).metadata or {}
        if meta.get(LABELS_DIGEST_KEY, digest.encode()).decode() != digest:
            raise InputError(
                f"{f}: support counted against another label space than --labels "
                "(other labels, --drop-tags or --text-column)"
            )
        ids = table.column("label_id").to_numpy()
        if len(ids) != n_labels or not np.array_equal(np.sort(ids), np.arange(n_labels)):
            raise InputError(f"{f}: support for {len(ids)} labels, the labels table has {n_labels}")
        total[ids] += table.column("matched_videos").to_numpy()
        raw = meta.get(PART_META_KEY)
        parts.append(tuple(int(x) for x in raw.decode().split("/")) if raw else None)  # type: ignore[misc]
    n = _check_parts(path, parts, "support counts")
    if n is not None and videos is not None and _local_file(videos):
        own = read_part_label(Path(videos))
        if own is not None and own[1] != n:
            raise InputError(f"{videos}: part of {own[1]} parts, but the support in {path} counts {n} parts")
    return total


def merge_label_counts(paths: Iterable[Path]) -> dict[str, pa.Array]:
    """The ``label_counts`` of several parts of one partitioned match summed, read one part at a
    time: matched and assigned videos added up; names and ``kept`` from the first part (``kept``
    is decided by the summed support, the same in every part)."""
    merged: dict[str, pa.Array] = {}
    matched = assigned = None
    for path in paths:
        table = read_table("label_counts", path)
        if matched is None:
            merged = {name: table.column(name) for name in ("label_id", "label", "kept")}
            matched = table.column("matched_videos").to_numpy().astype(np.int64)
            assigned = table.column("assigned_videos").to_numpy().astype(np.int64)
        else:
            matched = matched + table.column("matched_videos").to_numpy()
            assigned = assigned + table.column("assigned_videos").to_numpy()
    if matched is None:
        raise ValueError("no label counts to merge")
    return {
        "label_id": merged["label_id"],
        "label": merged["label"],
        "matched_videos": pa.array(matched, pa.int64()),
        "assigned_videos": pa.array(assigned, pa.int64()),
        "kept": merged["kept"],
    }


def merge_match_summaries(
    summaries: list[dict], label_counts: dict[str, pa.Array], reasons: Counter, *, min_videos: int, seed: int
) -> dict:
    """The accounting of a match over several parts (their :func:`match_videos` summaries): the
    counts summed, labels kept and dropped from the merged ``label_counts``, rejects by ``reasons``."""
    total = lambda key: sum(s[key] for s in summaries)  # noqa: E731
    kept = np.asarray(label_counts["kept"].to_numpy(zero_copy_only=False), bool)
    return {
        "videos_read": total("videos_read"),
        "rejected": total("rejected"),
        "rejected_by_reason": dict(reasons),
        "unmatched": total("unmatched"),
        "matched": total("matched"),
        "dropped_by_min_videos": total("dropped_by_min_videos"),
        "in_manifest": total("in_manifest"),
        "labels": len(kept),
        "labels_kept": int(kept.sum()),
        "labels_dropped": int((~kept).sum()),
        "min_videos": min_videos,
        "seed": seed,
        "accounted": all(s["accounted"] for s in summaries)
        and total("in_manifest") + total("dropped_by_min_videos") + total("unmatched") + total("rejected")
        == total("videos_read"),
    }


def match_partitioned(cfg: MatchConfig) -> dict:
    """Both phases over a folder of parts in one process; the same result as one match of the whole table.

    ``cfg.videos`` is a folder of ``part-*.parquet`` (from ``partition-videos``); ``cfg.out``
    a folder that receives ``support/`` (phase 1, unless ``cfg.support`` is given),
    ``manifest/`` (one manifest per part: read it as a Parquet dataset), ``parts/`` (each
    part's rejects, label counts and summary), and the merged ``label_counts.parquet``,
    ``rejects.parquet`` and ``summary.json``.
    """
    check_options(min_videos=cfg.min_videos, batch_size=cfg.batch_size)
    require_local_output(cfg.out)
    videos, out = Path(cfg.videos), Path(cfg.out)
    parts = list_parts(videos)
    for p in parts:  # every part readable with the right columns before any work
        dataset = open_table(p)
        require_columns(dataset, p, ("video_id", "uri"))
        candidate_columns(dataset, str(p), cfg.text_column)
        check_keep(dataset, str(p), cfg.keep_columns)
    n_parts = _check_parts(videos, [read_part_label(p) for p in parts], "files")
    index, drop_info = load_index(Path(cfg.labels), cfg.drop_tags)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file; --partitioned writes a folder")
    names = {p.name for p in parts}
    support = Path(cfg.support) if cfg.support is not None else out / "support"
    stale_dirs = [out / "manifest"] + ([support] if cfg.support is None else [])
    for folder in stale_dirs:  # parts of an earlier run with another partition would be read as ours
        for stale in folder.glob("part-*.parquet") if folder.is_dir() else []:
            if stale.name not in names:
                stale.unlink()

    if cfg.support is None:
        for p in parts:
            count_matches(
                MatchCountConfig(
                    p,
                    Path(cfg.labels),
                    support / p.name,
                    cfg.batch_size,
                    cfg.progress,
                    text_column=cfg.text_column,
                    drop_tags=cfg.drop_tags,
                )
            )
    summaries = [
        match_videos(replace(cfg, videos=p, out=out / "manifest" / p.name, support=support, side_dir=out / "parts"))
        for p in parts
    ]

    label_counts = merge_label_counts(Path(s["outputs"]["label_counts"]) for s in summaries)
    rejects = pa.concat_tables(
        read_table("match_rejects", s["outputs"]["rejects"])
        .select(["row", "video_id", "reason"])
        .append_column(
            "part", pa.array([p.name] * pq.ParquetFile(s["outputs"]["rejects"]).metadata.num_rows, pa.string())
        )
        for p, s in zip(parts, summaries)
    )
    rejects = rejects.take(pc.sort_indices(rejects, [("row", "ascending"), ("part", "ascending")]))
    counts_path, rejects_path, summary_path = (
        out / "label_counts.parquet",
        out / "rejects.parquet",
        out / "summary.json",
    )
    with output_set():  # the job's label counts, rejects and summary: all or none (each part committed its own)
        write_table("label_counts", label_counts, counts_path)
        write_table("match_rejects", rejects, rejects_path)

        reasons = Counter(r.split(" (")[0] for r in rejects.column("reason").to_pylist())
        summary = {
            **merge_match_summaries(summaries, label_counts, reasons, min_videos=cfg.min_videos, seed=cfg.seed),
            "parts": len(parts),
            "partition_checked": n_parts is not None,
            **({"text_column": cfg.text_column} if cfg.text_column is not None else {}),
            **({"keep_columns": list(cfg.keep_columns)} if cfg.keep_columns else {}),
            **drop_info,
            "outputs": {
                "manifest": str(out / "manifest"),
                "rejects": str(rejects_path),
                "label_counts": str(counts_path),
                "support": str(support),
                "parts": str(out / "parts"),
            },
        }
        write_json(summary, summary_path)
    return summary
