"""`weaksup label-audit`: tag shares (checked by brute force), contact sheets (size and pixels), summary, bad input."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import assert_input_error, rows
from matplotlib.image import imread

from weaksup.assembly.audit import (
    CAPTION_CHARS,
    CAPTION_TAG_LINES,
    COLUMNS,
    UNREADABLE_GREY,
    LabelAuditConfig,
    _caption,
    audit_labels,
    format_share,
    slug,
)
from weaksup.synth.video import write_video
from weaksup.tables import write_table

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 160, 0)


def solid_video(path: Path, rgb: tuple[int, int, int]) -> str:
    """A 1 s, 16-frame, 64x48 video of one colour."""
    write_video(path, np.tile(np.array(rgb, np.uint8), (16, 48, 64, 1)))
    return str(path)


def write_manifest(path: Path, videos: list[dict]) -> Path:
    """A manifest table from rows of video_id, uri, label_id, label and (optionally) matched_hashtags."""
    data = {
        "video_id": [v["video_id"] for v in videos],
        "uri": [v["uri"] for v in videos],
        "label_id": [v["label_id"] for v in videos],
        "label": [v["label"] for v in videos],
        "matched_label_ids": [[v["label_id"]] for v in videos],
    }
    if all("matched_hashtags" in v for v in videos):
        data["matched_hashtags"] = pa.array([v["matched_hashtags"] for v in videos], pa.list_(pa.string()))
    write_table("manifest", data, path)
    return path


def colour_pixels(image: np.ndarray, rgb: tuple[float, float, float], tol: float = 0.12) -> int:
    """Pixels of ``image`` (imread: floats in [0, 1]) within ``tol`` of ``rgb`` (0-1) on every channel."""
    return int((np.abs(image[..., :3] - np.asarray(rgb)) <= tol).all(axis=-1).sum())


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, list[dict]]:
    """Two labels: bowling (a red video, a green one, an undecodable file) and surfing
    (a blue video, a missing file, a video with no matched hashtags)."""
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video")
    videos = [
        {
            "video_id": "red",
            "uri": solid_video(tmp_path / "red.mp4", RED),
            "label_id": 0,
            "label": "bowling",
            "matched_hashtags": ["bowling", "bowl"],
        },
        {
            "video_id": "green",
            "uri": solid_video(tmp_path / "green.mp4", GREEN),
            "label_id": 0,
            "label": "bowling",
            "matched_hashtags": ["bowl", "bowl"],
        },  # a repeat inside one video counts once
        {"video_id": "broken", "uri": str(broken), "label_id": 0, "label": "bowling", "matched_hashtags": ["bowl"]},
        {
            "video_id": "blue",
            "uri": solid_video(tmp_path / "blue.mp4", BLUE),
            "label_id": 3,
            "label": "surfing (sport)",
            "matched_hashtags": ["surfing"],
        },
        {
            "video_id": "gone",
            "uri": str(tmp_path / "missing.mp4"),
            "label_id": 3,
            "label": "surfing (sport)",
            "matched_hashtags": ["surf", "surfing"],
        },
        {
            "video_id": "quiet",
            "uri": str(tmp_path / "blue.mp4"),
            "label_id": 3,
            "label": "surfing (sport)",
            "matched_hashtags": None,
        },
    ]
    return write_manifest(tmp_path / "manifest.parquet", videos), videos


def brute_force_shares(videos: list[dict]) -> list[dict]:
    per_label = Counter(v["label_id"] for v in videos)
    names = {v["label_id"]: v["label"] for v in videos}
    tagged = Counter((v["label_id"], t) for v in videos for t in set(v["matched_hashtags"] or ()))
    out = []
    for label_id in sorted(per_label):
        tags = sorted(((-n, t) for (lab, t), n in tagged.items() if lab == label_id))
        for rank, (neg, tag) in enumerate(tags, start=1):
            out.append(
                {
                    "label_id": label_id,
                    "label": names[label_id],
                    "hashtag": tag,
                    "videos": -neg,
                    "share": -neg / per_label[label_id],
                    "rank": rank,
                }
            )
    return out


def test_tag_shares_sheets_and_summary(cli, corpus, tmp_path):
    manifest, videos = corpus
    out = tmp_path / "audit"
    result = cli("label-audit", "--manifest", manifest, "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output

    assert rows(out / "tag_shares.parquet") == brute_force_shares(videos)

    summary = json.loads((out / "summary.json").read_text())
    assert (summary["labels"], summary["videos"], summary["tags"], summary["sheets_written"]) == (2, 6, 4, 2)
    assert summary["unreadable_videos"] == 2
    assert {u["video_id"] for u in summary["unreadable"]} == {"broken", "gone"}
    assert summary["videos_without_matched_hashtags"] == 1
    per_label = {r["label"]: r for r in summary["per_label"]}
    assert per_label["bowling"]["top_tags"] == [
        {"hashtag": "bowl", "videos": 3, "share": 1.0},
        {"hashtag": "bowling", "videos": 1, "share": round(1 / 3, 4)},
    ]
    assert per_label["surfing (sport)"]["top_tags"][0] == {"hashtag": "surfing", "videos": 2, "share": round(2 / 3, 4)}
    assert summary["outputs"]["tag_shares"] == str(out / "tag_shares.parquet")

    bowling = out / "contact_sheets" / "0_bowling.png"
    surfing = out / "contact_sheets" / "3_surfing_sport.png"
    assert per_label["bowling"]["sheet"] == str(bowling) and per_label["surfing (sport)"]["sheet"] == str(surfing)
    for sheet in (bowling, surfing):
        image = imread(sheet)
        assert image.shape[1] >= 1200, image.shape
    # One tile is 3.84 x 2.9 in at 100 dpi: a 4:3 frame fills about 380 x 285 px of its colour.
    tile_px = 300 * 200
    bowl, surf = imread(bowling), imread(surfing)
    assert colour_pixels(bowl, (1, 0, 0)) > tile_px
    assert colour_pixels(bowl, (0, 160 / 255, 0)) > tile_px
    assert colour_pixels(bowl, UNREADABLE_GREY, tol=0.02) > tile_px  # the undecodable file's grey tile
    assert colour_pixels(bowl, (0, 0, 1)) == 0
    assert colour_pixels(surf, (0, 0, 1)) > 2 * tile_px  # blue, and "quiet" (the same file)
    assert colour_pixels(surf, UNREADABLE_GREY, tol=0.02) > tile_px  # the missing file
    assert colour_pixels(surf, (1, 0, 0)) == 0
    assert "label-audit" in result.output and "unreadable videos" in result.output


def test_sample_is_reproducible_order_free_and_nested(tmp_path):
    """The N shown videos depend on (seed, video_id) only: not on row order or batch size; N=3 is in N=5."""
    videos = [
        {
            "video_id": f"v{i:02d}",
            "uri": str(tmp_path / f"missing{i}.mp4"),
            "label_id": i % 2,
            "label": f"l{i % 2}",
            "matched_hashtags": [f"t{i % 3}"],
        }
        for i in range(20)
    ]

    def shown(vids: list[dict], n: int, seed: int, batch_size: int, name: str) -> dict[int, set[str]]:
        manifest = write_manifest(tmp_path / f"{name}.parquet", vids)
        result = audit_labels(
            LabelAuditConfig(
                manifest=manifest,
                out=tmp_path / name,
                videos_per_label=n,
                seed=seed,
                progress=False,
                batch_size=batch_size,
            )
        )
        assert [r["shown"] for r in result.summary["per_label"]] == [n, n]
        assert result.summary["unreadable_videos"] == 2 * n  # every uri is missing: grey tiles, no error
        picked: dict[int, set[str]] = {}
        for u in result.summary["unreadable"]:
            picked.setdefault(u["label_id"], set()).add(u["video_id"])
        return picked

    first = shown(videos, 5, 7, 1 << 18, "a")
    shuffled = videos[:]
    random.Random(1).shuffle(shuffled)
    assert shown(shuffled, 5, 7, 3, "b") == first
    smaller = shown(videos, 3, 7, 4, "c")
    assert all(smaller[k] <= first[k] for k in first)
    other_seeds = [shown(videos, 5, s, 1 << 18, f"s{s}") for s in (1, 2, 3)]
    assert any(o != first for o in other_seeds)


def test_labels_table_keeps_only_the_drawn_labels_tags(tmp_path):
    """With --labels a video's matched hashtags that belong to another label are not counted for its own."""
    write_table(
        "labels",
        {
            "label_id": pa.array([0, 1], pa.int32()),
            "label": ["bowling", "salad"],
            "source": ["user", "user"],
            "source_id": [None, None],
            "canonical": ["bowling", "salad"],
            "aliases": [[], []],
            "hashtags": [["bowling", "bowl"], ["salad", "saladbowl"]],
        },
        tmp_path / "labels.parquet",
    )
    videos = [
        {"video_id": "a", "uri": "x.mp4", "label_id": 0, "label": "bowling", "matched_hashtags": ["bowl", "saladbowl"]},
        {
            "video_id": "b",
            "uri": "x.mp4",
            "label_id": 1,
            "label": "salad",
            "matched_hashtags": ["saladbowl", "nothing"],
        },
    ]
    manifest = write_manifest(tmp_path / "m.parquet", videos)
    audit_labels(
        LabelAuditConfig(manifest=manifest, out=tmp_path / "with", labels=tmp_path / "labels.parquet", progress=False)
    )
    got = {(r["label"], r["hashtag"]): r["share"] for r in rows(tmp_path / "with" / "tag_shares.parquet")}
    assert got == {("bowling", "bowl"): 1.0, ("salad", "saladbowl"): 1.0}
    audit_labels(LabelAuditConfig(manifest=manifest, out=tmp_path / "without", progress=False))
    assert (
        len(rows(tmp_path / "without" / "tag_shares.parquet")) == 4
    )  # every matched tag, attributed to the drawn label


def test_bad_inputs_are_one_line(cli, tmp_path):
    ok = write_manifest(
        tmp_path / "m.parquet",
        [{"video_id": "a", "uri": "x.mp4", "label_id": 0, "label": "bowling", "matched_hashtags": ["bowl"]}],
    )
    old = tmp_path / "old.parquet"  # a manifest from before match wrote matched_hashtags
    pq.write_table(pq.read_table(ok).drop_columns(["matched_hashtags"]), old)
    nulls = write_manifest(tmp_path / "nulls.parquet", [{"video_id": "a", "uri": "x.mp4", "label_id": 0, "label": "b"}])
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    write_table(
        "labels",
        {
            "label_id": pa.array([0], pa.int32()),
            "label": ["surfing"],
            "source": ["user"],
            "source_id": [None],
            "canonical": ["surfing"],
            "aliases": [[]],
            "hashtags": [["surfing"]],
        },
        tmp_path / "other_labels.parquet",
    )
    out = tmp_path / "out"
    cases = [
        (("--manifest", tmp_path / "nope.parquet", "--out", out), ("nope.parquet", "file not found")),
        (("--manifest", old, "--out", out), ("old.parquet", "rerun match to get matched_hashtags")),
        (("--manifest", old, "--out", out, "--labels", tmp_path / "other_labels.parquet"), ("rerun match",)),
        (("--manifest", nulls, "--out", out), ("nulls.parquet", "null in every row", "rerun match")),
        (("--manifest", ok, "--out", out, "--videos-per-label", 0), ("--videos-per-label 0", "at least 1")),
        (("--manifest", ok, "--out", a_file), ("a_file", "not a directory")),
        (
            ("--manifest", ok, "--out", out, "--labels", tmp_path / "other_labels.parquet"),
            ("other_labels.parquet", "'surfing' there but 'bowling'"),
        ),
        (("--manifest", a_file, "--out", out), ("a_file", "not a readable Parquet file")),
    ]
    for args, needles in cases:
        assert_input_error(cli("label-audit", *args, "--no-progress"), *needles)
    assert not out.exists()


def test_helpers():
    assert slug("Bowling (Ten-Pin)") == "bowling_ten_pin" and slug("café") == "cafe" and slug("???") == "label"
    assert [format_share(s) for s in (0.625, 0.045, 0.0004, 0.0)] == ["62%", "4.5%", "<0.1%", "0%"]
    assert COLUMNS >= 1
    caption = _caption("vid", [f"hashtag{i}" for i in range(40)], None).splitlines()
    assert caption[0] == "vid" and len(caption) == 1 + CAPTION_TAG_LINES and caption[-1].endswith("more)")
    assert all(len(line) <= CAPTION_CHARS for line in caption)
    assert _caption("vid", [], "file not found").splitlines() == ["vid", "unreadable: file not found"]


def test_folder_of_parts_counts_like_one_file(tmp_path):
    """A partitioned match's manifest folder (part-*.parquet) gives the same tag shares as one file."""
    videos = [
        {
            "video_id": f"v{i}",
            "uri": "missing.mp4",
            "label_id": i % 3,
            "label": f"l{i % 3}",
            "matched_hashtags": [f"t{i % 4}", f"t{i % 5}"],
        }
        for i in range(30)
    ]
    whole = write_manifest(tmp_path / "whole.parquet", videos)
    (tmp_path / "parts").mkdir()
    write_manifest(tmp_path / "parts" / "part-00000.parquet", videos[:11])
    write_manifest(tmp_path / "parts" / "part-00001.parquet", videos[11:])
    for manifest, out in ((whole, "a"), (tmp_path / "parts", "b")):
        audit_labels(LabelAuditConfig(manifest=manifest, out=tmp_path / out, videos_per_label=2, progress=False))
    assert (
        rows(tmp_path / "a" / "tag_shares.parquet")
        == rows(tmp_path / "b" / "tag_shares.parquet")
        == brute_force_shares(videos)
    )
