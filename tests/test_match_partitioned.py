"""Partitioned match: parts by video-id hash, per-part support counts summed, the same result as one match."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import assert_input_error
from typer.testing import CliRunner

from weaksup.assembly.match import MatchConfig, match_partitioned, match_videos
from weaksup.assembly.partition import PartitionConfig, part_of, partition_videos
from weaksup.cli.main import app
from weaksup.labels.build import BuildLabelsConfig, build_labels
from weaksup.synth.metadata import SynthMetadataConfig, synth_metadata

runner = CliRunner()
LABELS = ["catching fish", "dribbling basketball", "playing guitar", "riding horse", "baking bread"]
TAGS = ["catchfish", "dribblingbasketball", "playguitar", "ridehorse", "bakingbread"]
SUMMARY_KEYS = (
    "videos_read",
    "rejected",
    "rejected_by_reason",
    "unmatched",
    "matched",
    "dropped_by_min_videos",
    "in_manifest",
    "labels",
    "labels_kept",
    "labels_dropped",
    "min_videos",
    "seed",
    "accounted",
)


@pytest.fixture(scope="module")
def labels(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("labels")
    (d / "labels.txt").write_text("".join(f"{x}\n" for x in LABELS), encoding="utf-8")
    build_labels(BuildLabelsConfig(sources=("file",), labels_file=d / "labels.txt", out=d / "labels.parquet"))
    return d / "labels.parquet"


def _write(path: Path, rows: list[tuple]) -> Path:
    pq.write_table(
        pa.table(
            {
                "video_id": pa.array([r[0] for r in rows], pa.string()),
                "uri": pa.array([r[1] for r in rows], pa.string()),
                "hashtags": pa.array([r[2] for r in rows], pa.list_(pa.string())),
                "duration_s": pa.array([float(i) for i in range(len(rows))], pa.float64()),
            }
        ),
        path,
        row_group_size=13,  # several row groups: batches cross them
    )
    return path


def _hand_rows() -> list[tuple]:
    """Labels straddling min_videos=10, duplicates (of matched, unmatched and rejected rows), null rows."""
    rng = np.random.default_rng(5)
    per_label = [30, 10, 9, 11, 3]  # kept, exactly at the threshold, one short, just over, far under
    rows: list[tuple] = []
    for label, n in enumerate(per_label):
        rows += [(f"l{label}-{i}", f"u{label}-{i}", [TAGS[label], "tbt"]) for i in range(n)]
    rows += [(f"multi{i}", f"m{i}", [TAGS[2], TAGS[4]]) for i in range(2)]  # 2 + 4 short: re-assessed
    rows += [(f"both{i}", f"b{i}", [TAGS[0], TAGS[3]]) for i in range(4)]
    rows += [(f"none{i}", f"n{i}", ["love"]) for i in range(8)]
    rows += [
        (None, "nullid", [TAGS[0]]),
        ("nouri", None, [TAGS[0]]),
        ("notags", "nt", None),
        ("empty", "e", []),
        ("l0-1", "dup-uri", [TAGS[1]]),  # duplicate of a matched video: must not add support to label 1
        ("none3", "dup2", [TAGS[1]]),  # duplicate of an unmatched video
        ("nouri", "second", [TAGS[3]]),  # the first "nouri" was rejected: this one counts
        ("l1-0", "dup3", [TAGS[1]]),  # a duplicate at the threshold label must not push it over
    ]
    normal = len(rows) - 8
    return [rows[i] for i in rng.permutation(normal)] + rows[normal:]  # duplicates after their first copies


def _canon(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: (r["video_id"] is None, r["video_id"] or "", str(r)))


def _whole(tmp: Path, videos: Path, labels: Path, min_videos: int) -> tuple[dict, Path]:
    out = tmp / "whole" / "manifest.parquet"
    summary = match_videos(MatchConfig(videos=videos, labels=labels, out=out, min_videos=min_videos, progress=False))
    return summary, out


def _assert_same(tmp: Path, videos: Path, labels: Path, parts: int, min_videos: int, batch_size: int = 1 << 18) -> dict:
    whole_summary, whole_out = _whole(tmp, videos, labels, min_videos)
    part_dir, out = tmp / f"parts{parts}", tmp / f"out{parts}"
    p = partition_videos(
        PartitionConfig(videos=videos, out=part_dir, parts=parts, batch_size=batch_size, progress=False)
    )
    assert p["rows"] == whole_summary["videos_read"] and p["accounted"]
    summary = match_partitioned(
        MatchConfig(
            videos=part_dir, labels=labels, out=out, min_videos=min_videos, batch_size=batch_size, progress=False
        )
    )
    manifest = pq.read_table(out / "manifest")  # the folder of manifest parts read as one dataset
    assert len(list((out / "manifest").glob("part-*.parquet"))) == parts
    assert _canon(manifest) == _canon(pq.read_table(whole_out))
    assert (
        pq.read_table(out / "label_counts.parquet").to_pylist()
        == pq.read_table(whole_out.with_name("manifest.label_counts.parquet")).to_pylist()
    )
    rejects = pq.read_table(out / "rejects.parquet").select(["row", "video_id", "reason"]).to_pylist()
    assert rejects == pq.read_table(whole_out.with_name("manifest.rejects.parquet")).to_pylist()
    assert {k: summary[k] for k in SUMMARY_KEYS} == {k: whole_summary[k] for k in SUMMARY_KEYS}
    assert summary["accounted"] and summary["parts"] == parts and summary["partition_checked"]
    assert json.loads((out / "summary.json").read_text())["in_manifest"] == whole_summary["in_manifest"]
    return summary


@pytest.mark.parametrize("parts", [1, 3, 7])
def test_partitioned_match_equals_whole_match_hand_made(tmp_path, labels, parts):
    videos = _write(tmp_path / "v.parquet", _hand_rows())
    summary = _assert_same(tmp_path, videos, labels, parts, min_videos=10, batch_size=16)
    counts = pq.read_table(tmp_path / f"out{parts}" / "label_counts.parquet").to_pylist()
    # 30+4 | 10 (the duplicates add nothing) | 9+2 | 11+4+1 | 3+2
    assert [c["matched_videos"] for c in counts] == [34, 10, 11, 16, 5]
    assert [c["kept"] for c in counts] == [True, True, True, True, False]
    assert summary["rejected_by_reason"] == {
        "null video_id": 1,
        "null uri": 1,
        "null hashtags": 1,
        "duplicate video_id": 3,
    }


@pytest.mark.parametrize("parts", [1, 3, 7])
def test_partitioned_match_equals_whole_match_synthetic(tmp_path, parts):
    videos = tmp_path / "v.parquet"
    synth_metadata(SynthMetadataConfig(videos=3000, out=videos, seed=parts))
    table = pq.read_table(videos)
    extra = table.slice(0, 200)  # duplicates with other uris, appended after their first occurrences
    extra = extra.set_column(1, table.schema.field("uri"), pa.array([f"copy{i}" for i in range(200)], pa.string()))
    pq.write_table(pa.concat_tables([table, extra]), videos)
    labels = tmp_path / "k400.parquet"
    build_labels(BuildLabelsConfig(sources=("kinetics400",), out=labels))
    summary = _assert_same(tmp_path, videos, labels, parts, min_videos=15, batch_size=500)
    assert summary["rejected_by_reason"]["duplicate video_id"] == 200
    assert 0 < summary["labels_kept"] < summary["labels"]


def test_label_kept_only_thanks_to_other_parts(tmp_path, labels):
    rows = [(f"g{i}", f"u{i}", [TAGS[2]]) for i in range(12)] + [(f"z{i}", f"z{i}", ["love"]) for i in range(5)]
    videos = _write(tmp_path / "v.parquet", rows)
    part_dir = tmp_path / "parts"
    assert (
        runner.invoke(
            app, ["partition-videos", "--videos", str(videos), "--parts", "5", "--out", str(part_dir)]
        ).exit_code
        == 0
    )
    parts = sorted(part_dir.glob("part-*.parquet"))
    assert len(parts) == 5
    # the distributed flow, one job per part: phase 1 everywhere, then phase 2 with the summed support
    for p in parts:
        r = runner.invoke(
            app,
            ["match-count", "--videos", str(p), "--labels", str(labels), "--out", str(tmp_path / "counts" / p.name)],
        )
        assert r.exit_code == 0, r.output
    manifests, local_only = [], []
    for p in parts:
        out = tmp_path / "manifests" / p.name
        r = runner.invoke(
            app,
            [
                "match",
                "--videos",
                str(p),
                "--labels",
                str(labels),
                "--out",
                str(out),
                "--min-videos",
                "12",
                "--support",
                str(tmp_path / "counts"),
            ],
        )
        assert r.exit_code == 0, r.output
        manifests.append(pq.read_table(out))
        counts = pq.read_table(out.with_name(f"{p.stem}.label_counts.parquet")).to_pylist()
        assert counts[2]["kept"] and counts[2]["matched_videos"] < 12  # local support, global decision
        local = match_videos(
            MatchConfig(videos=p, labels=labels, out=tmp_path / "local" / p.name, min_videos=12, progress=False)
        )
        local_only.append(local["in_manifest"])
    merged = pa.concat_tables(manifests)
    assert sorted(merged.column("video_id").to_pylist()) == sorted(f"g{i}" for i in range(12))
    assert set(merged.column("label").to_pylist()) == {"playing guitar"}
    assert sum(local_only) == 0  # without the global support every part drops the label
    # the one-process convenience reuses phase-1 counts given with --support
    r = runner.invoke(
        app,
        [
            "match",
            "--partitioned",
            "--videos",
            str(part_dir),
            "--labels",
            str(labels),
            "--out",
            str(tmp_path / "all"),
            "--min-videos",
            "12",
            "--support",
            str(tmp_path / "counts"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "all" / "support").exists()
    assert _canon(pq.read_table(tmp_path / "all" / "manifest")) == _canon(merged)


def test_partitioning_is_stable_and_accounts_for_every_row(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"vid{i}" for i in rng.integers(0, 400, 1000)] + [None] * 5  # many repeated ids, and null ids
    rows = [(v, f"u{i}", ["x"]) for i, v in enumerate(ids)]
    a = partition_videos(
        PartitionConfig(
            videos=_write(tmp_path / "a.parquet", rows),
            out=tmp_path / "A",
            parts=7,
            batch_size=64,
            row_group_rows=50,
            progress=False,
        )
    )
    shuffled = [rows[i] for i in rng.permutation(len(rows))]
    partition_videos(
        PartitionConfig(
            videos=_write(tmp_path / "b.parquet", shuffled),
            out=tmp_path / "B",
            parts=7,
            batch_size=1000,
            progress=False,
        )
    )
    assert a["rows"] == len(rows) and a["accounted"]
    meta = json.loads((tmp_path / "A" / "_partition.json").read_text())
    assert sum(meta["rows_per_part"]) == len(rows) and meta["parts"] == 7
    seen_rows: list[int] = []
    for i in range(7):
        pa_, pb = (
            pq.read_table(tmp_path / "A" / f"part-{i:05d}.parquet"),
            pq.read_table(tmp_path / "B" / f"part-{i:05d}.parquet"),
        )
        ids_a = pa_.column("video_id")
        assert np.all(part_of(ids_a, 7) == i)  # every row in the part its id hashes to
        assert set(ids_a.to_pylist()) == set(pb.column("video_id").to_pylist())  # same ids, whatever the order
        src = pa_.column("source_row").to_numpy()
        assert np.all(np.diff(src) > 0)  # input order kept inside a part
        assert [rows[s][0] for s in src] == ids_a.to_pylist()
        seen_rows += src.tolist()
    assert sorted(seen_rows) == list(range(len(rows)))  # every input row exactly once
    assert part_of(["vid1", "vid1", "vid2"], 7)[0] == part_of(["vid1"], 7)[0]
    assert part_of(pa.array([12], pa.int64()), 7)[0] == part_of(["12"], 7)[0]  # ints as their decimal string


def test_csv_text_hashtags_and_plain_match_of_the_part_folder(tmp_path, labels):
    lines = ["video_id,uri,hashtags"] + [
        f'{i % 25},u{i}.mp4,"#CatchFish #tbt {"#PlayGuitar" if i % 3 else ""}"' for i in range(60)
    ]
    lines += ["99,,#catchfish", ",x.mp4,#catchfish"]
    csv = tmp_path / "v.csv"
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _assert_same(tmp_path, csv, labels, 3, min_videos=5, batch_size=8)
    whole_rejects = pq.read_table(tmp_path / "whole" / "manifest.rejects.parquet").to_pylist()
    plain = tmp_path / "plain" / "m.parquet"
    match_videos(MatchConfig(videos=tmp_path / "parts3", labels=labels, out=plain, min_videos=5, progress=False))
    assert pq.read_table(plain.with_name("m.rejects.parquet")).to_pylist() == whole_rejects
    assert _canon(pq.read_table(plain)) == _canon(pq.read_table(tmp_path / "whole" / "manifest.parquet"))


def test_bad_inputs_exit_2_with_one_line(tmp_path, labels):
    out = str(tmp_path / "out")
    r = runner.invoke(
        app, ["match", "--partitioned", "--videos", str(tmp_path / "nope"), "--labels", str(labels), "--out", out]
    )
    assert_input_error(r, "nope", "folder not found")
    empty = tmp_path / "empty"
    empty.mkdir()
    r = runner.invoke(app, ["match", "--partitioned", "--videos", str(empty), "--labels", str(labels), "--out", out])
    assert_input_error(r, "empty", "no part-*.parquet")

    videos = _write(tmp_path / "v.parquet", [(f"v{i}", f"u{i}", [TAGS[i % 5]]) for i in range(40)])
    parts = tmp_path / "parts"
    assert (
        runner.invoke(app, ["partition-videos", "--videos", str(videos), "--parts", "3", "--out", str(parts)]).exit_code
        == 0
    )
    good = pq.read_table(parts / "part-00001.parquet")
    pq.write_table(good.drop_columns(["uri"]), parts / "part-00001.parquet")
    r = runner.invoke(app, ["match", "--partitioned", "--videos", str(parts), "--labels", str(labels), "--out", out])
    assert_input_error(r, "part-00001.parquet", "missing column 'uri'")
    assert not (tmp_path / "out" / "summary.json").exists()
    pq.write_table(good, parts / "part-00001.parquet")

    # a support folder missing a part, or counted against another label space, is refused
    counts = tmp_path / "counts"
    for p in sorted(parts.glob("part-*.parquet"))[:2]:
        assert (
            runner.invoke(
                app, ["match-count", "--videos", str(p), "--labels", str(labels), "--out", str(counts / p.name)]
            ).exit_code
            == 0
        )
    args = [
        "match",
        "--videos",
        str(parts / "part-00000.parquet"),
        "--labels",
        str(labels),
        "--out",
        str(tmp_path / "m.parquet"),
    ]
    assert_input_error(runner.invoke(app, args + ["--support", str(counts)]), "counts", "missing part(s) 2")
    assert_input_error(runner.invoke(app, args + ["--support", str(tmp_path / "nocounts")]), "nocounts", "not found")
    (tmp_path / "other.txt").write_text("catching fish\nswimming\n", encoding="utf-8")
    other = tmp_path / "other.parquet"
    build_labels(BuildLabelsConfig(sources=("file",), labels_file=tmp_path / "other.txt", out=other))
    args_other = [
        "match",
        "--videos",
        str(parts / "part-00000.parquet"),
        "--labels",
        str(other),
        "--out",
        str(tmp_path / "m.parquet"),
    ]
    assert_input_error(
        runner.invoke(app, args_other + ["--support", str(counts / "part-00000.parquet")]), "another label space"
    )
    assert not (tmp_path / "m.parquet").exists()

    r = runner.invoke(
        app, ["partition-videos", "--videos", str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "p2")]
    )
    assert_input_error(r, "missing.parquet", "file not found")
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"video_id": ["a"], "hashtags": [["x"]]}), bad)
    r = runner.invoke(app, ["partition-videos", "--videos", str(bad), "--out", str(tmp_path / "p3")])
    assert_input_error(r, "bad.parquet", "missing column 'uri'")
    assert not (tmp_path / "p3").exists()
    r = runner.invoke(app, ["partition-videos", "--videos", str(videos), "--out", str(videos)])
    assert_input_error(r, "v.parquet", "not an earlier partition-videos folder")


def test_partitioned_match_keeps_columns_like_the_whole_match(tmp_path, labels):
    rows = _hand_rows()
    videos = _write(tmp_path / "v.parquet", rows)
    table = pq.read_table(videos)
    n = table.num_rows
    table = table.append_column("licence", pa.array([None if i % 5 == 0 else f"CC-BY-{i}" for i in range(n)]))
    table = table.append_column("bytes", pa.array(range(n), pa.int64()))
    pq.write_table(table, videos, row_group_size=13)
    keep = ("licence", "bytes")
    whole = tmp_path / "whole.parquet"
    match_videos(MatchConfig(videos=videos, labels=labels, out=whole, min_videos=10, keep_columns=keep, progress=False))
    parts, out = tmp_path / "parts", tmp_path / "out"
    partition_videos(PartitionConfig(videos=videos, out=parts, parts=3, batch_size=16, progress=False))
    summary = match_partitioned(
        MatchConfig(
            videos=parts, labels=labels, out=out, min_videos=10, batch_size=16, keep_columns=keep, progress=False
        )
    )
    manifest = pq.read_table(out / "manifest")
    assert manifest.column_names[-2:] == list(keep) and summary["keep_columns"] == list(keep)
    assert _canon(manifest) == _canon(pq.read_table(whole))
    first = {}
    for r in table.to_pylist():
        if None not in (r["video_id"], r["uri"], r["hashtags"]):  # a rejected row is nobody's first copy
            first.setdefault(r["video_id"], r)  # the first copy of an id is the one kept
    assert manifest.num_rows > 0
    for r in manifest.to_pylist():
        assert (r["licence"], r["bytes"]) == (first[r["video_id"]]["licence"], first[r["video_id"]]["bytes"])

    bad = ["match", "--partitioned", "--videos", str(parts), "--labels", str(labels), "--out", str(tmp_path / "o2")]
    r = runner.invoke(app, [*bad, "--keep-columns", "licence,uploader"])
    assert_input_error(r, "part-00000.parquet", "'uploader'", "--keep-columns")
    assert not (tmp_path / "o2" / "summary.json").exists()
