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
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from weaksup.assembly.videos import iter_videos, open_table
from weaksup.hashing import _splitmix64, stable_hash64
from weaksup.tables import atomic_path, conform, load_schema, read_table, write_json, write_table


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
            from weaksup.errors import InputError

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


def match_batch(hashtags: pa.Array, index: HashtagIndex) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (row, label_id) pairs of one batch, sorted by row then label."""
    if isinstance(hashtags, pa.ChunkedArray):
        hashtags = hashtags.combine_chunks()
    flat = pc.list_flatten(hashtags)
    parents = pc.list_parent_indices(hashtags).to_numpy()
    pos = pc.index_in(flat, value_set=index.tags)
    hit = pos.is_valid().to_numpy(zero_copy_only=False)
    tag_pos = pos.to_numpy(zero_copy_only=False)[hit].astype(np.int64) if hit.any() else np.empty(0, np.int64)
    rows = parents[hit].astype(np.int64)
    n = index.counts[tag_pos]
    rows = np.repeat(rows, n)
    start = np.repeat(index.starts[tag_pos] - np.cumsum(n) + n, n) + np.arange(n.sum())
    labels = index.label_ids[start].astype(np.int64)
    key = rows * len(index) + labels
    key.sort()
    if len(key):
        key = key[np.concatenate([[True], key[1:] != key[:-1]])]
    return key // len(index), (key % len(index)).astype(np.int32)


def _draw(hashes: np.ndarray, seed: int, counts: np.ndarray) -> np.ndarray:
    """A uniform choice in [0, count) per video, a function of (seed, video_id) only."""
    mixed = _splitmix64(hashes ^ _splitmix64(np.full(len(hashes), seed, dtype=np.uint64)))
    return (mixed % np.maximum(counts, 1).astype(np.uint64)).astype(np.int64)


def _lists(rows: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, pa.Array]:
    """Group sorted (row, label) pairs into one list per matched row."""
    first = np.flatnonzero(np.concatenate([[True], rows[1:] != rows[:-1]])) if len(rows) else np.empty(0, np.int64)
    matched_rows = rows[first]
    offsets = np.append(first, len(rows)).astype(np.int32)
    return matched_rows, pa.ListArray.from_arrays(pa.array(offsets), pa.array(labels, pa.int32()))


def _progress(total: int | None, enabled: bool, desc: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(TextColumn(f"[bold]{desc}"), BarColumn(), MofNCompleteColumn(), disable=not enabled)


def match_videos(cfg: MatchConfig) -> dict:
    """Match videos against a label space and write manifest, rejects, label counts, summary."""
    out = Path(cfg.out)
    stem = out.name[: -len(".parquet")] if out.name.endswith(".parquet") else out.name
    rejects_path = out.with_name(f"{stem}.rejects.parquet")
    counts_path = out.with_name(f"{stem}.label_counts.parquet")
    summary_path = out.with_name(f"{stem}.summary.json")
    index = HashtagIndex.from_labels(Path(cfg.labels))
    n_labels = len(index)
    dataset = open_table(cfg.videos)
    total = dataset.count_rows() if str(cfg.videos).endswith((".parquet", ".pq")) or Path(cfg.videos).is_dir() else None

    out.parent.mkdir(parents=True, exist_ok=True)
    matched_tmp = out.with_name(f".{out.name}.matched.tmp-{os.getpid()}")
    matched_schema = pa.schema(
        [("row", pa.int64()), ("video_id", pa.string()), ("uri", pa.string()), ("duration_s", pa.float64()),
         ("hash", pa.uint64()), ("matched", pa.list_(pa.int32()))]
    )
    support = np.zeros(n_labels, np.int64)
    all_hashes = np.zeros(total or 0, np.uint64)  # one array, grown by doubling when the row count is unknown
    rejects: list[dict] = []
    n_read = n_unmatched = 0
    unmatched_rows: list[np.ndarray] = []
    try:
        with pq.ParquetWriter(matched_tmp, matched_schema, compression="none") as writer, _progress(total, cfg.progress, "match") as bar:
            task = bar.add_task("match", total=total)
            for batch in iter_videos(cfg.videos, batch_size=cfg.batch_size):
                n = batch.num_rows
                row0 = n_read
                n_read += n
                vid, uri, tags = batch.column("video_id"), batch.column("uri"), batch.column("hashtags")
                bad = {
                    "null video_id": vid.is_null().to_numpy(zero_copy_only=False),
                    "null uri": uri.is_null().to_numpy(zero_copy_only=False),
                    "null hashtags": tags.is_null().to_numpy(zero_copy_only=False),
                }
                rejected = np.zeros(n, bool)
                for reason, mask in bad.items():
                    new = mask & ~rejected
                    for i in np.flatnonzero(new).tolist():
                        rejects.append({"row": row0 + i, "video_id": vid[i].as_py(), "reason": reason})
                    rejected |= new
                hashes = stable_hash64(vid, 0, "video_id")
                hashes[rejected] = 0
                if len(all_hashes) < n_read:
                    all_hashes = np.concatenate([all_hashes, np.zeros(max(n_read, 2 * len(all_hashes)) - len(all_hashes), np.uint64)])
                all_hashes[row0:n_read] = hashes
                rows, labels = match_batch(tags, index)
                keep = ~rejected[rows]
                rows, labels = rows[keep], labels[keep]
                matched_rows, lists = _lists(rows, labels)
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
                        },
                        schema=matched_schema,
                    )
                )
                bar.advance(task, n)

        duplicate_rows = _duplicate_rows(cfg.videos, all_hashes[:n_read], cfg.batch_size)
        if duplicate_rows:
            dup_idx = np.fromiter(duplicate_rows, np.int64)
            all_unmatched = np.concatenate(unmatched_rows) if unmatched_rows else np.empty(0, np.int64)
            n_unmatched -= int(np.isin(all_unmatched, dup_idx).sum())
            rejects.extend(
                {"row": r, "video_id": v, "reason": f"duplicate video_id (first at row {first})"}
                for r, (v, first) in sorted(duplicate_rows.items())
            )
            support = _recount(matched_tmp, dup_idx, n_labels)
        del all_hashes, unmatched_rows

        kept = support >= cfg.min_videos
        assigned = np.zeros(n_labels, np.int64)
        n_dropped = n_manifest = 0
        names = pa.array(index.names, pa.string())
        schema = load_schema("manifest")
        tmp_out = atomic_path(out)
        dup_set = np.fromiter(duplicate_rows, np.int64) if duplicate_rows else None
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
                    }
                )
                writer.write_table(conform(table, schema))
        os.replace(tmp_out, out)
    finally:
        for p in (matched_tmp,):
            if p.exists():
                p.unlink()

    rejects.sort(key=lambda r: r["row"])
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
    write_json(summary, summary_path)
    return summary


def _duplicate_rows(videos: Path, hashes: np.ndarray, batch_size: int) -> dict[int, tuple[str, int]]:
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
    for batch in iter_videos(videos, batch_size=batch_size):
        ids = batch.column("video_id")
        for i in range(batch.num_rows):
            if row + i in wanted:
                v = ids[i].as_py()
                if v in first:
                    out[row + i] = (v, first[v])
                else:
                    first[v] = row + i
        row += batch.num_rows
    return out


def _recount(matched_tmp: Path, excluded_rows: np.ndarray, n_labels: int) -> np.ndarray:
    support = np.zeros(n_labels, np.int64)
    for batch in pq.ParquetFile(matched_tmp).iter_batches(columns=["row", "matched"]):
        lists = batch.column("matched")
        parents = pc.list_parent_indices(lists).to_numpy()
        ok = ~np.isin(batch.column("row").to_numpy(), excluded_rows)
        support += np.bincount(pc.list_flatten(lists).to_numpy()[ok[parents]], minlength=n_labels)
    return support
