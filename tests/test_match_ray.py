"""match and hashtag-counts on Ray: the same rows, rejects and counts as one local run; reruns reuse.

One local Ray instance (2 CPUs) serves the whole module; each job joins it instead of
starting its own. Skipped when Ray Data is not installed (``pip install "weaksup[ray]"``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import assert_input_error
from test_match_partitioned import SUMMARY_KEYS

from weaksup.assembly.hashtag_counts import HashtagCountsConfig, count_hashtags
from weaksup.assembly.match import MatchConfig, match_videos
from weaksup.assembly.match_ray import RayOptions, count_hashtags_on_ray, match_on_ray
from weaksup.assembly.partition import PartitionConfig, partition_videos
from weaksup.errors import InputError
from weaksup.labels.build import BuildLabelsConfig, build_labels
from weaksup.synth.metadata import SynthMetadataConfig, synth_metadata

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("local_ray")]

COUNT_KEYS = (
    "videos_read",
    "videos_with_tags",
    "videos_without_tags",
    "rejected",
    "rejected_by_reason",
    "accounted",
    "distinct_hashtags",
    "hashtags_written",
    "tag_video_pairs",
    "min_count",
)


def _synth(path: Path, n: int, seed: int, prefix: str = "", keep_ids: int = 0, licence: bool = True) -> pa.Table:
    """A synthetic videos table (Kinetics-400 hashtags); ids renamed ``prefix + id`` except the
    first ``keep_ids`` (copies of another table's first ids, with other uris: duplicates)."""
    synth_metadata(SynthMetadataConfig(videos=n, out=path, seed=seed))
    table = pq.read_table(path)
    ids = table.column("video_id").to_pylist()
    ids = ids[:keep_ids] + [prefix + v for v in ids[keep_ids:]]
    table = table.set_column(0, "video_id", pa.array(ids, pa.string()))
    table = table.set_column(1, "uri", pa.array([f"{prefix}u{i}" for i in range(n)], pa.string()))
    if licence:
        table = table.append_column("licence", pa.array([f"cc-{i % 3}" for i in range(n)], pa.string()))
    return table


def _hand_table(tags: list[str]) -> pa.Table:
    """Null rows, an empty tag list, an empty uri, copies of the first file's ids and of this
    file's own rejected and kept rows: every reject reason and first-occurrence rule."""
    rows = [(f"h{i}", f"hu{i}", [tags[i % len(tags)], "tbt"]) for i in range(40)]
    rows += [
        (None, "nullid", [tags[0]]),
        ("nouri", None, [tags[0]]),
        ("notags", "nt", None),
        ("empty", "e", []),
        ("emptyuri", "", [tags[1]]),
        ("nouri", "second", [tags[3]]),  # the first "nouri" was rejected: this one counts
        ("h3", "dup-h3", [tags[2]]),  # a copy of a kept row of this file
    ]
    rows += [(f"v{i}", f"copy{i}", [tags[1]]) for i in range(30)]  # copies of the first file's first ids
    return pa.table(
        {
            "video_id": pa.array([r[0] for r in rows], pa.string()),
            "uri": pa.array([r[1] for r in rows], pa.string()),
            "hashtags": pa.array([r[2] for r in rows], pa.list_(pa.string())),
            "duration_s": pa.array([float(i) for i in range(len(rows))], pa.float64()),
        }
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Kinetics-400 labels and a folder of three Parquet files (several row groups each; the
    second lacks the ``licence`` column) with duplicates within and across files and null rows."""
    d = tmp_path_factory.mktemp("ray_match")
    labels = d / "k400.parquet"
    build_labels(BuildLabelsConfig(sources=("kinetics400",), out=labels))
    tags = [t[0] for t in pq.read_table(labels, columns=["hashtags"]).column("hashtags").to_pylist()[:5]]
    folder = d / "videos"
    folder.mkdir()
    pq.write_table(_synth(d / "a-src.parquet", 4000, seed=3), folder / "a.parquet", row_group_size=300)
    pq.write_table(_hand_table(tags), folder / "b.parquet", row_group_size=13)
    pq.write_table(_synth(d / "c-src.parquet", 1500, 5, "c-", keep_ids=100), folder / "c.parquet", row_group_size=400)
    return {"dir": d, "labels": labels, "folder": folder, "tags": tags}


def _canon(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: r["video_id"])


def _local_match(videos: Path, labels: Path, out: Path, **kw) -> tuple[dict, Path]:
    summary = match_videos(MatchConfig(videos=videos, labels=labels, out=out, progress=False, **kw))
    return summary, out


def _assert_same_match(local: tuple[dict, Path], summary: dict, out: Path) -> None:
    """Row for row: manifest (sorted by id), rejects (by row), label counts, accounting."""
    whole_summary, whole = local
    assert _canon(pq.read_table(out / "manifest")) == _canon(pq.read_table(whole))
    assert (
        pq.read_table(out / "rejects.parquet").to_pylist()
        == pq.read_table(whole.with_name(f"{whole.stem}.rejects.parquet")).to_pylist()
    )
    assert (
        pq.read_table(out / "label_counts.parquet").to_pylist()
        == pq.read_table(whole.with_name(f"{whole.stem}.label_counts.parquet")).to_pylist()
    )
    assert {k: summary[k] for k in SUMMARY_KEYS} == {k: whole_summary[k] for k in SUMMARY_KEYS}
    assert json.loads((out / "summary.json").read_text())["in_manifest"] == whole_summary["in_manifest"]


def test_match_on_ray_equals_local_match_of_a_folder(corpus: dict, tmp_path: Path) -> None:
    kw = {"min_videos": 15, "keep_columns": ("licence",)}
    local = _local_match(corpus["folder"], corpus["labels"], tmp_path / "local" / "manifest.parquet", **kw)
    cfg = MatchConfig(videos=corpus["folder"], labels=corpus["labels"], out=tmp_path / "ray", progress=False, **kw)
    summary = match_on_ray(cfg, RayOptions(parts=3, block_rows=500))
    _assert_same_match(local, summary, tmp_path / "ray")
    assert summary["engine"] == "ray" and summary["parts"] == 3 and summary["blocks"] >= 10  # blocks within files
    assert summary["reused"] == {"blocks": 0, "support": 0, "manifest": 0}
    assert 0 < summary["labels_kept"] < summary["labels"]
    reasons = summary["rejected_by_reason"]
    assert reasons["duplicate video_id"] == 100 + 30 + 1 and {"null video_id", "null uri", "empty uri"} <= set(reasons)
    manifest = pq.read_table(tmp_path / "ray" / "manifest")
    assert manifest.column_names[-1] == "licence" and manifest.column("licence").null_count > 0  # b.parquet has none
    nouri = [
        r["reason"] for r in pq.read_table(tmp_path / "ray" / "rejects.parquet").to_pylist() if r["video_id"] == "nouri"
    ]
    assert nouri == ["null uri"]  # the first copy was rejected: the second is nobody's duplicate
    assert not (tmp_path / "ray" / ".ray" / "buckets").exists()  # removed once every part was made


def test_rerun_reuses_and_a_change_is_recomputed(corpus: dict, tmp_path: Path) -> None:
    videos, labels, out = tmp_path / "v.parquet", corpus["labels"], tmp_path / "ray"
    pq.write_table(_synth(tmp_path / "src.parquet", 3000, seed=7, licence=False), videos, row_group_size=250)
    opts = RayOptions(parts=2, block_rows=700)
    first = match_on_ray(MatchConfig(videos=videos, labels=labels, out=out, min_videos=15, progress=False), opts)
    manifest = _canon(pq.read_table(out / "manifest"))

    # the same job again, the part count left automatic: the earlier plan's 2 parts, everything reused
    again = match_on_ray(
        MatchConfig(videos=videos, labels=labels, out=out, min_videos=15, progress=False), RayOptions(block_rows=700)
    )
    assert again["parts"] == 2
    assert again["reused"] == {"blocks": first["blocks"], "support": 2, "manifest": 2}
    assert _canon(pq.read_table(out / "manifest")) == manifest
    assert {k: again[k] for k in SUMMARY_KEYS} == {k: first[k] for k in SUMMARY_KEYS}

    # another --min-videos: phase 1 reused, phase 2 redone
    changed = match_on_ray(MatchConfig(videos=videos, labels=labels, out=out, min_videos=40, progress=False), opts)
    assert changed["reused"] == {"blocks": first["blocks"], "support": 2, "manifest": 0}
    _assert_same_match(_local_match(videos, labels, tmp_path / "l40" / "m.parquet", min_videos=40), changed, out)

    # another label space (--drop-tags): the partition reused, both phases redone
    drop = tmp_path / "drop.txt"
    drop.write_text("\n".join(corpus["tags"]) + "\n", encoding="utf-8")
    kw = {"min_videos": 40, "drop_tags": drop}
    dropped = match_on_ray(MatchConfig(videos=videos, labels=labels, out=out, progress=False, **kw), opts)
    assert dropped["reused"] == {"blocks": first["blocks"], "support": 0, "manifest": 0}
    _assert_same_match(_local_match(videos, labels, tmp_path / "drop" / "m.parquet", **kw), dropped, out)

    # another input (same size, other rows): nothing reused, and the result is the new input's
    pq.write_table(_synth(tmp_path / "src.parquet", 3000, seed=8, licence=False), videos, row_group_size=250)
    fresh = match_on_ray(MatchConfig(videos=videos, labels=labels, out=out, min_videos=40, progress=False), opts)
    assert fresh["reused"] == {"blocks": 0, "support": 0, "manifest": 0}
    _assert_same_match(_local_match(videos, labels, tmp_path / "new" / "m.parquet", min_videos=40), fresh, out)

    # more parts: the earlier parts' manifests are replaced, none left over
    more = match_on_ray(
        MatchConfig(videos=videos, labels=labels, out=out, min_videos=40, progress=False), RayOptions(parts=5)
    )
    assert more["reused"]["manifest"] == 0 and more["parts"] == 5
    assert len(list((out / "manifest").glob("part-*.parquet"))) == more["parts_with_rows"]
    _assert_same_match(_local_match(videos, labels, tmp_path / "new" / "m.parquet", min_videos=40), more, out)


def test_hashtag_counts_on_ray_equals_local(corpus: dict, tmp_path: Path) -> None:
    local = count_hashtags(HashtagCountsConfig(corpus["folder"], tmp_path / "local.parquet", progress=False))
    cfg = HashtagCountsConfig(corpus["folder"], tmp_path / "ray.parquet", progress=False)
    result = count_hashtags_on_ray(cfg, RayOptions(parts=3, block_rows=600))
    assert pq.read_table(result.out).to_pylist() == pq.read_table(local.out).to_pylist()
    assert pq.read_table(result.rejects_path).to_pylist() == pq.read_table(local.rejects_path).to_pylist()
    assert {k: result.summary[k] for k in COUNT_KEYS} == {k: local.summary[k] for k in COUNT_KEYS}
    assert result.summary["reused"] == {"blocks": 0, "counts": 0}

    # another --min-count: every part's counts reused, only the merge redone
    local3 = count_hashtags(HashtagCountsConfig(corpus["folder"], tmp_path / "l3.parquet", min_count=3, progress=False))
    again = count_hashtags_on_ray(replace(cfg, min_count=3), RayOptions(parts=3, block_rows=600))
    assert again.summary["reused"] == {"blocks": result.summary["blocks"], "counts": result.summary["parts_with_rows"]}
    assert pq.read_table(again.out).to_pylist() == pq.read_table(local3.out).to_pylist()
    assert {k: again.summary[k] for k in COUNT_KEYS} == {k: local3.summary[k] for k in COUNT_KEYS}
    assert pc.min(pq.read_table(again.out).column("count")).as_py() >= 3


def test_a_converted_csv_keeps_its_rows(corpus: dict, tmp_path: Path) -> None:
    """CSV is refused by the Ray engine; partition-videos --parts 1 converts it, and the rejects
    still name the CSV's rows (source_row is carried through)."""
    table = _hand_table(corpus["tags"])
    csv = tmp_path / "v.csv"
    lines = ["video_id,uri,hashtags,duration_s"]
    for r in table.to_pylist():
        tags = "" if r["hashtags"] is None else " ".join(f"#{t}" for t in r["hashtags"])
        lines.append(",".join(["" if r[k] is None else str(r[k]) for k in ("video_id", "uri")] + [tags, "1.0"]))
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = MatchConfig(videos=csv, labels=corpus["labels"], out=tmp_path / "ray", min_videos=2, progress=False)
    with pytest.raises(InputError, match="Parquet"):
        match_on_ray(cfg)
    partition_videos(PartitionConfig(videos=csv, out=tmp_path / "parquet", parts=1, progress=False))
    summary = match_on_ray(
        replace(cfg, videos=tmp_path / "parquet"),
        RayOptions(parts=2, block_rows=20),
    )
    _assert_same_match(
        _local_match(csv, corpus["labels"], tmp_path / "local" / "m.parquet", min_videos=2), summary, tmp_path / "ray"
    )


def test_cli(cli, corpus: dict, tmp_path: Path) -> None:
    folder, labels = corpus["folder"], corpus["labels"]
    result = cli(
        "match", "--engine", "ray", "--parts", "2", "--videos", folder, "--labels", labels, "--out", tmp_path / "m"
    )
    assert result.exit_code == 0, result.output
    local = _local_match(folder, labels, tmp_path / "local" / "m.parquet", min_videos=50)
    _assert_same_match(local, json.loads((tmp_path / "m" / "summary.json").read_text()), tmp_path / "m")

    result = cli("hashtag-counts", "--engine", "ray", "--videos", folder, "--out", tmp_path / "c.parquet")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "c.summary.json").read_text())["accounted"]

    csv = tmp_path / "v.csv"
    csv.write_text("video_id,uri,hashtags\na,u,#x\n", encoding="utf-8")
    result = cli("match", "--engine", "ray", "--videos", csv, "--labels", labels, "--out", tmp_path / "x")
    assert_input_error(result, "v.csv", "Parquet")
    result = cli("match", "--parts", "2", "--videos", folder, "--labels", labels, "--out", tmp_path / "y")
    assert_input_error(result, "--parts", "--engine ray")
    result = cli("match", "--engine", "ray", "--partitioned", "--videos", folder, "--labels", labels, "--out", tmp_path)
    assert_input_error(result, "--partitioned")
