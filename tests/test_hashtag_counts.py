"""weaksup hashtag-counts: videos per hashtag, normalised and rejected as match does."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import assert_input_error, rows, write_lines

from weaksup.assembly import hashtag_counts as hc
from weaksup.assembly.hashtag_counts import HashtagCountsConfig, count_hashtags
from weaksup.labels.build import BuildLabelsConfig, build_labels
from weaksup.labels.hashtags import normalize_hashtag
from weaksup.tables import validate_file

POOL = [
    "#Café",
    "café",
    "CAFÉ",
    "#跳舞",
    "跳舞",
    "#CandlesBurning",
    "candlesburning",
    "#Candles_Burning",
    "#DribbleBasketball",
    "love",
    "#tbt",
    "#",
    "",
    None,
    "Ｆｕｌｌ",
    "#naïve",
    "x",
    "#X",
    "straße",
    "STRASSE",
]


def _videos(path: Path, rows_: list[tuple]) -> Path:
    pq.write_table(
        pa.table(
            {
                "video_id": pa.array([r[0] for r in rows_], pa.string()),
                "uri": pa.array([r[1] for r in rows_], pa.string()),
                "hashtags": pa.array([r[2] for r in rows_], pa.list_(pa.string())),
            }
        ),
        path,
    )
    return path


def _count(tmp_path: Path, videos: Path | str, name: str = "counts", **kw) -> tuple[dict, dict[str, int]]:
    result = count_hashtags(HashtagCountsConfig(videos=videos, out=tmp_path / f"{name}.parquet", progress=False, **kw))
    table = pq.read_table(result.out)
    return result.summary, dict(zip(table.column("hashtag").to_pylist(), table.column("count").to_pylist()))


def _brute_force(rows_: list[tuple]) -> Counter:
    """Videos per normalised tag, each video once per tag; rows match rejects left out."""
    counts: Counter = Counter()
    seen: set[str] = set()
    for vid, uri, tags in rows_:
        if vid is None or uri is None or tags is None or vid in seen:
            continue
        seen.add(vid)
        counts.update({t for t in (normalize_hashtag(x) for x in tags if x is not None) if t})
    return counts


def _random_rows(rng: np.random.Generator, n: int) -> list[tuple]:
    out = []
    for i in range(n):
        tags = None if rng.random() < 0.05 else [POOL[j] for j in rng.integers(0, len(POOL), rng.integers(0, 6))]
        vid = None if rng.random() < 0.02 else f"v{i if rng.random() > 0.05 else rng.integers(0, i + 1)}"
        uri = None if rng.random() < 0.02 else f"u{i}"
        out.append((vid, uri, tags))
    return out


@pytest.mark.parametrize("batch_size", [7, 1 << 18])
def test_counts_equal_brute_force_on_a_random_table(tmp_path, monkeypatch, batch_size):
    monkeypatch.setattr(hc, "MERGE_ROWS", 5)  # merge the running totals often
    rows_ = _random_rows(np.random.default_rng(3), 600)
    summary, counts = _count(tmp_path, _videos(tmp_path / "v.parquet", rows_), batch_size=batch_size)
    expected = _brute_force(rows_)
    assert counts == dict(expected)
    assert {"café", "跳舞", "candlesburning", "full", "naïve"} <= set(counts)
    assert "" not in counts and "#Café" not in counts
    assert summary["accounted"] is True
    assert summary["distinct_hashtags"] == len(expected) == summary["hashtags_written"]
    assert summary["tag_video_pairs"] == sum(expected.values())
    assert summary["rejected_by_reason"]["duplicate video_id"] > 0


def test_normalisation_and_one_count_per_video(tmp_path):
    rows_ = [
        ("a", "ua", ["#Café", "café", "#CAFÉ"]),  # one video, one tag
        ("b", "ub", ["#跳舞", "#CandlesBurning"]),
        ("c", "uc", ["candlesburning", "#Candles_Burning", "#Café"]),
        ("d", "ud", []),
    ]
    summary, counts = _count(tmp_path, _videos(tmp_path / "v.parquet", rows_))
    assert counts == {"café": 2, "candlesburning": 2, "跳舞": 1}
    table = pq.read_table(tmp_path / "counts.parquet")
    assert table.column_names == ["hashtag", "count"] and table.schema.field("count").type == pa.int64()
    assert validate_file("hashtag_counts", tmp_path / "counts.parquet") == 3
    assert summary["videos_with_tags"] == 3 and summary["videos_without_tags"] == 1
    assert summary["tag_video_pairs"] == 5


def test_sorted_by_count_then_hashtag_and_min_count(tmp_path, cli):
    rows_ = [
        (f"v{i}", f"u{i}", tags)
        for i, tags in enumerate([["b", "a", "z"], ["a", "b"], ["b", "c"], ["a"], ["d"], ["b"]])
    ]
    videos = _videos(tmp_path / "v.parquet", rows_)
    out = tmp_path / "counts.parquet"
    result = cli("hashtag-counts", "--videos", videos, "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    assert [(r["hashtag"], r["count"]) for r in rows(out)] == [("b", 4), ("a", 3), ("c", 1), ("d", 1), ("z", 1)]
    result = cli("hashtag-counts", "--videos", videos, "--out", out, "--min-count", 2, "--no-progress")
    assert result.exit_code == 0, result.output
    assert [(r["hashtag"], r["count"]) for r in rows(out)] == [("b", 4), ("a", 3)]
    summary = json.loads((tmp_path / "counts.summary.json").read_text())
    assert summary["min_count"] == 2 and summary["distinct_hashtags"] == 5 and summary["hashtags_written"] == 2
    assert summary["tag_video_pairs"] == 10
    assert summary["outputs"]["hashtag_counts"] == str(out)


def test_csv_text_input(tmp_path, cli):
    videos = write_lines(
        tmp_path / "v.csv",
        [
            "video_id,uri,hashtags",
            'v1,u1,"#Café #CandlesBurning,#candlesburning"',
            "v2,u2,love tbt",  # no '#': its tokens, as match reads it
            "v3,u3,",  # null hashtags: rejected, as in match
            "v4,u4,#跳舞 #café",
            "v5,u5,just words #tbt",
        ],
    )
    out = tmp_path / "counts.parquet"
    result = cli("hashtag-counts", "--videos", videos, "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    assert {r["hashtag"]: r["count"] for r in rows(out)} == {
        "café": 2,
        "candlesburning": 1,
        "love": 1,
        "tbt": 2,
        "跳舞": 1,
    }
    summary = json.loads((tmp_path / "counts.summary.json").read_text())
    assert summary["rejected_by_reason"] == {"null hashtags": 1}
    assert summary["videos_read"] == 5 and summary["videos_with_tags"] == 4


def test_every_row_accounted_for_with_match_rejects(tmp_path):
    rows_ = [
        ("a", "ua", ["#Dog", "cat"]),
        (None, "un", ["dog"]),  # null video_id
        ("b", None, ["dog"]),  # null uri
        ("c", "uc", None),  # null hashtags
        ("d", "ud", []),  # no tags
        ("e", "ue", ["#", "", None]),  # tags that normalise to nothing
        ("a", "ua2", ["#Dog", "#Bird"]),  # duplicate video_id: its tags do not count
        ("f", "uf", ["dog"]),
        ("e", "ue2", ["fish"]),  # duplicate of a video without tags
    ]
    summary, counts = _count(tmp_path, _videos(tmp_path / "v.parquet", rows_), batch_size=2)
    assert counts == {"dog": 2, "cat": 1}
    assert summary["videos_read"] == 9
    assert summary["rejected"] == 5
    assert summary["rejected_by_reason"] == {
        "null video_id": 1,
        "null uri": 1,
        "null hashtags": 1,
        "duplicate video_id": 2,
    }
    assert summary["videos_with_tags"] == 2 and summary["videos_without_tags"] == 2
    assert summary["videos_with_tags"] + summary["videos_without_tags"] + summary["rejected"] == summary["videos_read"]
    assert summary["accounted"] is True
    assert summary["distinct_hashtags"] == 2  # bird and fish came only from duplicates
    rejects = rows(tmp_path / "counts.rejects.parquet")
    assert [r["row"] for r in rejects] == [1, 2, 3, 6, 8]
    assert rejects[3]["reason"] == "duplicate video_id (first at row 0)"
    assert validate_file("match_rejects", tmp_path / "counts.rejects.parquet") == 5


def test_output_feeds_build_labels_verb_noun_pair_counts(tmp_path, cli):
    def space(name: str, lines: list[str]) -> Path:
        out = tmp_path / f"{name}.parquet"
        build_labels(
            BuildLabelsConfig(sources=("file",), labels_file=write_lines(tmp_path / f"{name}.txt", lines), out=out)
        )
        return out

    verbs, nouns = space("verbs", ["burning", "dribbling"]), space("nouns", ["candle", "basketball"])
    rows_ = [(f"c{i}", f"u{i}", ["#CandlesBurning", "#love"]) for i in range(5)]
    rows_ += [(f"d{i}", f"w{i}", ["#DribbleBasketball", "dribblebasketball"]) for i in range(2)]
    rows_ += [("b0", "x0", ["burnbasketball"])]
    counts = tmp_path / "counts.parquet"
    result = cli("hashtag-counts", "--videos", _videos(tmp_path / "v.parquet", rows_), "--out", counts, "--no-progress")
    assert result.exit_code == 0, result.output
    res = build_labels(
        BuildLabelsConfig(
            sources=("verb-noun",),
            verbs=str(verbs),
            nouns=str(nouns),
            hashtag_counts=counts,
            min_count=2,
            out=tmp_path / "vn.parquet",
        )
    )
    assert sorted(r["label"] for r in rows(res.labels_path)) == ["burn candle", "dribble basketball"]
    result = cli(
        "build-labels",
        "--source",
        "verb-noun",
        "--verbs",
        verbs,
        "--nouns",
        nouns,
        "--pair-counts",
        counts,
        "--min-count",
        1,
        "--out",
        tmp_path / "vn1.parquet",
    )
    assert result.exit_code == 0, result.output
    assert sorted(r["label"] for r in rows(tmp_path / "vn1.parquet")) == [
        "burn basketball",
        "burn candle",
        "dribble basketball",
    ]


def test_jsonl_and_uri_input_and_output(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    videos = write_lines(
        tmp_path / "v.jsonl",
        [
            json.dumps({"video_id": "a", "uri": "ua", "hashtags": ["#Café", "x"]}),
            json.dumps({"video_id": "b", "uri": "ub", "hashtags": ["#café"]}),
        ],
    )
    _, counts = _count(tmp_path, videos)
    assert counts == {"café": 2, "x": 1}
    root = f"memory://weaksup-counts-{uuid.uuid4().hex[:8]}"
    fs = fsspec.filesystem("memory")
    try:
        fs.pipe_file(f"{root}/v.parquet", (_videos(tmp_path / "v.parquet", [("a", "ua", ["#Dog"])])).read_bytes())
        result = count_hashtags(
            HashtagCountsConfig(videos=Path(f"{root}/v.parquet"), out=Path(f"{root}/out/c.parquet"), progress=False)
        )
        assert result.out == f"{root}/out/c.parquet" and result.summary_path == f"{root}/out/c.summary.json"
        with fs.open(f"{root}/out/c.parquet", "rb") as fh:
            assert pq.read_table(fh).to_pylist() == [{"hashtag": "dog", "count": 1}]
        assert fs.exists(f"{root}/out/c.rejects.parquet") and fs.exists(f"{root}/out/c.summary.json")
    finally:
        if fs.exists(root):
            fs.rm(root, recursive=True)


def test_bad_inputs_exit_2_with_one_line(tmp_path, cli):
    videos = _videos(tmp_path / "v.parquet", [("a", "ua", ["dog"])])
    out = tmp_path / "counts.parquet"
    assert_input_error(
        cli("hashtag-counts", "--videos", tmp_path / "nope.parquet", "--out", out), "nope.parquet", "not found"
    )
    no_tags = tmp_path / "notags.parquet"
    pq.write_table(pa.table({"video_id": ["a"], "uri": ["u"]}), no_tags)
    assert_input_error(
        cli("hashtag-counts", "--videos", no_tags, "--out", out), "notags.parquet", "missing column 'hashtags'"
    )
    (tmp_path / "adir").mkdir()
    assert_input_error(cli("hashtag-counts", "--videos", videos, "--out", tmp_path / "adir"), "adir", "is a directory")
    assert_input_error(cli("hashtag-counts", "--videos", videos, "--out", out, "--min-count", 0), "--min-count 0")
    assert_input_error(cli("hashtag-counts", "--videos", videos, "--out", tmp_path / "c.csv"), "c.csv", ".parquet")
    assert_input_error(cli("hashtag-counts", "--videos", videos, "--out", out, "--batch-size", 0), "--batch-size 0")
    bad = write_lines(tmp_path / "bad.jsonl", ['{"video_id": "a", "uri": "u", "hashtags": ["x"]}', "{not json"])
    assert_input_error(cli("hashtag-counts", "--videos", bad, "--out", out), "bad.jsonl:2")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "adir",
        "bad.jsonl",
        "notags.parquet",
        "v.parquet",
    ]  # nothing written
