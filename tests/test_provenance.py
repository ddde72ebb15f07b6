"""Provenance columns (``match --keep-columns``: licence, uploader, url, ...) survive the stages
that rewrite the manifest: sample, splits (clips, materialised clips) and dedupe's cleaned
manifest and removed rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from test_dedupe import code_row, walk, write_codes

from weaksup.assembly.sample import SampleConfig, sample_manifest
from weaksup.assembly.splits import SplitsConfig, make_splits, materialize_clips
from weaksup.dedupe.dedupe import DedupeConfig, dedupe_manifest, output_paths
from weaksup.synth.video import write_test_video
from weaksup.tables import load_schema, write_table

EXTRA = ("licence", "uploader", "bytes")


def _licence(vid: str) -> str | None:
    return None if vid.endswith("3") else f"cc-by-{vid}"


def _manifest(path: Path, ids: list[str], uris: list[str] | None = None, durations: list[float] | None = None) -> Path:
    write_table(
        "manifest",
        {
            "video_id": ids,
            "uri": uris or [f"/v/{v}.mp4" for v in ids],
            "label_id": [i % 4 for i in range(len(ids))],
            "label": [f"label{i % 4}" for i in range(len(ids))],
            "matched_label_ids": [[i % 4] for i in range(len(ids))],
            "duration_s": durations or [float(1 + i % 6) for i in range(len(ids))],
            "licence": [_licence(v) for v in ids],
            "uploader": [f"user-{v}" for v in ids],
            "bytes": pa.array([1000 + i for i in range(len(ids))], pa.int64()),
        },
        path,
    )
    return path


def _assert_carried(table: pa.Table, schema: str, ids: list[str]) -> None:
    """The schema's columns first, then the extras, with each row's own values."""
    own = load_schema(schema).names
    names = table.column_names
    assert names[-len(EXTRA) :] == list(EXTRA), names
    assert [n for n in names if n in own] == names[: len([n for n in names if n in own])]  # schema columns first
    assert table.schema.field("bytes").type == pa.int64()
    row_of = {v: i for i, v in enumerate(ids)}
    for r in table.to_pylist():
        assert r["licence"] == _licence(r["video_id"])
        assert r["uploader"] == f"user-{r['video_id']}"
        assert r["bytes"] == 1000 + row_of[r["video_id"]]


def test_sample_keeps_extra_manifest_columns(tmp_path: Path) -> None:
    ids = [f"v{i:03d}" for i in range(80)]
    manifest = _manifest(tmp_path / "m.parquet", ids)
    for strategy in ("random", "sqrt"):
        out = tmp_path / f"{strategy}.parquet"
        sample_manifest(SampleConfig(manifest=manifest, strategy=strategy, out=out, sizes=(30,), seed=1))
        table = pq.read_table(out)
        assert table.num_rows == 30
        _assert_carried(table, "sample", ids)
    weighted = tmp_path / "weights.parquet"
    sample_manifest(SampleConfig(manifest=manifest, strategy="sqrt", out=weighted, weights_only=True))
    _assert_carried(pq.read_table(weighted), "sample", ids)


def test_splits_keep_extra_manifest_columns(tmp_path: Path) -> None:
    ids = [f"v{i:03d}" for i in range(40)]
    manifest = _manifest(tmp_path / "m.parquet", ids)
    out = tmp_path / "short.parquet"
    summary = make_splits(SplitsConfig(manifest=manifest, probe=None, kind="short", out=out))
    clips = pq.read_table(out)
    assert clips.num_rows == summary["selected"] > 0
    _assert_carried(clips, "clips", ids)


def test_materialized_clips_keep_extra_columns(tmp_path: Path) -> None:
    ids = ["a1", "a3"]
    files = [str(write_test_video(tmp_path / f"{v}.mp4", seconds=1.5, fps=8, width=64, height=48)) for v in ids]
    manifest = _manifest(tmp_path / "m.parquet", ids, uris=files, durations=[1.5, 1.5])
    make_splits(SplitsConfig(manifest=manifest, probe=None, kind="short", out=tmp_path / "clips.parquet"))
    summary = materialize_clips(tmp_path / "clips.parquet", tmp_path / "cut", short_side=32, workers=0, progress=False)
    assert summary["ok"] == 2
    cut = pq.read_table(summary["clips_table"])
    assert cut.column_names[-len(EXTRA) :] == list(EXTRA)
    assert {r["video_id"]: r["licence"] for r in cut.to_pylist()} == {"a1": "cc-by-a1", "a3": None}


def test_dedupe_keeps_extra_manifest_columns(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    target = walk(rng, 64)
    targets = write_codes(tmp_path / "targets.parquet", [code_row(rng, "t", target)])
    ids = ["copy3", "other1", "other2"]
    rows = [code_row(rng, "copy3", target.copy())] + [code_row(rng, v, walk(rng, 80)) for v in ids[1:]]
    sources = write_codes(tmp_path / "sources.parquet", rows)
    manifest = _manifest(tmp_path / "m.parquet", ids)
    out = tmp_path / "clean.parquet"
    summary = dedupe_manifest(
        DedupeConfig(
            manifest=manifest,
            targets=targets,
            source_codes=sources,
            out=out,
            report=tmp_path / "overlaps.parquet",
            progress=False,
        )
    )
    assert summary["removed"] == 1
    clean = pq.read_table(out)
    assert clean.column("video_id").to_pylist() == ["other1", "other2"]
    _assert_carried(clean, "manifest", ids)
    removed = pq.read_table(output_paths(out)[0])
    assert removed.column("video_id").to_pylist() == ["copy3"]
    assert removed.column("licence").to_pylist() == [None] and removed.column("uploader").to_pylist() == ["user-copy3"]
