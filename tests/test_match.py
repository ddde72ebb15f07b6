"""weaksup match: min-videos filter, deterministic single label, rejects, accounting, inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import assert_input_error
from typer.testing import CliRunner

from weaksup.assembly.match import MatchConfig, match_videos
from weaksup.cli.main import app
from weaksup.labels.build import BuildLabelsConfig, build_labels
from weaksup.synth.metadata import SynthMetadataConfig, synth_metadata

runner = CliRunner()


def _labels_table(tmp_path: Path, name: str, lines: list[str]) -> Path:
    f = tmp_path / f"{name}.txt"
    f.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    out = tmp_path / f"{name}.parquet"
    build_labels(BuildLabelsConfig(sources=("file",), labels_file=f, out=out))
    return out


@pytest.fixture()
def labels(tmp_path: Path) -> Path:
    return _labels_table(tmp_path, "labels", ["catching fish", "dribbling basketball", "playing guitar"])


def _videos(path: Path, rows: list[tuple]) -> Path:
    table = pa.table(
        {
            "video_id": pa.array([r[0] for r in rows], pa.string()),
            "uri": pa.array([r[1] for r in rows], pa.string()),
            "hashtags": pa.array([r[2] for r in rows], pa.list_(pa.string())),
        }
    )
    pq.write_table(table, path)
    return path


def _run(tmp_path: Path, videos: Path, labels: Path, name: str = "manifest", **kw) -> tuple[dict, pa.Table]:
    out = tmp_path / f"{name}.parquet"
    summary = match_videos(MatchConfig(videos=videos, labels=labels, out=out, progress=False, **kw))
    return summary, pq.read_table(out)


def test_min_videos_filter_drops_labels_and_reassesses_their_videos(tmp_path, labels):
    rows = [(f"fish{i}", f"u{i}", ["#CatchingFish"]) for i in range(60)]
    rows += [(f"ball{i}", f"b{i}", ["dribblingbasketball", "noise"]) for i in range(40)]
    rows += [(f"both{i}", f"x{i}", ["fishcatching", "basketballdribble"]) for i in range(5)]
    rows += [(f"none{i}", f"n{i}", ["love", "tbt"]) for i in range(7)]
    summary, manifest = _run(tmp_path, _videos(tmp_path / "v.parquet", rows), labels, min_videos=50)

    assert summary["labels_kept"] == 1 and summary["labels_dropped"] == 2
    assert summary["dropped_by_min_videos"] == 40  # ball-only videos; "both" videos keep the fish label
    assert summary["unmatched"] == 7
    assert summary["in_manifest"] == 65
    assert summary["accounted"] is True
    assert set(manifest.column("label").to_pylist()) == {"catching fish"}
    both = [r for r in manifest.to_pylist() if r["video_id"].startswith("both")]
    assert len(both) == 5 and all(r["matched_label_ids"] == [0] for r in both)
    counts = pq.read_table(tmp_path / "manifest.label_counts.parquet").to_pylist()
    assert [c["matched_videos"] for c in counts] == [65, 45, 0]
    assert [c["kept"] for c in counts] == [True, False, False]
    assert counts[0]["assigned_videos"] == 65


def test_single_label_is_uniform_and_independent_of_order_and_sharding(tmp_path, labels):
    rows = [(f"v{i}", f"u{i}", ["catchfish", "playingguitar"]) for i in range(2000)]
    videos = _videos(tmp_path / "v.parquet", rows)
    _, a = _run(tmp_path, videos, labels, "a", min_videos=1, batch_size=7)
    _, b = _run(tmp_path, videos, labels, "b", min_videos=1, batch_size=100_000)
    shuffled = [rows[i] for i in np.random.default_rng(1).permutation(len(rows))]
    _, c = _run(tmp_path, _videos(tmp_path / "s.parquet", shuffled), labels, "c", min_videos=1, batch_size=33)
    by_id = lambda t: dict(zip(t.column("video_id").to_pylist(), t.column("label_id").to_pylist()))  # noqa: E731
    assert by_id(a) == by_id(b) == by_id(c)
    share = np.mean(a.column("label_id").to_numpy() == 0)
    assert 0.45 < share < 0.55
    assert all(m == [0, 2] for m in a.column("matched_label_ids").to_pylist())
    _, d = _run(tmp_path, videos, labels, "d", min_videos=1, seed=7)
    assert by_id(d) != by_id(a)


def test_rejects_and_duplicates_are_accounted(tmp_path, labels):
    rows = [
        ("a", "ua", ["catchfish"]),
        (None, "ub", ["catchfish"]),
        ("c", None, ["catchfish"]),
        ("d", "ud", None),
        ("a", "ua2", ["playguitar"]),  # duplicate of row 0
        ("e", "ue", []),
        ("f", "uf", ["ＣＡＴＣＨ-Fish!"]),  # odd Unicode normalises to catchfish
        ("e", "ue2", ["nothing"]),  # duplicate of an unmatched row
    ]
    summary, manifest = _run(tmp_path, _videos(tmp_path / "v.parquet", rows), labels, min_videos=1)
    rejects = pq.read_table(tmp_path / "manifest.rejects.parquet").to_pylist()
    assert [(r["row"], r["reason"].split(" (")[0]) for r in rejects] == [
        (1, "null video_id"),
        (2, "null uri"),
        (3, "null hashtags"),
        (4, "duplicate video_id"),
        (7, "duplicate video_id"),
    ]
    assert "first at row 0" in rejects[3]["reason"]
    assert sorted(manifest.column("video_id").to_pylist()) == ["a", "f"]
    assert summary["unmatched"] == 1 and summary["rejected"] == 5 and summary["accounted"]
    assert manifest.filter(pa.compute.equal(manifest.column("video_id"), "a")).column("uri").to_pylist() == ["ua"]
    saved = json.loads((tmp_path / "manifest.summary.json").read_text())
    assert saved["videos_read"] == 8


def test_csv_and_jsonl_with_text_hashtags(tmp_path, labels):
    csv = tmp_path / "v.csv"
    csv.write_text(
        'video_id,uri,hashtags\n1,a.mp4,"Look #CatchingFish today #tbt"\n2,b.mp4,playguitar;love\n3,c.mp4,hello\n'
    )
    summary, manifest = _run(tmp_path, csv, labels, "csv", min_videos=1)
    assert dict(zip(manifest.column("video_id").to_pylist(), manifest.column("label").to_pylist())) == {
        "1": "catching fish",
        "2": "playing guitar",
    }
    assert summary["unmatched"] == 1
    jsonl = tmp_path / "v.jsonl"
    jsonl.write_text('{"video_id": "x", "uri": "x.mp4", "hashtags": ["#DribblingBasketball"]}\n')
    _, manifest = _run(tmp_path, jsonl, labels, "jsonl", min_videos=1)
    assert manifest.column("label").to_pylist() == ["dribbling basketball"]


def test_synthetic_metadata_matches_with_zipf_counts(tmp_path):
    videos = tmp_path / "videos.parquet"
    synth_metadata(SynthMetadataConfig(videos=20_000, out=videos, seed=3))
    labels = tmp_path / "k400.parquet"
    build_labels(BuildLabelsConfig(sources=("kinetics400",), out=labels))
    summary, manifest = _run(tmp_path, videos, labels, min_videos=50)
    assert summary["accounted"] and summary["labels_dropped"] > 0 and summary["labels_kept"] > 20
    counts = np.sort(np.bincount(manifest.column("label_id").to_numpy()))[::-1]
    assert counts[0] > 10 * counts[counts > 0][-1]  # long tail


@pytest.mark.parametrize(
    "content, problem",
    [
        (pa.table({"video_id": ["a"], "hashtags": [["x"]]}), "missing column 'uri'"),
        (pa.table({"video_id": ["a"], "uri": ["u"]}), "missing column 'hashtags'"),
        (pa.table({"video_id": ["a"], "uri": ["u"], "hashtags": [3]}), "column 'hashtags' has type int64"),
        (pa.table({"video_id": [[1]], "uri": ["u"], "hashtags": [["x"]]}), "column 'video_id' has type"),
    ],
)
def test_bad_videos_tables_exit_2(tmp_path, labels, content, problem):
    path = tmp_path / "bad.parquet"
    pq.write_table(content, path)
    result = runner.invoke(
        app, ["match", "--videos", str(path), "--labels", str(labels), "--out", str(tmp_path / "m.parquet")]
    )
    assert result.exit_code == 2
    assert problem in result.output and "bad.parquet" in result.output
    assert not (tmp_path / "m.parquet").exists()


def test_missing_and_malformed_inputs_exit_2(tmp_path, labels):
    out = str(tmp_path / "m.parquet")
    r = runner.invoke(app, ["match", "--videos", str(tmp_path / "nope.parquet"), "--labels", str(labels), "--out", out])
    assert r.exit_code == 2 and "file not found" in r.output
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    r = runner.invoke(app, ["match", "--videos", str(garbage), "--labels", str(labels), "--out", out])
    assert r.exit_code == 2 and "garbage.parquet" in r.output
    videos = _videos(tmp_path / "v.parquet", [("a", "u", ["x"])])
    r = runner.invoke(app, ["match", "--videos", str(videos), "--labels", str(videos), "--out", out])
    assert r.exit_code == 2 and "missing column 'label_id'" in r.output


def test_cli_synth_metadata_then_match(tmp_path):
    videos, labels, out = tmp_path / "v.parquet", tmp_path / "l.parquet", tmp_path / "m.parquet"
    assert runner.invoke(app, ["synth-metadata", "--num-videos", "3000", "--out", str(videos)]).exit_code == 0
    assert runner.invoke(app, ["build-labels", "--source", "kinetics400", "--out", str(labels)]).exit_code == 0
    r = runner.invoke(
        app, ["match", "--videos", str(videos), "--labels", str(labels), "--out", str(out), "--min-videos", "5"]
    )
    assert r.exit_code == 0, r.output
    assert runner.invoke(app, ["validate", "--schema", "manifest", "--table", str(out)]).exit_code == 0
    assert runner.invoke(app, ["validate", "--schema", "videos", "--table", str(videos)]).exit_code == 0


def test_manifest_keeps_the_hashtags_behind_each_label(tmp_path, labels):
    """Issue 16's audit trail: which of a video's tags gave it its label (normalised), only
    those of the label it got, each once; other tags and other labels' tags are not listed."""
    rows = [
        ("a", "u1", ["#CatchingFish", "#fishcatching", "#sunset", "#catchingfish"]),
        ("b", "u2", ["#PlayingGuitar", "#guitarplaying", "#fish"]),
        ("c", "u3", ["#dribblingbasketball", "#catchfish"]),
    ]
    _, table = _run(tmp_path, _videos(tmp_path / "v.parquet", rows), labels, min_videos=1)
    got = {r["video_id"]: (r["label"], r["matched_hashtags"]) for r in table.to_pylist()}
    assert got["a"] == ("catching fish", ["catchingfish", "fishcatching"])
    assert got["b"] == ("playing guitar", ["guitarplaying", "playingguitar"])
    label_c, tags_c = got["c"]
    assert tags_c == {"dribbling basketball": ["dribblingbasketball"], "catching fish": ["catchfish"]}[label_c]


# --- captions as phrases (--text-column), --drop-tags -----------------------------------


@pytest.fixture()
def phrase_labels(tmp_path: Path) -> Path:
    return _labels_table(tmp_path, "phrase_labels", ["catching a fish", "playing guitar"])


def _captions(path: Path, rows: list[tuple], hashtags: list | None = None) -> Path:
    cols = {
        "video_id": pa.array([r[0] for r in rows], pa.string()),
        "uri": pa.array([f"{r[0]}.mp4" for r in rows], pa.string()),
        "caption": pa.array([r[1] for r in rows], pa.string()),
    }
    if hashtags is not None:
        cols["hashtags"] = pa.array(hashtags, pa.list_(pa.string()))
    pq.write_table(pa.table(cols), path)
    return path


def _by_id(table: pa.Table) -> dict:
    return {r["video_id"]: (r["label"], r["matched_hashtags"]) for r in table.to_pylist()}


def test_caption_phrases_match_and_say_which_phrase(tmp_path, phrase_labels):
    videos = _captions(
        tmp_path / "c.parquet",
        [
            ("a", "A man catching a fish in the river"),
            ("b", "fishing in the river"),  # neither "catching" nor a fish caught: no label
            ("c", "She is PLAYING the guitar, #sunset"),  # stop words removed: playingguitar
            ("d", "Catching-a-Fish!!"),  # punctuation separates words; runs join them again
            ("e", None),
        ],
    )
    summary, table = _run(tmp_path, videos, phrase_labels, min_videos=1, text_column="caption")
    got = _by_id(table)
    assert got["a"] == ("catching a fish", ["catchingafish", "catchingfish"])
    assert got["c"] == ("playing guitar", ["playingguitar"])
    assert got["d"] == ("catching a fish", ["catchingafish", "catchingfish"])
    assert "b" not in got
    assert summary["unmatched"] == 1 and summary["text_column"] == "caption" and summary["accounted"]
    assert summary["rejected_by_reason"] == {"null caption": 1}
    # without --text-column a caption without # is split at spaces into single-word tags (today's behaviour):
    # only "Catching-a-Fish!!", one token, reaches a multi-word hashtag
    summary, table = _run(tmp_path, videos, phrase_labels, "plain", min_videos=1)
    assert table.column("video_id").to_pylist() == ["d"] and summary["unmatched"] == 3


def test_caption_stop_words_and_run_lengths(tmp_path, phrase_labels):
    videos = _captions(
        tmp_path / "c.parquet",
        [
            ("the", "catching the fish"),  # only through the stop-word-free run catchingfish
            ("far", "catching my very big fish"),  # content words catching very big fish: too far apart
            ("gap", "catching, in the boat, a fish"),  # not consecutive once stop words go: catching boat fish
            ("hash", "#FishCatching at dawn"),  # a #tag of the caption, normalised
            ("word", "fish catching"),  # a plain two-word run
        ],
    )
    _, table = _run(tmp_path, videos, phrase_labels, min_videos=1, text_column="caption")
    got = _by_id(table)
    assert got == {
        "the": ("catching a fish", ["catchingfish"]),
        "hash": ("catching a fish", ["fishcatching"]),
        "word": ("catching a fish", ["fishcatching"]),
    }


def test_caption_and_hashtags_columns_are_a_union(tmp_path, phrase_labels):
    videos = _captions(
        tmp_path / "c.parquet",
        [
            ("tags", "nothing here"),
            ("text", "playing guitar tonight"),
            ("both", "a man catching a fish"),
            ("none", None),
            ("nulltags", "catching a fish"),
        ],
        hashtags=[["#PlayingGuitar"], [], ["#fishcatching"], None, None],
    )
    summary, table = _run(tmp_path, videos, phrase_labels, min_videos=1, text_column="caption")
    got = _by_id(table)
    assert got["tags"] == ("playing guitar", ["playingguitar"])
    assert got["text"] == ("playing guitar", ["playingguitar"])
    assert got["both"] == ("catching a fish", ["catchingafish", "catchingfish", "fishcatching"])
    assert got["nulltags"] == ("catching a fish", ["catchingafish", "catchingfish"])
    assert summary["rejected_by_reason"] == {"null hashtags and caption": 1}


def test_caption_phrases_through_the_cli_csv_and_partitioned(tmp_path, phrase_labels):
    csv = tmp_path / "v.csv"
    rows = [
        f'v{i},v{i}.mp4,"{c}"' for i, c in enumerate(["a man catching a fish", "Playing the guitar", "a river"] * 5)
    ]
    csv.write_text("video_id,uri,caption\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "m.parquet"
    r = runner.invoke(
        app,
        [
            "match",
            "--videos",
            str(csv),
            "--labels",
            str(phrase_labels),
            "--out",
            str(out),
            "--min-videos",
            "1",
            "--text-column",
            "caption",
        ],
    )
    assert r.exit_code == 0, r.output
    whole = pq.read_table(out)
    assert whole.num_rows == 10
    parts = tmp_path / "parts"
    assert (
        runner.invoke(app, ["partition-videos", "--videos", str(csv), "--out", str(parts), "--parts", "3"]).exit_code
        == 0
    )
    r = runner.invoke(
        app,
        [
            "match",
            "--partitioned",
            "--videos",
            str(parts),
            "--labels",
            str(phrase_labels),
            "--out",
            str(tmp_path / "pm"),
            "--min-videos",
            "1",
            "--text-column",
            "caption",
        ],
    )
    assert r.exit_code == 0, r.output
    split = pq.read_table(tmp_path / "pm" / "manifest")
    assert sorted(split.column("video_id").to_pylist()) == sorted(whole.column("video_id").to_pylist())
    # support counted without the text column does not decide a match with it
    counts = tmp_path / "counts.parquet"
    assert (
        runner.invoke(
            app, ["match-count", "--videos", str(csv), "--labels", str(phrase_labels), "--out", str(counts)]
        ).exit_code
        == 0
    )
    r = runner.invoke(
        app,
        [
            "match",
            "--videos",
            str(csv),
            "--labels",
            str(phrase_labels),
            "--out",
            str(tmp_path / "s.parquet"),
            "--support",
            str(counts),
            "--text-column",
            "caption",
        ],
    )
    assert_input_error(r, "counts.parquet", "another label space", "--text-column")


def test_non_ascii_aliases_reach_their_label(tmp_path):
    """A labels CSV with an aliases column (any language): #baile, #跳舞 and a Chinese caption reach 'dancing'."""
    f = tmp_path / "labels.csv"
    f.write_text("label,aliases\ndancing,baile|跳舞\nplaying guitar,\n", encoding="utf-8")
    labels = tmp_path / "labels.parquet"
    build_labels(BuildLabelsConfig(sources=("file",), labels_file=f, out=labels))
    videos = _captions(
        tmp_path / "v.parquet",
        [("es", None), ("zh", None), ("cap", "我们 跳舞 吧"), ("en", None)],
        hashtags=[["#Baile"], ["#跳舞"], [], ["#dance"]],
    )
    _, table = _run(tmp_path, videos, labels, min_videos=1, text_column="caption")
    assert _by_id(table) == {
        "es": ("dancing", ["baile"]),
        "zh": ("dancing", ["跳舞"]),
        "cap": ("dancing", ["跳舞"]),
        "en": ("dancing", ["dance"]),
    }


def test_drop_tags_removes_tags_and_counts_them(tmp_path, labels):
    rows = [("a", "u1", ["#catchfish"]), ("b", "u2", ["#catchfish", "#fishcatching"]), ("c", "u3", ["#playingguitar"])]
    videos = _videos(tmp_path / "v.parquet", rows)
    drop = tmp_path / "drop.txt"
    drop.write_text("#CatchFish\n\n  \nnot-in-the-index\ncatchfish\n", encoding="utf-8")
    summary, table = _run(tmp_path, videos, labels, min_videos=1, drop_tags=drop)
    got = _by_id(table)
    assert "a" not in got and got["b"] == ("catching fish", ["fishcatching"]) and "c" in got
    assert summary["dropped_tags"] == 1 and summary["drop_tags_not_in_index"] == 1 and summary["unmatched"] == 1
    r = runner.invoke(
        app,
        [
            "match",
            "--videos",
            str(videos),
            "--labels",
            str(labels),
            "--out",
            str(tmp_path / "cli.parquet"),
            "--min-videos",
            "1",
            "--drop-tags",
            str(drop),
        ],
    )
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "cli.summary.json").read_text())
    assert saved["dropped_tags"] == 1 and saved["drop_tags_not_in_index"] == 1 and saved["in_manifest"] == 2


def test_bad_text_column_and_drop_tags_exit_2(tmp_path, labels):
    videos = _captions(tmp_path / "v.parquet", [("a", "catching fish")], hashtags=[["x"]])
    out = tmp_path / "m.parquet"
    base = ["match", "--videos", str(videos), "--labels", str(labels), "--out", str(out)]
    assert_input_error(
        runner.invoke(app, base + ["--text-column", "title"]), "v.parquet", "missing column 'title'", "--text-column"
    )
    assert_input_error(
        runner.invoke(app, base + ["--text-column", "hashtags"]), "v.parquet", "'hashtags'", "expected text"
    )
    assert_input_error(
        runner.invoke(app, base + ["--drop-tags", str(tmp_path / "nope.txt")]), "nope.txt", "file not found"
    )
    bad = tmp_path / "drop.txt"
    bad.write_text("fine\n!!!\n", encoding="utf-8")
    assert_input_error(runner.invoke(app, base + ["--drop-tags", str(bad)]), "drop.txt:2", "'!!!'")
    bad.write_bytes(b"ok\ncaf\xe9\n")
    assert_input_error(runner.invoke(app, base + ["--drop-tags", str(bad)]), "drop.txt:2", "not valid UTF-8")
    assert not out.exists()


def test_phrase_candidates_are_the_same_in_any_chunking(monkeypatch):
    from weaksup.assembly import videos as v

    texts = pa.array(
        ["x y z w", "a man catching a fish in the river", None, "the the the", "", "ñandú corre rápido"] * 3
    )
    whole = v.text_candidates(texts).to_pylist()
    assert whole[1][:3] == ["a", "man", "catching"] and "catchingafish" in whole[1] and "catchingfish" in whole[1]
    assert whole[2] is None and whole[4] == [] and "theriver" in whole[1] and "thethe" in whole[3]
    for words in (1, 3):
        monkeypatch.setattr(v, "_CHUNK_WORDS", words)
        assert v.text_candidates(texts).to_pylist() == whole
        assert v.text_candidates(texts.slice(5, 7)).to_pylist() == whole[5:12]
    vocab = pa.array(["catchingafish", "rápido"])
    assert v.text_candidates(texts, vocab).to_pylist()[:6] == [[], ["catchingafish"], None, [], [], ["rápido"]]


# --- provenance columns (--keep-columns) -------------------------------------------------


def _with_provenance(path: Path, n: int) -> tuple[Path, dict]:
    """A videos table (as fetch writes one) with licence, uploader, bytes and fetched_at columns."""
    import datetime

    tags = [["#CatchingFish"] if i % 3 else (["playingguitar"] if i % 2 else ["love"]) for i in range(n)]
    table = pa.table(
        {
            "video_id": [f"v{i}" for i in range(n)],
            "uri": [f"/files/v{i}.mp4" for i in range(n)],
            "hashtags": pa.array(tags, pa.list_(pa.string())),
            "licence": [None if i % 7 == 0 else f"CC-BY-{i % 4}" for i in range(n)],
            "uploader": [f"user{i}" for i in range(n)],
            "bytes": pa.array([10 * i for i in range(n)], pa.int64()),
            "fetched_at": pa.array([datetime.datetime(2024, 1, 1, 0, 0, i % 60) for i in range(n)], pa.timestamp("us")),
        }
    )
    pq.write_table(table, path, row_group_size=11)
    return path, {r["video_id"]: r for r in table.to_pylist()}


def test_keep_columns_carry_provenance_into_the_manifest(tmp_path, labels):
    videos, rows = _with_provenance(tmp_path / "v.parquet", 90)
    keep = ("licence", "bytes", "fetched_at")
    summary, table = _run(tmp_path, videos, labels, min_videos=1, batch_size=16, keep_columns=keep)
    plain_summary, plain = _run(tmp_path, videos, labels, name="plain", min_videos=1, batch_size=16)
    assert table.column_names == plain.column_names + list(keep)  # after the schema's columns
    assert table.select(plain.column_names).equals(plain)  # the rest unchanged
    assert table.schema.field("fetched_at").type == pa.timestamp("us")
    assert table.num_rows == summary["in_manifest"] > 0
    for r in table.to_pylist():
        assert {k: r[k] for k in keep} == {k: rows[r["video_id"]][k] for k in keep}
    assert summary["keep_columns"] == list(keep) and "keep_columns" not in plain_summary
    # a CSV (read through the staging path) carries its columns too
    csv = tmp_path / "v.csv"
    lines = ["video_id,uri,hashtags,licence"] + [
        f"c{i},/f/c{i}.mp4,{'#catchfish' if i % 2 else '#playguitar'},{'' if i == 3 else f'CC0-{i}'}" for i in range(30)
    ]
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _, table = _run(tmp_path, csv, labels, name="csv", min_videos=1, batch_size=4, keep_columns=("licence",))
    got = dict(zip(table.column("video_id").to_pylist(), table.column("licence").to_pylist()))
    assert len(got) == 30 and got["c3"] is None and all(got[f"c{i}"] == f"CC0-{i}" for i in range(30) if i != 3)


def test_keep_columns_through_the_cli_and_bad_names_exit_2(tmp_path, labels):
    videos, rows = _with_provenance(tmp_path / "v.parquet", 30)
    out = tmp_path / "m.parquet"
    args = ["match", "--videos", str(videos), "--labels", str(labels), "--out", str(out), "--min-videos", "1"]
    r = runner.invoke(app, [*args, "--keep-columns", " uploader, licence "])
    assert r.exit_code == 0, r.output
    table = pq.read_table(out)
    assert table.column_names[-2:] == ["uploader", "licence"]
    assert all(r["uploader"] == rows[r["video_id"]]["uploader"] for r in table.to_pylist())
    out.unlink()
    assert_input_error(
        runner.invoke(app, [*args, "--keep-columns", "licence,caption"]), "v.parquet", "'caption'", "--keep-columns"
    )
    assert not out.exists()
    assert_input_error(runner.invoke(app, [*args, "--keep-columns", "uri"]), "'uri'", "--keep-columns")
    assert_input_error(runner.invoke(app, [*args, "--keep-columns", "licence,licence"]), "'licence'", "twice")
    assert not out.exists()


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_an_empty_uri_is_rejected_like_a_null_one(tmp_path, labels, suffix):
    """fetch leaves uri empty for a row it could not download: match rejects it, whatever the format."""
    rows = [("a", "ua", ["catchfish"]), ("b", "", ["catchfish"]), ("c", "uc", ["catchfish"])]
    videos = _videos(tmp_path / "v.parquet", rows)
    if suffix == ".csv":  # an empty CSV field reads as null
        videos = tmp_path / "v.csv"
        videos.write_text("video_id,uri,hashtags\n" + "".join(f"{v},{u},#{h[0]}\n" for v, u, h in rows))
    summary, manifest = _run(tmp_path, videos, labels, min_videos=1)
    rejects = pq.read_table(tmp_path / "manifest.rejects.parquet").to_pylist()
    reason = "empty uri" if suffix == ".parquet" else "null uri"
    assert [(r["video_id"], r["reason"]) for r in rejects] == [("b", reason)]
    assert sorted(manifest.column("video_id").to_pylist()) == ["a", "c"] and summary["accounted"]
