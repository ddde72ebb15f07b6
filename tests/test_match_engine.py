"""The DuckDB join of `weaksup match` against the numpy matcher it replaced (kept here as the reference).

``reference_match`` is the old algorithm (per-batch ``pc.index_in`` lookups, distinct
(row, tag) and (row, label) pairs by ``np.unique``, the label draw, the duplicate recount),
run in memory. The new path must give the same manifest, rejects, label counts and summary,
on the direct Parquet path (SQL normalisation) and on the staged path (Arrow reader).
(``benchmarks/match_bench.py`` compares against the library's own match.py at the last
commit with the numpy matcher, read from git, on 1M rows.)
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from weaksup.assembly.match import HashtagIndex, MatchConfig, MatchCountConfig, count_matches, load_index, match_videos
from weaksup.assembly.match_engine import NORMALIZE_SQL, VideosScan, direct_parquet, register_normalize_udf
from weaksup.assembly.videos import (
    candidate_columns,
    duplicate_rows,
    finish_rejects,
    iter_videos,
    normalize_tags,
    open_table,
    reject_null_rows,
)
from weaksup.errors import InputError
from weaksup.hashing import splitmix64, stable_hash64
from weaksup.tables import conform, load_schema

# ---- the reference: the numpy matcher as it was before the DuckDB engine ------------------------------


def _tag_hits(hashtags: pa.Array, index: HashtagIndex) -> tuple[np.ndarray, np.ndarray]:
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


def _labels_of_hits(rows: np.ndarray, tag_pos: np.ndarray, index: HashtagIndex) -> tuple[np.ndarray, np.ndarray]:
    n = index.counts[tag_pos]
    rows = np.repeat(rows, n)
    start = np.repeat(index.starts[tag_pos] - np.cumsum(n) + n, n) + np.arange(n.sum())
    labels = index.label_ids[start].astype(np.int64)
    key = rows * len(index) + labels
    key.sort()
    if len(key):
        key = key[np.concatenate([[True], key[1:] != key[:-1]])]
    return key // len(index), (key % len(index)).astype(np.int32)


def _tags_of_label(tag_lists: pa.Array, label_id: np.ndarray, index: HashtagIndex) -> pa.Array:
    flat = pc.list_flatten(tag_lists).to_numpy(zero_copy_only=False).astype(np.int64)
    parents = pc.list_parent_indices(tag_lists).to_numpy(zero_copy_only=False)
    want = np.asarray(label_id)[parents]
    start, count = index.starts[flat], index.counts[flat]
    ok = np.zeros(len(flat), bool)
    single = count == 1
    ok[single] = index.label_ids[start[single]] == want[single]
    for i in np.flatnonzero(~single):
        ok[i] = want[i] in index.label_ids[start[i] : start[i] + count[i]]
    n = np.bincount(parents[ok], minlength=len(label_id))
    offsets = np.concatenate([[0], np.cumsum(n)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), index.tags.take(pa.array(flat[ok], pa.int64())))


def _lists(rows: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, pa.Array]:
    first = np.flatnonzero(np.concatenate([[True], rows[1:] != rows[:-1]])) if len(rows) else np.empty(0, np.int64)
    offsets = np.append(first, len(rows)).astype(np.int32)
    return rows[first], pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.int32()))


def _reference_first_pass(videos: Path, index: HashtagIndex, batch_size: int, text_column: str | None) -> dict:
    """Old pass 1: match batch by batch, keep matched rows in memory, find rejects and duplicates."""
    null_tags = "null hashtags"
    if text_column is not None:
        tags_col, text_col = candidate_columns(open_table(videos), str(videos), text_column)
        null_tags = "null " + " and ".join(c for c in (tags_col, text_col) if c is not None)
    hashes, rejects, matched, unmatched = [], [], [], []
    n_read = 0
    vocabulary = index.tags if text_column is not None else None
    for batch in iter_videos(videos, batch_size=batch_size, text_column=text_column, vocabulary=vocabulary):
        row0, n_read = n_read, n_read + batch.num_rows
        vid, tags = batch.column("video_id"), batch.column("hashtags")
        rejected = reject_null_rows(vid, batch.column("uri"), tags, row0, rejects, tags_reason=null_tags)
        h = stable_hash64(vid, 0, "video_id")
        h[rejected] = 0
        hashes.append(h)
        hit_rows, hit_tags = _tag_hits(tags, index)
        keep = ~rejected[hit_rows]
        hit_rows, hit_tags = hit_rows[keep], hit_tags[keep]
        matched_rows, lists = _lists(*_labels_of_hits(hit_rows, hit_tags, index))
        _, tag_lists = _lists(hit_rows, hit_tags)
        free = np.ones(batch.num_rows, bool)
        free[matched_rows] = False
        unmatched.append(np.flatnonzero(free & ~rejected) + row0)
        take = pa.array(matched_rows)
        matched.append(
            pa.table(
                {
                    "row": matched_rows + row0,
                    "video_id": vid.take(take),
                    "uri": batch.column("uri").take(take),
                    "duration_s": batch.column("duration_s").take(take),
                    "hash": h[matched_rows],
                    "matched": lists,
                    "tags": tag_lists,
                }
            )
        )
    all_hashes = np.concatenate(hashes) if hashes else np.empty(0, np.uint64)
    duplicates = duplicate_rows(videos, all_hashes, batch_size)
    dup_idx = np.fromiter(duplicates, np.int64, len(duplicates))
    all_unmatched = np.concatenate(unmatched) if unmatched else np.empty(0, np.int64)
    rejects.extend(
        {"row": r, "video_id": v, "reason": "duplicate video_id", "first": f}
        for r, (v, f) in sorted(duplicates.items())
    )
    support = np.zeros(len(index), np.int64)
    for t in matched:
        ok = ~np.isin(t.column("row").to_numpy(), dup_idx)
        parents = pc.list_parent_indices(t.column("matched")).to_numpy()
        support += np.bincount(pc.list_flatten(t.column("matched")).to_numpy()[ok[parents]], minlength=len(index))
    return {
        "n_read": n_read,
        "support": support,
        "rejects": rejects,
        "matched": matched,
        "dup_idx": dup_idx,
        "n_unmatched": len(all_unmatched) - int(np.isin(all_unmatched, dup_idx).sum()),
    }


def _reference_manifest_part(t: pa.Table, kept: np.ndarray, seed: int, index: HashtagIndex) -> tuple[pa.Table, int]:
    """Old pass 2 on one batch of matched rows: kept labels, the (seed, video_id) draw, the audit tags."""
    lists = t.column("matched").combine_chunks()
    flat, parents = pc.list_flatten(lists).to_numpy(), pc.list_parent_indices(lists).to_numpy()
    ok = kept[flat]
    n_kept = np.bincount(parents[ok], minlength=t.num_rows)
    alive = n_kept > 0
    offsets = np.concatenate([[0], np.cumsum(n_kept)]).astype(np.int32)
    hashes = t.column("hash").to_numpy()
    mixed = splitmix64(hashes ^ splitmix64(np.full(len(hashes), seed, dtype=np.uint64)))
    pick = (mixed % np.maximum(n_kept, 1).astype(np.uint64)).astype(np.int64)
    label_id = flat[ok][offsets[:-1][alive] + pick[alive]] if alive.any() else np.empty(0, np.int32)
    sel, label_arr = pa.array(np.flatnonzero(alive)), pa.array(label_id, pa.int32())
    table = pa.table(
        {
            "video_id": t.column("video_id").take(sel),
            "uri": t.column("uri").take(sel),
            "label_id": label_arr,
            "label": pa.array(index.names, pa.string()).take(label_arr),
            "matched_label_ids": pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat[ok], pa.int32())).take(sel),
            "duration_s": t.column("duration_s").take(sel),
            "matched_hashtags": _tags_of_label(t.column("tags").combine_chunks().take(sel), label_id, index),
        }
    )
    return table, int((~alive).sum())


def reference_match(
    videos: Path,
    labels: Path,
    *,
    min_videos: int = 50,
    seed: int = 0,
    batch_size: int = 1 << 18,
    text_column: str | None = None,
    drop_tags: Path | None = None,
) -> dict:
    """The old match, in memory: {manifest, rejects, label_counts (tables as written), summary (no outputs)}."""
    index, drop_info = load_index(labels, drop_tags)
    first = _reference_first_pass(videos, index, batch_size, text_column)
    kept = first["support"] >= min_videos
    schema = load_schema("manifest")
    parts, n_dropped = [], 0
    for t in first["matched"]:
        t = t.filter(pa.array(~np.isin(t.column("row").to_numpy(), first["dup_idx"])))
        part, dropped = _reference_manifest_part(t, kept, seed, index)
        parts.append(conform(part, schema))
        n_dropped += dropped
    sink = pa.BufferOutputStream()  # through Parquet as the old writer did (list fields named "element")
    pq.write_table(pa.concat_tables(parts) if parts else schema.to_arrow().empty_table(), sink)
    manifest = pq.read_table(pa.BufferReader(sink.getvalue()))
    assigned = np.bincount(manifest.column("label_id").to_numpy(), minlength=len(index))
    rejects = finish_rejects(videos, first["rejects"])
    n_read, n_rej, n_unm = first["n_read"], len(rejects), first["n_unmatched"]
    summary = {
        "videos_read": n_read,
        "rejected": n_rej,
        "rejected_by_reason": dict(Counter(r["reason"].split(" (")[0] for r in rejects)),
        "unmatched": n_unm,
        "matched": n_read - n_rej - n_unm,
        "dropped_by_min_videos": n_dropped,
        "in_manifest": manifest.num_rows,
        "labels": len(index),
        "labels_kept": int(kept.sum()),
        "labels_dropped": int((~kept).sum()),
        "min_videos": min_videos,
        "seed": seed,
        "accounted": manifest.num_rows + n_dropped + n_unm + n_rej == n_read,
        **({"text_column": text_column} if text_column is not None else {}),
        **drop_info,
    }
    counts = conform(
        {
            "label_id": pa.array(np.arange(len(index)), pa.int32()),
            "label": pa.array(index.names, pa.string()),
            "matched_videos": pa.array(first["support"], pa.int64()),
            "assigned_videos": pa.array(assigned, pa.int64()),
            "kept": pa.array(kept),
        },
        load_schema("label_counts"),
    )
    return {"manifest": manifest, "rejects": rejects, "label_counts": counts, "summary": summary}


def new_match(videos: Path, labels: Path, out: Path, **kw) -> dict:
    """The library's match, read back in the reference's form."""
    summary = match_videos(MatchConfig(videos=videos, labels=labels, out=out, progress=False, **kw))
    stem = out.name[: -len(".parquet")]
    summary.pop("outputs")
    summary.pop("support", None)
    return {
        "manifest": pq.read_table(out),
        "rejects": pq.read_table(out.with_name(f"{stem}.rejects.parquet")).to_pylist(),
        "label_counts": pq.read_table(out.with_name(f"{stem}.label_counts.parquet")),
        "summary": summary,
    }


def assert_same(new: dict, old: dict) -> None:
    """Identical tables (values, types, order, schema metadata), rejects and summaries."""
    assert new["manifest"].schema.equals(old["manifest"].schema, check_metadata=True)
    assert new["manifest"].equals(old["manifest"]), "manifest differs"
    assert new["rejects"] == old["rejects"]
    assert new["label_counts"].equals(old["label_counts"])
    assert new["summary"] == old["summary"]


# ---- randomized tables --------------------------------------------------------------------------------

LABEL_TAGS = {  # several labels share a tag ("fishing", "dance"): collisions; non-Latin and accented tags
    "catching fish": ["catchfish", "catchingfish", "fishcatching", "fishing"],
    "fishing": ["fishing", "fish", "angeln"],
    "dancing": ["dancing", "dance", "baile", "跳舞", "tanzen", "танцы"],
    "ballet": ["ballet", "dance", "balletdancer"],
    "playing guitar": ["playingguitar", "guitar", "ギター"],
    "cafe work": ["café", "cafework", "straße"],
    "rare": ["rarelabeltag"],
}
NOISE = ["love", "tbt", "🔥", "", "!!!", "sunset", "tag1", "xii", None]


def labels_table(path: Path) -> Path:
    """A labels table written by hand: collisions and non-Latin hashtags."""
    from weaksup.tables import write_table

    names = list(LABEL_TAGS)
    write_table(
        "labels",
        {
            "label_id": pa.array(range(len(names)), pa.int32()),
            "label": names,
            "source": ["file"] * len(names),
            "source_id": [None] * len(names),
            "canonical": names,
            "aliases": [[] for _ in names],
            "hashtags": [LABEL_TAGS[n] for n in names],
        },
        path,
    )
    return path


def _variants(tag: str) -> list[str]:
    """Spellings of ``tag`` that normalise to it: case, #, punctuation, full width, NFD, ligatures."""
    import unicodedata

    out = [tag, tag.upper(), "#" + tag, tag.title(), f"{tag[:2]}-{tag[2:]}!", unicodedata.normalize("NFD", tag)]
    if tag.isascii():
        out.append("".join(chr(ord(c) + 0xFEE0) for c in tag))  # full width, NFKC folds it back
        out.append(tag.replace("fi", "\ufb01"))  # the fi ligature
    return out


def random_videos(n: int, seed: int) -> pa.Table:
    """Ids with repeats (duplicates, also of rejected rows), null ids/uris/tag lists, empty lists,
    null tags inside lists, every spelling of the index's tags and noise."""
    rng = np.random.default_rng(seed)
    pool = [v for name, tags in LABEL_TAGS.items() if name != "rare" for t in tags for v in _variants(t)] + NOISE
    weights = rng.random(len(pool)) ** 3
    weights /= weights.sum()
    ids = [None if rng.random() < 0.01 else f"v{k}" for k in rng.integers(0, int(n * 0.9), n)]
    uris = [None if rng.random() < 0.01 else f"u{i}.mp4" for i in range(n)]
    tags: list[list | None] = []
    for _ in range(n):
        r = rng.random()
        drawn = list(rng.choice(np.array(pool, object), rng.integers(1, 6), p=weights))
        tags.append(None if r < 0.02 else [] if r < 0.05 else drawn)
        if r > 0.995:  # label "rare": below most --min-videos
            tags[-1].append("#RareLabelTag")
    duration = [None if rng.random() < 0.1 else float(rng.uniform(1, 60)) for _ in range(n)]
    return pa.table(
        {
            "video_id": pa.array(ids, pa.string()),
            "uri": pa.array(uris, pa.string()),
            "hashtags": pa.array(tags, pa.list_(pa.string())),
            "duration_s": pa.array(duration, pa.float64()),
        }
    )


def _write(table: pa.Table, path: Path, kind: str) -> Path:
    """The table as a Parquet file (DuckDB reads it), a folder of it or JSON lines (staged through Arrow)."""
    if kind == "parquet":
        pq.write_table(table, path, row_group_size=700)
        return path
    if kind == "folder":
        path.mkdir()
        pq.write_table(table, path / "part-a.parquet", row_group_size=700)
        return path
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in table.to_pylist()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def labels(tmp_path_factory) -> Path:
    return labels_table(tmp_path_factory.mktemp("labels") / "labels.parquet")


@pytest.mark.parametrize(
    "kind, seed, min_videos, batch_size",
    [
        ("parquet", 0, 40, 1 << 18),
        ("parquet", 1, 1, 333),
        ("parquet", 2, 200, 1000),
        ("folder", 3, 40, 257),
        ("jsonl", 4, 40, 1 << 18),
    ],
)
def test_new_match_equals_the_old_numpy_matcher(tmp_path, labels, kind, seed, min_videos, batch_size):
    videos = _write(random_videos(3000, seed), tmp_path / f"v.{kind}", kind)
    assert (direct_parquet(videos, None) is not None) == (kind == "parquet")  # both ways in are covered
    kw = {"min_videos": min_videos, "seed": seed, "batch_size": batch_size}
    new = new_match(videos, labels, tmp_path / "m.parquet", **kw)
    old = reference_match(videos, labels, **kw)
    assert_same(new, old)
    s = new["summary"]
    assert s["accounted"] and s["rejected_by_reason"]["duplicate video_id"] > 50 and s["in_manifest"] > 1000
    assert set(s["rejected_by_reason"]) == {"null video_id", "null uri", "null hashtags", "duplicate video_id"}
    if min_videos == 40:
        assert 0 < s["labels_dropped"] < s["labels"]
    non_latin = {t for tags in new["manifest"].column("matched_hashtags").to_pylist() for t in tags if not t.isascii()}
    assert {"跳舞", "танцы", "ギター", "café"} <= non_latin
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging or temporary file left


def test_text_column_and_drop_tags_equal_the_old_matcher(tmp_path, labels):
    table = random_videos(1500, 7)
    rng = np.random.default_rng(7)
    words = [
        "a",
        "man",
        "catching",
        "the",
        "fish",
        "dance",
        "Ballet",
        "dancer",
        "playing",
        "guitar",
        "跳舞",
        "café",
        "!",
    ]
    captions = [
        None if rng.random() < 0.05 else " ".join(rng.choice(words, rng.integers(0, 8))) for _ in range(len(table))
    ]
    videos = tmp_path / "v.parquet"
    pq.write_table(table.append_column("caption", pa.array(captions, pa.string())), videos)
    drop = tmp_path / "drop.txt"
    drop.write_text("#Fishing\nnot-a-tag\nДанс\n", encoding="utf-8")
    for kw in ({"text_column": "caption"}, {"drop_tags": drop}, {"text_column": "caption", "drop_tags": drop}):
        new = new_match(videos, labels, tmp_path / "m.parquet", min_videos=20, **kw)
        assert_same(new, reference_match(videos, labels, min_videos=20, **kw))


def test_support_counts_equal_the_old_matcher(tmp_path, labels):
    videos = _write(random_videos(2000, 11), tmp_path / "v.parquet", "parquet")
    count_matches(MatchCountConfig(videos=videos, labels=labels, out=tmp_path / "s.parquet", progress=False))
    old = reference_match(videos, labels)
    assert (
        pq.read_table(tmp_path / "s.parquet").column("matched_videos").to_pylist()
        == old["label_counts"].column("matched_videos").to_pylist()
    )


def test_one_or_two_threads_give_the_same_files(tmp_path, labels, monkeypatch):
    videos = _write(random_videos(4000, 5), tmp_path / "v.parquet", "parquet")
    got = []
    for threads in ("1", "2"):
        monkeypatch.setenv("OMP_NUM_THREADS", threads)
        got.append(new_match(videos, labels, tmp_path / f"m{threads}.parquet", min_videos=10))
    assert_same(got[0], got[1])


# ---- the SQL normalisation and the choice of reader --------------------------------------------------------


def test_sql_normalisation_equals_normalize_tags():
    """ASCII tags by SQL, others by the Python function: the same tags as the Arrow path, on
    random strings over ASCII (controls, punctuation, CRLF), accents, combining marks, full-width
    forms, ligatures, CJK, Cyrillic, emoji, Turkish and German special cases."""
    rng = np.random.default_rng(0)
    alphabet = list("aZz09 _-#!.'\t\r\n\x00\x1f\x7f") + list("éÉ\u0301ßİıǅﬁＡｚ０跳舞танцыギター🔥²Ⅻ\u200b")
    ascii_only = [c for c in alphabet if c.isascii()]
    values = ["".join(rng.choice(ascii_only if i % 2 else alphabet, rng.integers(0, 9))) for i in range(20_000)]
    values += [None, "", "CatchingFish", "#CatchingFish", "ＣＡＴＣＨ-Fish!", "\r\n", "a\r\nb"]
    con = duckdb.connect()
    register_normalize_udf(con)
    got = con.sql(f"SELECT {NORMALIZE_SQL} AS n FROM (SELECT unnest($v) AS t)", params={"v": values}).fetchall()
    assert [g[0] for g in got] == normalize_tags(pa.array(values, pa.string())).to_pylist()


def test_which_tables_duckdb_reads_itself(tmp_path):
    table = random_videos(50, 0)
    pq.write_table(table, tmp_path / "v.parquet")
    assert direct_parquet(tmp_path / "v.parquet", None) == tmp_path / "v.parquet"
    assert direct_parquet(tmp_path / "v.parquet", "caption") is None  # phrases: the Arrow reader
    pq.write_table(table.set_column(0, "video_id", pa.array(range(50), pa.int64())), tmp_path / "ints.parquet")
    assert direct_parquet(tmp_path / "ints.parquet", None) is None  # ids cast to text by the Arrow reader
    pq.write_table(table.set_column(2, "hashtags", pa.array(["#a #b"] * 50)), tmp_path / "text.parquet")
    assert direct_parquet(tmp_path / "text.parquet", None) is None  # hashtags as text
    (tmp_path / "v.csv").write_text("video_id,uri,hashtags\na,b,#c\n")
    assert direct_parquet(tmp_path / "v.csv", None) is None


def test_a_failing_staged_read_leaves_nothing(tmp_path, labels):
    csv = tmp_path / "v.csv"
    csv.write_text("video_id,uri,hashtags,duration_s\na,a.mp4,#dance,3\nb,b.mp4,#ballet,three\n", encoding="utf-8")
    with pytest.raises(InputError, match="three"):
        match_videos(MatchConfig(videos=csv, labels=labels, out=tmp_path / "m.parquet", min_videos=1, progress=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.csv"]


def test_scan_of_an_empty_table(tmp_path, labels):
    videos = tmp_path / "v.parquet"
    pq.write_table(random_videos(10, 0).slice(0, 0), videos)
    index, _ = load_index(labels)
    with VideosScan(videos, index.tags, staging=tmp_path / "staged") as scan:
        keys, rejects = scan.join("null hashtags")
        assert scan.n_read == 0 and len(keys) == 0 and rejects == []
    new = new_match(videos, labels, tmp_path / "m.parquet", min_videos=1)
    assert new["manifest"].num_rows == 0 and new["summary"]["accounted"]
    assert_same(new, reference_match(videos, labels, min_videos=1))
