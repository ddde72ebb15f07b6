"""synth-corpus: determinism, decodable files, Zipf and hashtag-noise statistics, motion
that a video shows and a frame does not, planted copies, resumable reruns, the CLI."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from pathlib import Path

import av
import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import assert_input_error

from weaksup.errors import InputError
from weaksup.labels.hashtags import canonical_label, normalize_hashtag, relevant_hashtags
from weaksup.synth.corpus import (
    CLASS_NAMES,
    CLASSES,
    TRANSFORMS,
    SynthCorpusConfig,
    draw_clip,
    draw_corpus_plan,
    noise_vocabulary,
    render_clip,
    synth_corpus,
    validate_config,
    video_frames,
)
from weaksup.tables import read_table


def small_config(out: Path, **changes) -> SynthCorpusConfig:
    cfg = SynthCorpusConfig(
        out=out,
        n_videos=40,
        n_classes=4,
        max_duration_s=12.0,
        partial_action_after_s=6.0,
        target_min_duration_s=2.0,
        target_max_duration_s=4.0,
        n_target_train_per_class=2,
        n_target_test_per_class=2,
        n_planted=len(TRANSFORMS),
        workers=0,
    )
    return replace(cfg, **changes)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[SynthCorpusConfig, dict]:
    cfg = small_config(tmp_path_factory.mktemp("corpus") / "c")
    return cfg, synth_corpus(cfg, progress=False)


@pytest.fixture(scope="module")
def big_plan():
    """Metadata of thousands of videos, for frequency statistics (nothing is encoded)."""
    cfg = SynthCorpusConfig(out=Path("unused"), n_videos=5000, n_classes=6, n_planted=0, seed=3)
    return cfg, draw_corpus_plan(cfg)


def decode(uri: str) -> tuple[np.ndarray, float]:
    with av.open(uri) as container:
        stream = container.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        return frames, float(stream.average_rate)


def rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def labels_in(tags: list[str], classes: int) -> set[int]:
    """Classes whose relevant hashtags a video's tags include (as match normalises them)."""
    normalised = {normalize_hashtag(t) for t in tags}
    return {i for i in range(classes) if normalised & set(relevant_hashtags(CLASS_NAMES[i]))}


# ----------------------------------------------------------------------------- outputs


def test_tables_and_files(corpus):
    cfg, summary = corpus
    out = cfg.out
    videos = read_table("videos", out / "videos.parquet").to_pylist()
    truth = {r["video_id"]: r for r in rows(out / "truth.parquet")}
    assert len(videos) == cfg.n_videos + cfg.n_planted == summary["web_videos"]
    assert set(truth) == {v["video_id"] for v in videos}
    assert (out / "labels.txt").read_text().splitlines() == list(CLASS_NAMES[: cfg.n_classes])
    for v in videos:
        path = Path(v["uri"])
        assert path.is_file() and path.parent == (out / "videos").resolve()
        t = truth[v["video_id"]]
        assert t["duration_s"] == pytest.approx(v["duration_s"])
        assert 0 <= t["action_start_s"] < t["action_end_s"] <= t["duration_s"] + 1e-9
        assert t["label"] == CLASS_NAMES[t["label_id"]]
    assert sorted(set(p.name for p in (out / "videos").iterdir())) == sorted(Path(v["uri"]).name for v in videos)

    for split, per_class in (("train", cfg.n_target_train_per_class), ("test", cfg.n_target_test_per_class)):
        manifest = read_table("manifest", out / "target" / f"{split}.parquet").to_pylist()
        assert Counter(r["label_id"] for r in manifest) == {c: per_class for c in range(cfg.n_classes)}
        for r in manifest:
            assert r["label"] == CLASS_NAMES[r["label_id"]] and r["matched_label_ids"] == [r["label_id"]]
            assert cfg.target_min_duration_s - 0.1 <= r["duration_s"] <= cfg.target_max_duration_s + 0.1
            assert Path(r["uri"]).is_file()
    assert summary["target_train"] == cfg.n_classes * cfg.n_target_train_per_class
    assert summary["bytes"] == sum(Path(v["uri"]).stat().st_size for v in videos) + sum(
        Path(r["uri"]).stat().st_size for s in ("train", "test") for r in rows(out / "target" / f"{s}.parquet")
    )


def test_long_videos_show_the_action_in_a_window(corpus):
    cfg, _ = corpus
    truth = [r for r in rows(cfg.out / "truth.parquet") if r["planted_from"] is None]
    long = [r for r in truth if r["duration_s"] > cfg.partial_action_after_s]
    short = [r for r in truth if r["duration_s"] <= cfg.partial_action_after_s]
    assert long and short
    assert all(r["action_end_s"] - r["action_start_s"] < r["duration_s"] - 0.5 for r in long)
    assert all((r["action_start_s"], r["action_end_s"]) == (0.0, pytest.approx(r["duration_s"])) for r in short)


def test_every_file_decodes_with_its_stated_duration(corpus):
    cfg, _ = corpus
    tables = [rows(cfg.out / "videos.parquet")] + [rows(cfg.out / "target" / f"{s}.parquet") for s in ("train", "test")]
    truth = {r["video_id"]: r for r in rows(cfg.out / "truth.parquet")}
    for table in tables:
        for r in table:
            frames, fps = decode(r["uri"])
            assert abs(len(frames) / fps - r["duration_s"]) <= 1 / fps + 1e-6, r["video_id"]
            if r["video_id"] in truth:
                t = truth[r["video_id"]]
                assert frames.shape[1:3] == (t["height"], t["width"]) and len(frames) == t["n_frames"]


def test_same_seed_same_corpus_other_seed_differs(corpus, tmp_path):
    cfg, _ = corpus
    again = replace(cfg, out=tmp_path / "again", workers=2)  # the pool must not change anything
    synth_corpus(again, progress=False)
    for name in ("videos.parquet", "truth.parquet", "planted.parquet", "target/test.parquet"):
        a, b = pq.read_table(cfg.out / name), pq.read_table(again.out / name)
        if "uri" in a.column_names:
            assert [Path(u).name for u in a.column("uri").to_pylist()] == [
                Path(u).name for u in b.column("uri").to_pylist()
            ]
            a, b = a.drop_columns(["uri"]), b.drop_columns(["uri"])
        assert a.equals(b), name
    first = rows(cfg.out / "videos.parquet")[0]["uri"]
    np.testing.assert_array_equal(decode(first)[0], decode(str(again.out / "videos" / Path(first).name))[0])

    other = draw_corpus_plan(replace(cfg, seed=cfg.seed + 1))
    plan = draw_corpus_plan(cfg)
    assert [v.hashtags for v in other.web] != [v.hashtags for v in plan.web]
    assert other.web[0].file_name != plan.web[0].file_name
    assert not np.array_equal(render_clip(other.target[0].clip), render_clip(plan.target[0].clip))


def test_rerun_skips_finished_files_and_redoes_broken_ones(corpus, tmp_path):
    cfg, _ = corpus
    run = replace(cfg, out=tmp_path / "c", n_videos=12, n_planted=2)
    first = synth_corpus(run, progress=False)
    assert first["encoded"] == first["files"]
    truth_before = pq.read_table(run.out / "truth.parquet")
    files = sorted((run.out / "videos").iterdir())
    files[0].unlink()
    files[1].write_bytes(files[1].read_bytes()[:200])  # a truncated file is not "already there"
    second = synth_corpus(run, progress=False)
    assert (second["encoded"], second["skipped"]) == (2, first["files"] - 2)
    assert pq.read_table(run.out / "truth.parquet").equals(truth_before)
    decode(str(files[1]))

    # another config into the same folder: files of the old one go, tables describe the new one
    third = synth_corpus(replace(run, n_videos=6, seed=9), progress=False)
    assert third["stale_removed"] > 0
    uris = {Path(r["uri"]).name for r in rows(run.out / "videos.parquet")}
    assert {p.name for p in (run.out / "videos").iterdir()} == uris


def test_planted_copies_are_transformed_target_test_videos(corpus):
    cfg, summary = corpus
    planted = rows(cfg.out / "planted.parquet")
    assert summary["planted"] == len(planted) == cfg.n_planted
    assert sorted(p["transform"] for p in planted) == sorted(TRANSFORMS)
    truth = {r["video_id"]: r for r in rows(cfg.out / "truth.parquet")}
    videos = {r["video_id"]: r for r in rows(cfg.out / "videos.parquet")}
    test = {r["video_id"]: r for r in rows(cfg.out / "target" / "test.parquet")}
    plan = {v.video_id: v for v in draw_corpus_plan(cfg).web}
    for p in planted:
        web, target = p["web_video_id"], test[p["target_video_id"]]
        t = truth[web]
        assert (t["planted_from"], t["transform"], t["hashtags_noise"]) == (
            target["video_id"],
            p["transform"],
            "planted",
        )
        assert labels_in(videos[web]["hashtags"], cfg.n_classes) == {target["label_id"]}  # tagged as the target's class
        mirrored = {0: 1, 1: 0}.get(target["label_id"], target["label_id"])
        assert t["label_id"] == (mirrored if p["transform"] == "hflip" else target["label_id"])

        copy, _ = decode(videos[web]["uri"])
        source, _ = decode(target["uri"])
        spec = plan[web].plant
        expected = {
            "rescale": lambda f: np.stack(
                [cv2.resize(x, (copy.shape[2], copy.shape[1]), interpolation=cv2.INTER_AREA) for x in f]
            ),
            "reencode": lambda f: f[::2],
            "hflip": lambda f: f[:, :, ::-1],
            "crop": lambda f: f[
                :,
                spec.crop_box[1] : spec.crop_box[1] + spec.crop_box[3],
                spec.crop_box[0] : spec.crop_box[0] + spec.crop_box[2],
            ],
            "colour": lambda f: np.clip(f * np.asarray(spec.gains, np.float32) + spec.offset, 0, 255),
            "trim": lambda f: f[spec.trim[0] : spec.trim[1]],
            "embed": lambda f: np.stack([cv2.resize(x, (copy.shape[2], copy.shape[1])) for x in f]),
        }[p["transform"]](source)
        if p["transform"] == "embed":
            start = round(t["action_start_s"] * t["fps"])
            assert round(t["action_end_s"] * t["fps"]) - start == len(source)
            copy = copy[start : start + len(source)]
        assert copy.shape == expected.shape
        error = np.abs(copy.astype(np.float32) - expected).mean()
        unrelated = np.abs(copy[:1].astype(np.float32) - np.flip(expected[:1], axis=(1, 2))).mean()
        assert error < 10 and error < unrelated / 2, (p["transform"], error, unrelated)


# ----------------------------------------------------------------------------- statistics


def test_class_frequencies_follow_zipf_by_rank(big_plan):
    cfg, plan = big_plan
    counts = np.bincount([v.label_id for v in plan.web], minlength=cfg.n_classes)
    probs = np.asarray(plan.class_probs)
    by_rank = np.argsort(-probs)
    assert np.all(np.diff(counts[by_rank]) < 0), counts[by_rank]
    expected = probs * cfg.n_videos
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))
    ratios = np.sort(probs)[::-1] / probs.max()
    np.testing.assert_allclose(ratios, 1 / np.arange(1, cfg.n_classes + 1) ** cfg.zipf_exponent)
    assert by_rank[0] != 0 or by_rank[1] != 1  # the ranking is a seeded permutation, not the class order
    flat = draw_corpus_plan(replace(cfg, zipf_exponent=0.0, n_videos=600))
    assert max(flat.class_probs) == pytest.approx(min(flat.class_probs))


def test_hashtag_noise_rates_and_kinds(big_plan):
    cfg, plan = big_plan
    n = len(plan.web)
    kinds = Counter(v.hashtags_noise for v in plan.web)
    clean_rate = 1 - cfg.missing_tag_rate - cfg.wrong_tag_rate - cfg.second_label_rate
    for kind, rate in (
        ("missing", cfg.missing_tag_rate),
        ("wrong_label", cfg.wrong_tag_rate),
        ("extra_label", cfg.second_label_rate),
        ("clean", clean_rate),
    ):
        assert abs(kinds[kind] / n - rate) < 4 * math.sqrt(rate * (1 - rate) / n), (kind, kinds[kind] / n)

    vocab = {normalize_hashtag(w) for w in noise_vocabulary(cfg)}
    extras = []
    for v in plan.web:
        found = labels_in(list(v.hashtags), cfg.n_classes)
        assert found == set(v.tagged_label_ids), v
        expected = {
            "missing": set(),
            "clean": {v.label_id},
        }.get(v.hashtags_noise)
        if expected is not None:
            assert found == expected
        elif v.hashtags_noise == "wrong_label":
            assert len(found) == 1 and v.label_id not in found
        else:
            assert len(found) == 2 and v.label_id in found
        extras.append(sum(normalize_hashtag(t) in vocab for t in v.hashtags))
    assert 0.85 * cfg.noise_tags_mean < np.mean(extras) <= cfg.noise_tags_mean + 0.1
    assert np.mean(np.asarray(extras) > 0) > 0.6  # many videos carry unrelated tags
    assert any(t[0].isupper() for v in plan.web for t in v.hashtags)  # tags as posted, not normalised


def test_class_names_give_distinct_hashtags():
    tags = [set(relevant_hashtags(name)) for name in CLASS_NAMES]
    assert all(tags) and len({canonical_label(n) for n in CLASS_NAMES}) == len(CLASS_NAMES)
    for i in range(len(tags)):
        for j in range(i + 1, len(tags)):
            assert not tags[i] & tags[j], (CLASS_NAMES[i], CLASS_NAMES[j])
    vocab = {normalize_hashtag(w) for w in noise_vocabulary(SynthCorpusConfig(out=Path("x")))}
    assert len(vocab) > 200 and not vocab & set().union(*tags)
    assert {"fun", "summer", "love"} <= vocab


def test_build_labels_and_match_recover_the_tagged_classes(corpus, cli, tmp_path):
    cfg, _ = corpus
    labels = tmp_path / "labels.parquet"
    result = cli("build-labels", "--source", "file", "--labels-file", cfg.out / "labels.txt", "--out", labels)
    assert result.exit_code == 0, result.output
    assert [r["label"] for r in rows(labels)] == list(CLASS_NAMES[: cfg.n_classes])
    manifest = tmp_path / "manifest.parquet"
    result = cli(
        "match", "--videos", cfg.out / "videos.parquet", "--labels", labels, "--out", manifest, "--min-videos", 1
    )
    assert result.exit_code == 0, result.output
    truth = {r["video_id"]: r for r in rows(cfg.out / "truth.parquet")}
    matched = {r["video_id"]: r["matched_label_ids"] for r in rows(manifest)}
    names = [r["label"] for r in rows(labels)]
    for vid, t in truth.items():
        if t["hashtags_noise"] == "missing":
            assert vid not in matched
        else:
            assert sorted(names.index(CLASS_NAMES[i]) for i in t["tagged_label_ids"]) == matched[vid]


# ----------------------------------------------------------------------------- motion


def object_track(frames: np.ndarray, colour: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame centroid (x, y) and area of the pixels of the object's colour (NaN unless fully in view)."""
    distance = np.linalg.norm(frames.astype(np.float32) - np.asarray(colour, np.float32), axis=-1)
    mask = distance < 60
    area = mask.sum(axis=(1, 2)).astype(np.float64)
    ys, xs = np.mgrid[0 : frames.shape[1], 0 : frames.shape[2]]
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = np.stack([(mask * xs).sum((1, 2)) / area, (mask * ys).sum((1, 2)) / area], 1)
    centre[area < max(6, 0.8 * area.max())] = np.nan  # hidden, or partly out of the frame
    return centre, area


def clips_of(classes: list[int], per_class: int, seconds: float = 1.5):
    for c in classes:
        for j in range(per_class):
            rng = np.random.default_rng([77, c, j])
            n = round(seconds * 12)
            yield c, draw_clip(rng, CLASSES[c], domain="web", width=80, height=64, fps=12.0, n_frames=n, action=(0, n))


def nearest_mean_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out accuracy of a nearest-class-mean classifier on standardised features."""
    x = (features - features.mean(0)) / (features.std(0) + 1e-9)
    hits = 0
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        means = np.stack([x[keep & (labels == c)].mean(0) for c in np.unique(labels)])
        hits += np.unique(labels)[np.argmin(((means - x[i]) ** 2).sum(1))] == labels[i]
    return hits / len(x)


def test_motion_tells_the_class_a_single_frame_does_not():
    """Left, right, up, down: the track's direction classifies; one frame's statistics do not."""
    motion, still, labels = [], [], []
    for c, clip in clips_of([0, 1, 2, 3], 24):
        frames = render_clip(clip)
        centre, area = object_track(frames, clip.colour)
        step = np.nanmedian(np.diff(centre, axis=0), axis=0)
        motion.append(step)
        mid = frames[len(frames) // 2].astype(np.float32)
        still.append(
            np.concatenate(
                [
                    mid.mean((0, 1)),
                    mid.std((0, 1)),
                    np.nan_to_num(centre[len(frames) // 2], nan=-1),
                    [area[len(frames) // 2]],
                ]
            )
        )
        labels.append(c)
    motion, labels = np.asarray(motion), np.asarray(labels)
    expected_sign = {0: (0, -1), 1: (0, 1), 2: (1, -1), 3: (1, 1)}  # (axis, sign): left, right, up, down
    for step, c in zip(motion, labels):
        axis, sign = expected_sign[c]
        assert np.sign(step[axis]) == sign and abs(step[axis]) > 3 * abs(step[1 - axis]), (CLASS_NAMES[c], step)
    assert nearest_mean_accuracy(motion, labels) > 0.95
    assert nearest_mean_accuracy(np.asarray(still), labels) < 0.45  # chance is 0.25


def test_zoom_and_spin_classes():
    for c, clip in clips_of([8, 9], 8, seconds=1.0):
        _, area = object_track(render_clip(clip), clip.colour)
        growing = np.mean(np.diff(area) > 0)
        assert growing > 0.6 if CLASS_NAMES[c] == "zooming in" else growing < 0.4, (CLASS_NAMES[c], area)
    for c, clip in clips_of([4, 5], 8):
        turns = np.median(turn_per_frame(render_clip(clip), clip.colour, clip.position))
        expected = 1 if CLASS_NAMES[c] == "spinning clockwise" else -1
        assert turns * expected > 2.5, (CLASS_NAMES[c], clip.shape, turns)  # drawn at about 17 degrees a frame


def turn_per_frame(frames: np.ndarray, colour: tuple[int, int, int], centre: tuple[float, float]) -> np.ndarray:
    """Degrees the object turns between frames (clockwise on screen positive), from its pixels' angles."""
    ys, xs = np.mgrid[0 : frames.shape[1], 0 : frames.shape[2]]
    angle = np.degrees(np.arctan2(ys - centre[1], xs - centre[0])) % 360
    weight = (xs - centre[0]) ** 2 + (ys - centre[1]) ** 2  # the tips of the shape say most
    profiles = []
    for frame in frames:
        mask = np.linalg.norm(frame.astype(np.float32) - np.asarray(colour, np.float32), axis=-1) < 60
        profile = np.histogram(angle[mask], bins=72, range=(0, 360), weights=weight[mask])[0]
        profile = sum(np.roll(profile, k) * w for k, w in ((-2, 1), (-1, 2), (0, 3), (1, 2), (2, 1)))  # smoothed
        profiles.append(profile - profile.mean())  # a disc is all mean but for its dark radius
    shifts = range(-8, 9)  # 5-degree bins; turns beyond 40 degrees a frame alias with the shapes' symmetry
    best = [max(shifts, key=lambda s: float(np.dot(b, np.roll(a, s)))) for a, b in zip(profiles, profiles[1:])]
    return np.asarray(best) * 5.0


def test_object_rests_outside_the_action_window():
    rng = np.random.default_rng(5)
    clip = draw_clip(rng, CLASSES[0], domain="web", width=80, height=64, fps=12.0, n_frames=100, action=(40, 60))
    clip = replace(clip, position=(60.0, 32.0), rate=22.0, idle="jitter")
    centre, _ = object_track(render_clip(clip), clip.colour)
    for part in (centre[:40], centre[60:]):
        assert not np.isnan(part).any()
        assert np.abs(part - np.median(part, axis=0)).max() <= 1.6  # still, up to the pixel of jitter
    assert np.median(np.diff(centre[40:60, 0])) < -1
    assert centre[60:, 0].mean() < centre[:40, 0].mean() - 25


# ----------------------------------------------------------------------------- CLI and bad input


def test_cli_writes_a_corpus(cli, tmp_path):
    out = tmp_path / "corpus"
    result = cli(
        "synth-corpus",
        "--out",
        out,
        "--num-videos",
        6,
        "--classes",
        2,
        "--max-duration",
        3,
        "--target-train",
        1,
        "--target-test",
        1,
        "--planted",
        1,
        "--workers",
        0,
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    assert "synth-corpus" in result.output
    for name in (
        "videos.parquet",
        "truth.parquet",
        "planted.parquet",
        "labels.txt",
        "summary.json",
        "target/train.parquet",
        "target/test.parquet",
    ):
        assert (out / name).is_file(), name
    assert len(rows(out / "videos.parquet")) == 7 and len(list((out / "videos").iterdir())) == 7


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--num-videos", "0"], "n_videos"),
        (["--classes", "13"], "n_classes"),
        (["--min-duration", "10", "--max-duration", "5"], "min_duration_s"),
        (["--planted", "1000"], "n_planted"),
        (["--missing-tag-rate", "0.8", "--wrong-tag-rate", "0.5"], "noise rates"),
        (["--fps", "0"], "fps"),
    ],
)
def test_cli_bad_config_exits_2(cli, tmp_path, args, needle):
    assert_input_error(cli("synth-corpus", "--out", tmp_path / "c", "--no-progress", *args), "synth-corpus", needle)
    assert not (tmp_path / "c").exists()


def test_out_must_be_a_folder(cli, tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    assert_input_error(cli("synth-corpus", "--out", path, "--num-videos", 2, "--no-progress"), "not a folder")
    with pytest.raises(InputError, match="width"):
        validate_config(SynthCorpusConfig(out=tmp_path, width=33))


# ----------------------------------------------------------------------------- a target with its own classes


def test_target_with_its_own_classes(tmp_path):
    from weaksup.synth.corpus import DIAGONALS, object_pose

    cfg = small_config(tmp_path / "c", target_classes=DIAGONALS, n_target_test_per_class=3, n_planted=6)
    plan = draw_corpus_plan(cfg)
    assert [c.name for c in plan.target_classes] == list(DIAGONALS)
    assert [c.name for c in plan.classes] == list(CLASS_NAMES[:4])
    # each target video moves along its class's diagonal
    for t in plan.target:
        dx, dy = plan.target_classes[t.label_id].velocity
        x0, y0, _, _ = object_pose(t.clip, 0)
        x1, y1, _, _ = object_pose(t.clip, 1)
        step = (
            (x1 - x0 + t.clip.width / 2) % t.clip.width - t.clip.width / 2,
            (y1 - y0 + t.clip.height / 2) % t.clip.height - t.clip.height / 2,
        )
        assert np.sign(step[0]) == np.sign(dx) and np.sign(step[1]) == np.sign(dy)
    # planted copies are posted with web classes' tags, a fixed stand-in per target class
    planted = [v for v in plan.web if v.plant is not None]
    assert len(planted) == 6 and all(0 <= v.label_id < 4 for v in planted)
    assert all(len(labels_in(list(v.hashtags), 4)) == 1 for v in planted)
    summary = synth_corpus(cfg, progress=False)
    assert summary["target_classes"] == 4 and summary["classes"] == 4
    test = rows(tmp_path / "c" / "target" / "test.parquet")
    assert {r["label"] for r in test} == set(DIAGONALS) and len(test) == 12


@pytest.mark.parametrize(
    "bad, message",
    [
        (("moving sideways", "rising up"), "unknown target class 'moving sideways'"),
        (("rising up", "rising up"), "duplicate"),
        (("rising up",), "at least 2"),
    ],
)
def test_bad_target_classes(tmp_path, bad, message):
    with pytest.raises(InputError, match=message):
        validate_config(small_config(tmp_path, target_classes=bad))


def test_long_videos_cut_into_shots_show_the_action_in_new_scenes(tmp_path):
    cfg = SynthCorpusConfig(
        out=tmp_path,
        n_videos=40,
        n_classes=3,
        n_planted=0,
        min_duration_s=2.0,
        max_duration_s=20.0,
        shot_length_s=4.0,
        n_target_train_per_class=0,
        n_target_test_per_class=0,
    )
    plan = draw_corpus_plan(cfg)
    plain = draw_corpus_plan(replace(cfg, shot_length_s=0.0))
    long = [v for v in plan.web if v.duration_s > cfg.shot_length_s]
    assert long and all(v.shots for v in long) and not any(v.shots for v in plan.web if v not in long)
    for v in long:
        scenes = (v.clip, *v.shots)
        assert len(scenes) == math.ceil(v.duration_s / cfg.shot_length_s - 1e-9)
        assert all(c.action_start == 0 and c.action_end == c.n_frames for c in scenes)  # the action throughout
        assert len({(c.shape, c.colour, c.background) for c in scenes}) == len(scenes)  # each shot a new scene
        assert (v.action_start_s, v.action_end_s) == (0.0, pytest.approx(v.duration_s))
    # the same durations and labels as the one-scene plan; the default plan has no shots
    assert [round(v.duration_s, 3) for v in plan.web] == [round(v.duration_s, 3) for v in plain.web]
    assert [v.label_id for v in plan.web] == [v.label_id for v in plain.web] and not any(v.shots for v in plain.web)
    frames = video_frames(long[0])
    assert len(frames) == long[0].n_frames
    with pytest.raises(InputError, match="shot_length_s"):
        draw_corpus_plan(replace(cfg, shot_length_s=0.01))
