"""`weaksup match`: web videos x label hashtags -> a labelled manifest, streamed.

At 65M videos the join must stream in bounded memory. Each record batch is matched
row-wise with vectorised Arrow/numpy kernels (hash lookup of every tag in the
hashtag index, then distinct (video, label) pairs per batch); nothing is exploded and
grouped over the whole corpus. Two passes over the data:

1. match every video, keep the matched ones in a temporary Parquet file, count each
   label's support (videos carrying at least one of its hashtags);
2. drop labels below ``min_videos`` (paper: 50), re-assess their videos against the
   labels they still match, and draw ONE label per video uniformly from what is left.

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
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from weaksup import uris
from weaksup.assembly.partition import PART_META_KEY, list_parts, read_part_label
from weaksup.assembly.videos import (
    candidate_columns,
    duplicate_rows,
    finish_rejects,
    iter_videos,
    open_table,
    reject_null_rows,
    require_columns,
)
from weaksup.errors import InputError
from weaksup.progress import count_progress
from weaksup.hashing import splitmix64, stable_hash64
from weaksup.labels.sources import read_hashtag_list
from weaksup.uris import check_input_file
from weaksup.tables import conform, load_schema, read_table, write_json, write_table
from weaksup.outputs import atomic_path, commit_output, output_set, require_local_output


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


def check_options(*, min_videos: int | None = None, batch_size: int | None = None) -> None:
    """Refuse, before any work, numeric options that make no sense (one line each)."""
    if min_videos is not None and min_videos < 0:
        raise InputError(f"--min-videos {min_videos}: must be 0 or more")
    if batch_size is not None and batch_size < 1:
        raise InputError(f"--batch-size {batch_size}: must be at least 1")


def tag_hits(hashtags: pa.Array, index: HashtagIndex) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (row, tag) pairs of one batch where a video's hashtag is a relevant hashtag;
    the tag as its position in ``index.tags``; sorted by row, then tag."""
    if isinstance(hashtags, pa.ChunkedArray):
        hashtags = hashtags.combine_chunks()
    flat = pc.list_flatten(hashtags)
    parents = pc.list_parent_indices(hashtags).to_numpy()
    pos = pc.index_in(flat, value_set=index.tags)
    hit = pos.is_valid().to_numpy(zero_copy_only=False)
    if not hit.any():
        return np.empty(0, np.int64), np.empty(0, np.int64)
    key = parents[hit].astype(np.int64) * len(index.tags) + pos.to_numpy(zero_copy_only=False)[hit].astype(np.int64)
    key = np.unique(key)
    return key // len(index.tags), key % len(index.tags)


def match_batch(hashtags: pa.Array, index: HashtagIndex) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (row, label_id) pairs of one batch, sorted by row then label."""
    return labels_of_hits(*tag_hits(hashtags, index), index)


def labels_of_hits(rows: np.ndarray, tag_pos: np.ndarray, index: HashtagIndex) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (row, label_id) pairs of (row, tag) hits, sorted by row then label."""
    n = index.counts[tag_pos]
    rows = np.repeat(rows, n)
    start = np.repeat(index.starts[tag_pos] - np.cumsum(n) + n, n) + np.arange(n.sum())
    labels = index.label_ids[start].astype(np.int64)
    key = rows * len(index) + labels
    key.sort()
    if len(key):
        key = key[np.concatenate([[True], key[1:] != key[:-1]])]
    return key // len(index), (key % len(index)).astype(np.int32)


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
    for i in np.flatnonzero(~single):
        ok[i] = want[i] in index.label_ids[start[i]: start[i] + count[i]]
    n = np.bincount(parents[ok], minlength=len(label_id))
    offsets = np.concatenate([[0], np.cumsum(n)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), index.tags.take(pa.array(flat[ok], pa.int64())))


def _draw(hashes: np.ndarray, seed: int, counts: np.ndarray) -> np.ndarray:
    """A uniform choice in [0, count) per video, a function of (seed, video_id) only."""
    mixed = splitmix64(hashes ^ splitmix64(np.full(len(hashes), seed, dtype=np.uint64)))
    return (mixed % np.maximum(counts, 1).astype(np.uint64)).astype(np.int64)


def _lists(rows: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, pa.Array]:
    """Group sorted (row, label) pairs into one list per matched row."""
    first = np.flatnonzero(np.concatenate([[True], rows[1:] != rows[:-1]])) if len(rows) else np.empty(0, np.int64)
    matched_rows = rows[first]
    offsets = np.append(first, len(rows)).astype(np.int32)
    return matched_rows, pa.ListArray.from_arrays(pa.array(offsets), pa.array(labels, pa.int32()))


@dataclass
class _FirstPass:
    """What pass 1 learns about one videos table: support after duplicate removal, rejects, accounting."""

    n_read: int
    support: np.ndarray
    rejects: list[dict]
    n_unmatched: int
    duplicate_rows: dict[int, tuple[str, int]]


def _first_pass(
    videos: str | Path, index: HashtagIndex, matched_tmp: Path, batch_size: int, progress: bool, text_column: str | None = None
) -> _FirstPass:
    """Match every row, write the matched ones to ``matched_tmp``, count support, find rejects and duplicates."""
    n_labels = len(index)
    dataset = open_table(videos)
    total = dataset.count_rows() if str(videos).endswith((".parquet", ".pq")) or Path(videos).is_dir() else None
    matched_schema = pa.schema(
        [("row", pa.int64()), ("video_id", pa.string()), ("uri", pa.string()), ("duration_s", pa.float64()),
         ("hash", pa.uint64()), ("matched", pa.list_(pa.int32())), ("tags", pa.list_(pa.int32()))]
    )
    null_tags = "null hashtags"
    if text_column is not None:  # the reason names the columns that were all null: "null hashtags and caption"
        tags_col, text_col = candidate_columns(dataset, str(videos), text_column)
        null_tags = "null " + " and ".join(c for c in (tags_col, text_col) if c is not None)
    support = np.zeros(n_labels, np.int64)
    all_hashes = np.zeros(total or 0, np.uint64)  # one array, grown by doubling when the row count is unknown
    rejects: list[dict] = []
    n_read = n_unmatched = 0
    unmatched_rows: list[np.ndarray] = []
    with pq.ParquetWriter(matched_tmp, matched_schema, compression="none") as writer, count_progress(progress, "match") as bar:
        task = bar.add_task("match", total=total)
        vocabulary = index.tags if text_column is not None else None  # phrases not in the index are dropped early
        for batch in iter_videos(videos, batch_size=batch_size, text_column=text_column, vocabulary=vocabulary):
            n = batch.num_rows
            row0 = n_read
            n_read += n
            vid, uri, tags = batch.column("video_id"), batch.column("uri"), batch.column("hashtags")
            rejected = reject_null_rows(vid, uri, tags, row0, rejects, tags_reason=null_tags)
            hashes = stable_hash64(vid, 0, "video_id")
            hashes[rejected] = 0
            if len(all_hashes) < n_read:
                all_hashes = np.concatenate([all_hashes, np.zeros(max(n_read, 2 * len(all_hashes)) - len(all_hashes), np.uint64)])
            all_hashes[row0:n_read] = hashes
            hit_rows, hit_tags = tag_hits(tags, index)
            keep = ~rejected[hit_rows]
            hit_rows, hit_tags = hit_rows[keep], hit_tags[keep]
            rows, labels = labels_of_hits(hit_rows, hit_tags, index)
            matched_rows, lists = _lists(rows, labels)
            _, tag_lists = _lists(hit_rows, hit_tags.astype(np.int32))  # the same rows: every hit has a label
            support += np.bincount(labels, minlength=n_labels)
            unmatched = np.ones(n, bool)
            unmatched[matched_rows] = False
            unmatched &= ~rejected
            n_unmatched += int(unmatched.sum())
            unmatched_rows.append(np.flatnonzero(unmatched) + row0)
            take = pa.array(matched_rows)
            writer.write_table(
                pa.table(
                    {
                        "row": pa.array(matched_rows + row0, pa.int64()),
                        "video_id": vid.take(take),
                        "uri": uri.take(take),
                        "duration_s": batch.column("duration_s").take(take),
                        "hash": pa.array(hashes[matched_rows], pa.uint64()),
                        "matched": lists,
                        "tags": tag_lists,
                    },
                    schema=matched_schema,
                )
            )
            bar.advance(task, n)

    duplicates = duplicate_rows(videos, all_hashes[:n_read], batch_size)
    if duplicates:
        dup_idx = np.fromiter(duplicates, np.int64)
        all_unmatched = np.concatenate(unmatched_rows) if unmatched_rows else np.empty(0, np.int64)
        n_unmatched -= int(np.isin(all_unmatched, dup_idx).sum())
        rejects.extend(
            {"row": r, "video_id": v, "reason": "duplicate video_id", "first": first}
            for r, (v, first) in sorted(duplicates.items())
        )
        support = _recount(matched_tmp, dup_idx, n_labels)
    return _FirstPass(n_read, support, rejects, n_unmatched, duplicates)


def _side_paths(cfg: MatchConfig) -> tuple[Path, Path, Path]:
    """Rejects, label counts and summary paths: beside the manifest, or in ``cfg.side_dir``."""
    out = Path(cfg.out)
    stem = out.name[: -len(".parquet")] if out.name.endswith(".parquet") else out.name
    folder = Path(cfg.side_dir) if cfg.side_dir is not None else out.parent
    return (folder / f"{stem}.rejects.parquet", folder / f"{stem}.label_counts.parquet", folder / f"{stem}.summary.json")


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
    global_support = (
        read_support(Path(cfg.support), index, cfg.videos, text_column=cfg.text_column) if cfg.support is not None else None
    )

    out.parent.mkdir(parents=True, exist_ok=True)
    matched_tmp = atomic_path(out.with_name(out.name + ".matched"))
    tmp_out: Path | None = None
    try:
        first = _first_pass(cfg.videos, index, matched_tmp, cfg.batch_size, cfg.progress, cfg.text_column)
        n_read, support, rejects, n_unmatched, duplicates = (
            first.n_read, first.support, first.rejects, first.n_unmatched, first.duplicate_rows
        )

        kept = (global_support if global_support is not None else support) >= cfg.min_videos
        assigned = np.zeros(n_labels, np.int64)
        n_dropped = n_manifest = 0
        names = pa.array(index.names, pa.string())
        schema = load_schema("manifest")
        tmp_out = atomic_path(out)
        dup_set = np.fromiter(duplicates, np.int64) if duplicates else None
        with pq.ParquetWriter(tmp_out, schema.to_arrow(), compression="zstd") as writer:
            for batch in pq.ParquetFile(matched_tmp).iter_batches(batch_size=cfg.batch_size):
                if dup_set is not None:
                    batch = batch.filter(pa.array(~np.isin(batch.column("row").to_numpy(), dup_set)))
                lists = batch.column("matched")
                flat = pc.list_flatten(lists).to_numpy()
                parents = pc.list_parent_indices(lists).to_numpy()
                ok = kept[flat]
                n_kept = np.bincount(parents[ok], minlength=batch.num_rows)
                alive = n_kept > 0
                n_dropped += int((~alive).sum())
                new_offsets = np.concatenate([[0], np.cumsum(n_kept)]).astype(np.int32)
                kept_lists = pa.ListArray.from_arrays(pa.array(new_offsets), pa.array(flat[ok], pa.int32()))
                pick = _draw(batch.column("hash").to_numpy(), cfg.seed, n_kept)
                label_id = flat[ok][new_offsets[:-1][alive] + pick[alive]] if alive.any() else np.empty(0, np.int32)
                assigned += np.bincount(label_id, minlength=n_labels)
                n_manifest += int(alive.sum())
                sel = pa.array(np.flatnonzero(alive))
                label_arr = pa.array(label_id, pa.int32())
                table = pa.table(
                    {
                        "video_id": batch.column("video_id").take(sel),
                        "uri": batch.column("uri").take(sel),
                        "label_id": label_arr,
                        "label": names.take(label_arr),
                        "matched_label_ids": kept_lists.take(sel),
                        "duration_s": batch.column("duration_s").take(sel),
                        "matched_hashtags": tags_of_label(batch.column("tags").take(sel), label_id, index),
                    }
                )
                writer.write_table(conform(table, schema))
        commit_output(tmp_out, out)
    except BaseException:
        if tmp_out is not None and tmp_out.exists():
            tmp_out.unlink()
        raise
    finally:
        if matched_tmp.exists():
            matched_tmp.unlink()

    rejects = finish_rejects(cfg.videos, rejects)
    write_table("match_rejects", pa.Table.from_pylist(rejects, schema=load_schema("match_rejects").to_arrow()), rejects_path)
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
    summary.update(drop_info)
    write_json(summary, summary_path)
    return summary


def _recount(matched_tmp: Path, excluded_rows: np.ndarray, n_labels: int) -> np.ndarray:
    support = np.zeros(n_labels, np.int64)
    for batch in pq.ParquetFile(matched_tmp).iter_batches(columns=["row", "matched"]):
        lists = batch.column("matched")
        parents = pc.list_parent_indices(lists).to_numpy()
        ok = ~np.isin(batch.column("row").to_numpy(), excluded_rows)
        support += np.bincount(pc.list_flatten(lists).to_numpy()[ok[parents]], minlength=n_labels)
    return support


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
    matched_tmp = atomic_path(out.with_name(out.name + ".matched"))
    try:
        first = _first_pass(videos, index, matched_tmp, cfg.batch_size, cfg.progress, cfg.text_column)
    finally:
        if matched_tmp.exists():
            matched_tmp.unlink()
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
        raise InputError(f"{where}: {what} of partitions into different numbers of parts ({', '.join(map(str, totals))})")
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
            raise InputError(f"{f}: support counted against another label space than --labels "
                             "(other labels, --drop-tags or --text-column)")
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
            count_matches(MatchCountConfig(p, Path(cfg.labels), support / p.name, cfg.batch_size, cfg.progress,
                                           text_column=cfg.text_column, drop_tags=cfg.drop_tags))
    summaries = [
        match_videos(replace(cfg, videos=p, out=out / "manifest" / p.name, support=support, side_dir=out / "parts"))
        for p in parts
    ]

    part_counts = [read_table("label_counts", s["outputs"]["label_counts"]) for s in summaries]
    first = part_counts[0]
    label_counts = {
        "label_id": first.column("label_id"),
        "label": first.column("label"),
        "matched_videos": pa.array(sum(t.column("matched_videos").to_numpy() for t in part_counts), pa.int64()),
        "assigned_videos": pa.array(sum(t.column("assigned_videos").to_numpy() for t in part_counts), pa.int64()),
        "kept": first.column("kept"),  # decided by the summed support: the same in every part
    }
    rejects = pa.concat_tables(
        read_table("match_rejects", s["outputs"]["rejects"]).select(["row", "video_id", "reason"]).append_column(
            "part", pa.array([p.name] * pq.ParquetFile(s["outputs"]["rejects"]).metadata.num_rows, pa.string()))
        for p, s in zip(parts, summaries)
    )
    rejects = rejects.take(pc.sort_indices(rejects, [("row", "ascending"), ("part", "ascending")]))
    counts_path, rejects_path, summary_path = out / "label_counts.parquet", out / "rejects.parquet", out / "summary.json"
    with output_set():  # the job's label counts, rejects and summary: all or none (each part committed its own)
        write_table("label_counts", label_counts, counts_path)
        write_table("match_rejects", rejects, rejects_path)

        total = lambda key: sum(s[key] for s in summaries)  # noqa: E731
        reasons = Counter(r.split(" (")[0] for r in rejects.column("reason").to_pylist())
        kept = np.asarray(label_counts["kept"].to_numpy(zero_copy_only=False), bool)
        summary = {
            "videos_read": total("videos_read"),
            "rejected": total("rejected"),
            "rejected_by_reason": dict(reasons),
            "unmatched": total("unmatched"),
            "matched": total("matched"),
            "dropped_by_min_videos": total("dropped_by_min_videos"),
            "in_manifest": total("in_manifest"),
            "labels": len(index),
            "labels_kept": int(kept.sum()),
            "labels_dropped": int((~kept).sum()),
            "min_videos": cfg.min_videos,
            "seed": cfg.seed,
            "accounted": all(s["accounted"] for s in summaries)
            and total("in_manifest") + total("dropped_by_min_videos") + total("unmatched") + total("rejected") == total("videos_read"),
            "parts": len(parts),
            "partition_checked": n_parts is not None,
            **({"text_column": cfg.text_column} if cfg.text_column is not None else {}),
            **drop_info,
            "outputs": {"manifest": str(out / "manifest"), "rejects": str(rejects_path), "label_counts": str(counts_path),
                        "support": str(support), "parts": str(out / "parts")},
        }
        write_json(summary, summary_path)
    return summary
