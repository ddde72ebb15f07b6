"""Clip decoding, transforms, datasets and loader (weaksup.data).

Test videos show a bright square that moves two pixels per frame over a fixed texture
(``moving_square_frames``), so every decoded frame says which source frame it is: the
tests check clips frame-exactly, after seeks, across codecs and GOP lengths.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

import weaksup.data.decode_clip as dc
from weaksup.data.dataset import ClipDataset, ClipSpec, EvalClipDataset, collate_skip_none, eval_clips, load_video_table
from weaksup.data.decode_clip import VideoInfo, decode_clip, output_size, read_clip
from weaksup.data.loader import make_loader
from weaksup.data.rejects import read_rejects, write_rejects_parquet
from weaksup.data.transforms import (
    KINETICS_MEAN,
    KINETICS_STD,
    Draw,
    center_crop,
    jitter_start,
    random_crop,
    to_tensor,
    uniform_starts,
)
from weaksup.errors import InputError
from weaksup.synth.video import write_test_video
from weaksup.tables import write_table

REAL_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"

FPS = 16
SECONDS = 6
N_FRAMES = FPS * SECONDS  # 96
W, H = 160, 120  # square side 20, x = 2 * i % 140, y = 3 * (i // 70)
SIDE = 20
PERIOD = (W - SIDE) // 2  # frames per horizontal sweep


def square_index(frame: np.ndarray) -> int:
    """The source frame index a decoded (H, W, 3) test frame shows, read from the square's position."""
    mask = frame.min(axis=2) > 190  # the square is 255; the texture stays below 120
    cols = np.flatnonzero(mask.sum(axis=0) >= SIDE // 4)
    rows = np.flatnonzero(mask.sum(axis=1) >= SIDE // 4)
    assert len(cols) and len(rows), "no square in frame"
    x = (cols.min() + cols.max() - (SIDE - 1)) / 2
    y = (rows.min() + rows.max() - (SIDE - 1)) / 2
    return int(round(y / 3)) * PERIOD + int(round(x / 2))


def indices(frames: np.ndarray) -> list[int]:
    return [square_index(f) for f in frames]


VIDEO_KINDS = {
    "h264_gop64.mp4": dict(gop=64),
    "h264_gop8.mp4": dict(gop=8),
    "vp8_gop24.webm": dict(codec="libvpx", gop=24),
    "vp9_gop24.webm": dict(codec="libvpx-vp9", gop=24),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    out = {
        name: write_test_video(folder / name, seconds=SECONDS, fps=FPS, width=W, height=H, **kw)
        for name, kw in VIDEO_KINDS.items()
    }
    out["small_4x3.mp4"] = write_test_video(folder / "small_4x3.mp4", seconds=1, fps=FPS, width=320, height=240)
    good = out["h264_gop64.mp4"].read_bytes()
    (folder / "truncated.mp4").write_bytes(good[: len(good) // 2])  # the moov index sits at the end: cut off
    (folder / "corrupt.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    (folder / "empty.mp4").write_bytes(b"")
    out.update({n: folder / n for n in ("truncated.mp4", "corrupt.mp4", "empty.mp4")})
    out["missing.mp4"] = folder / "missing.mp4"
    return out


def gop_of(name: str) -> int:
    return int(VIDEO_KINDS[name]["gop"])


# --------------------------------------------------------------------------- decode_clip


@pytest.mark.parametrize("name", list(VIDEO_KINDS))
def test_decode_clip_is_frame_exact_after_seek(videos: dict[str, Path], name: str) -> None:
    gop = gop_of(name)
    for start_frame in sorted({0, 1, gop - 1, gop, gop + 5, 2 * gop - 3, 70, 90} - set(range(N_FRAMES, 200))):
        for stride in (1, 3):
            clip = read_clip(str(videos[name]), start_s=start_frame / FPS, num_frames=8, stride=stride, short_side=H)
            taken = [f for f in range(start_frame, start_frame + 8 * stride, stride) if f < N_FRAMES]
            expected = taken + [taken[-1]] * (8 - len(taken))  # the end repeats the last clip frame
            assert indices(clip.frames) == expected, (name, start_frame, stride)
            assert clip.seeked == (start_frame > 0)
            # Only the pre-roll from the keyframe before the start, then the clip: nothing more.
            preroll = start_frame - (start_frame // gop) * gop
            assert clip.decoded <= preroll + (8 - 1) * stride + 1, (name, start_frame, stride, clip.decoded)
            assert np.allclose(clip.times, np.array(expected) / FPS, atol=2e-3)


def test_decode_clip_array_and_short_side(videos: dict[str, Path]) -> None:
    frames = decode_clip(str(videos["small_4x3.mp4"]), start_s=0.25, num_frames=4)
    assert frames.shape == (4, 128, 171, 3) and frames.dtype == np.uint8  # the paper's 128x171 for 4:3
    assert output_size(320, 240, 128) == (171, 128)
    assert output_size(240, 320, 128) == (128, 171)
    assert output_size(1280, 720, 128) == (228, 128)


def test_linear_fallback_when_seek_raises(videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(videos["h264_gop64.mp4"])
    seeked = read_clip(path, start_s=70 / FPS, num_frames=8, stride=2, short_side=H)

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("seek failed")

    monkeypatch.setattr(dc, "_seek", broken)
    linear = read_clip(path, start_s=70 / FPS, num_frames=8, stride=2, short_side=H)
    assert not linear.seeked and seeked.seeked
    assert indices(linear.frames) == list(range(70, 86, 2))
    np.testing.assert_array_equal(linear.frames, seeked.frames)
    assert linear.decoded == 70 + 15  # decoded from the beginning, stopping once the clip is complete


def test_linear_fallback_when_seek_lands_after_start(videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    real_seek = dc._seek
    monkeypatch.setattr(dc, "_seek", lambda container, stream, seconds: real_seek(container, stream, seconds + 3.0))
    clip = read_clip(str(videos["h264_gop8.mp4"]), start_s=20 / FPS, num_frames=8, short_side=H)
    assert not clip.seeked
    assert indices(clip.frames) == list(range(20, 28))


def test_end_of_video_repeats_last_frame(videos: dict[str, Path]) -> None:
    clip = read_clip(str(videos["h264_gop8.mp4"]), start_s=(N_FRAMES - 3) / FPS, num_frames=8, short_side=H)
    assert indices(clip.frames) == [93, 94, 95, 95, 95, 95, 95, 95]
    assert clip.padded == 5 and clip.partial
    # A start past the last frame (a duration that overstates the video) ends the clip on the last frame.
    late = read_clip(str(videos["vp8_gop24.webm"]), start_s=SECONDS + 5.0, num_frames=8, stride=2, short_side=H)
    assert indices(late.frames) == list(range(81, 96, 2)) and late.padded == 0


def test_fps_resamples_by_timestamp(videos: dict[str, Path]) -> None:
    half = read_clip(str(videos["h264_gop8.mp4"]), start_s=1.0, num_frames=6, fps=FPS / 2, short_side=H)
    assert indices(half.frames) == list(range(16, 28, 2))
    double = read_clip(str(videos["h264_gop8.mp4"]), start_s=1.0, num_frames=6, fps=FPS * 2, short_side=H)
    assert indices(double.frames) == [16, 17, 17, 18, 18, 19]  # sample k: the first frame at or after 1 + k/32 s


def test_undecodable_files_raise_one_line(videos: dict[str, Path]) -> None:
    for name, kind in (("missing.mp4", FileNotFoundError), ("empty.mp4", ValueError), ("corrupt.mp4", ValueError)):
        with pytest.raises(kind) as err:
            decode_clip(str(videos[name]), start_s=0.0, num_frames=4)
        assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- transforms


def test_transforms() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (4, 128, 171, 3), dtype=np.uint8)
    assert random_crop(frames, 112, y=0.0, x=0.0).shape == (4, 112, 112, 3)
    np.testing.assert_array_equal(random_crop(frames, 112, y=0.999, x=0.999), frames[:, 16:, 59:])
    np.testing.assert_array_equal(center_crop(frames, 112), frames[:, 8:120, 29:141])
    tensor = to_tensor(frames)
    assert tensor.shape == (3, 4, 128, 171) and tensor.dtype == torch.float32 and tensor.is_contiguous()
    expected = (frames[..., 1] / 255.0 - KINETICS_MEAN[1]) / KINETICS_STD[1]
    np.testing.assert_allclose(tensor[1].numpy(), expected, atol=1e-5)
    assert jitter_start(0.0, window_start=2.0, window_end=6.0, clip_s=1.0) == 2.0
    assert jitter_start(0.999999, window_start=2.0, window_end=6.0, clip_s=1.0) == pytest.approx(5.0)
    assert jitter_start(0.7, window_start=2.0, window_end=2.5, clip_s=1.0) == 2.0  # window shorter than the clip
    np.testing.assert_allclose(uniform_starts(5, window_start=1.0, window_end=6.0, clip_s=1.0), [1, 2, 3, 4, 5])
    assert uniform_starts(1, window_start=0.0, window_end=4.0, clip_s=2.0).tolist() == [1.0]
    seeded = [Draw.from_rng(np.random.default_rng([0, 1, 2])) for _ in range(2)]
    assert seeded[0] == seeded[1] and 0 <= seeded[0].time < 1


# --------------------------------------------------------------------------- datasets


def clips_table(uris: list[Path], windows: list[tuple[float, float]], labels: list[int] | None = None) -> pa.Table:
    n = len(uris)
    return pa.table(
        {
            "video_id": [f"v{i}" for i in range(n)],
            "uri": [str(u) for u in uris],
            "label_id": pa.array(labels if labels is not None else list(range(n)), pa.int32()),
            "label": [f"label{i}" for i in range(n)],
            "split": ["short"] * n,
            "clip_start_s": [w[0] for w in windows],
            "clip_end_s": [w[1] for w in windows],
            "duration_s": [float(SECONDS)] * n,
        }
    )


def test_train_clips_jitter_inside_window_and_are_deterministic(videos: dict[str, Path]) -> None:
    path = videos["h264_gop8.mp4"]
    table = clips_table([path] * 12, [(2.0, 5.0)] * 12)
    ds = ClipDataset(table, num_frames=8, stride=2, seed=3)
    latest = 5.0 - 8 * 2 / FPS
    starts = {}
    for i in range(len(ds)):
        item = ds[i]
        assert item["clip"].shape == (3, 8, 112, 112) and item["clip"].dtype == torch.float32
        assert item["label"] == i and item["index"] == i
        assert 2.0 <= item["start_s"] <= latest + 1e-9
        starts[i] = item["start_s"]
    assert len({round(s, 6) for s in starts.values()}) > 6  # jitter really moves the clip
    again = ClipDataset(table, num_frames=8, stride=2, seed=3)
    assert torch.equal(again[5]["clip"], ds[5]["clip"])  # same seed, epoch and index: the same clip
    ds.set_epoch(1)
    moved = [ds[i]["start_s"] for i in range(4)]
    assert moved != [starts[i] for i in range(4)]  # another epoch, other clips
    ds.set_epoch(0)
    assert ds[2]["start_s"] == starts[2]


def test_train_applies_drawn_crop_and_flip_eval_centre_crop(videos: dict[str, Path]) -> None:
    path = videos["h264_gop8.mp4"]
    table = clips_table([path] * 16, [(0.0, float(SECONDS))] * 16)
    ds = ClipDataset(table, num_frames=4, seed=0)
    flipped = [i for i in range(len(ds)) if ds.draw(i).flip]
    kept = [i for i in range(len(ds)) if not ds.draw(i).flip]
    assert flipped and kept
    for i in (flipped[0], kept[0]):
        item, draw = ds[i], ds.draw(i)
        frames = decode_clip(str(path), start_s=item["start_s"], num_frames=4)
        view = random_crop(frames, 112, y=draw.y, x=draw.x)
        if draw.flip:
            view = view[:, :, ::-1]
        assert torch.equal(item["clip"], to_tensor(view))
        unflipped = to_tensor(random_crop(frames, 112, y=draw.y, x=draw.x))
        assert torch.equal(item["clip"], unflipped) != draw.flip

    ev = ClipDataset(table, num_frames=4, train=False)
    item = ev[0]
    frames = decode_clip(str(path), start_s=item["start_s"], num_frames=4)
    assert item["start_s"] == pytest.approx((SECONDS - 4 / FPS) / 2)  # the window's centre clip
    assert torch.equal(item["clip"], to_tensor(center_crop(frames, 112)))


def test_eval_clips_are_uniformly_spaced(videos: dict[str, Path]) -> None:
    table = clips_table([videos["h264_gop64.mp4"], videos["vp8_gop24.webm"]], [(1.0, 5.0), (0.0, 6.0)], [7, 9])
    ev = eval_clips(table, num_clips=5, num_frames=8)
    assert isinstance(ev, EvalClipDataset) and len(ev) == 10
    items = [ev[i] for i in range(len(ev))]
    assert [(it["video_index"], it["clip_index"]) for it in items] == [(v, k) for v in range(2) for k in range(5)]
    assert [it["label"] for it in items] == [7] * 5 + [9] * 5
    np.testing.assert_allclose([it["start_s"] for it in items[:5]], np.linspace(1.0, 5.0 - 8 / FPS, 5))
    np.testing.assert_allclose([it["start_s"] for it in items[5:]], np.linspace(0.0, 6.0 - 8 / FPS, 5))
    assert all(it["clip"].shape == (3, 8, 112, 112) for it in items)
    # 10 clips by default, and the first frame of each is where it says it starts.
    assert len(eval_clips(table)) == 20
    frames = decode_clip(str(videos["vp8_gop24.webm"]), start_s=items[7]["start_s"], num_frames=8, short_side=H)
    assert square_index(frames[0]) == int(np.ceil(items[7]["start_s"] * FPS - 1e-3))


def test_tables_from_parquet(videos: dict[str, Path], tmp_path: Path) -> None:
    uri = str(videos["h264_gop8.mp4"])
    manifest = {
        "video_id": ["a", "b"],
        "uri": [uri, uri],
        "label_id": [1, 2],
        "label": ["x", "y"],
        "matched_label_ids": [[1], [2]],
        "duration_s": [float(SECONDS), None],
    }
    write_table("manifest", manifest, tmp_path / "manifest.parquet")
    table = load_video_table(tmp_path / "manifest.parquet")
    assert table.kind == "manifest"
    assert table.window(1, VideoInfo(16.0, None, W, H)) == (0.0, 0.0)  # unknown anywhere: from the start
    assert table.window(1, VideoInfo(16.0, 4.5, W, H)) == (0.0, 4.5)  # the container's duration
    write_table("clips", clips_table([Path(uri)], [(1.0, 3.0)]), tmp_path / "clips.parquet")
    clips = ClipDataset(tmp_path / "clips.parquet", num_frames=8)
    assert clips.table.kind == "clips" and 1.0 <= clips[0]["start_s"] <= 2.5
    with pytest.raises(InputError, match="label_column|missing column 'nope'"):
        load_video_table(tmp_path / "clips.parquet", label_column="nope")
    with pytest.raises(ValueError):
        ClipSpec(crop=160, short_side=128)


def test_rejects_never_stop_the_epoch(videos: dict[str, Path], tmp_path: Path) -> None:
    good = [videos["h264_gop8.mp4"], videos["vp8_gop24.webm"], videos["h264_gop64.mp4"]]
    bad = [videos["missing.mp4"], videos["corrupt.mp4"], videos["truncated.mp4"], videos["empty.mp4"]]
    uris = [good[0], bad[0], good[1], bad[1], bad[2], good[2], bad[3]]
    rejects = tmp_path / "rejects.jsonl"
    ds = ClipDataset(clips_table(uris, [(0.0, float(SECONDS))] * len(uris)), num_frames=4, rejects_path=rejects)
    assert ds[1] is None and ds.failures == 1

    loader = make_loader(ds, batch_size=2, workers=2, pin_memory=False)
    for epoch in (1, 2):
        ds.set_epoch(epoch)
        seen = []
        for batch in loader:
            if batch is not None:
                assert batch["clip"].shape[1:] == (3, 4, 112, 112)
                seen += batch["index"].tolist()
        assert sorted(seen) == [0, 2, 5]  # every good clip arrives; bad ones are dropped
    del loader
    assert ds.failures == 1 + 2 * len(bad)  # counted in the worker processes too

    table = read_rejects(rejects)
    rows = table.to_pylist()
    assert len(rows) == 1 + 2 * len(bad)
    assert sorted({r["epoch"] for r in rows}) == [0, 1, 2]
    by_id = {r["video_id"]: r["reason"] for r in rows if r["epoch"] == 2}
    assert set(by_id) == {"v1", "v3", "v4", "v6"}
    assert by_id["v1"].startswith("FileNotFoundError")
    assert by_id["v3"].startswith("NotAVideo") and by_id["v4"].startswith("TruncatedVideo")  # same reasons as probe
    assert by_id["v6"].startswith("EmptyFile")
    assert all(json.loads(line) for line in rejects.read_text().splitlines())
    assert write_rejects_parquet(rejects, tmp_path / "rejects.parquet") == len(rows)
    assert collate_skip_none([None, None]) is None


def test_loader_workers_give_the_same_clips_as_one_process(videos: dict[str, Path]) -> None:
    table = clips_table([videos["h264_gop8.mp4"]] * 6, [(0.0, float(SECONDS))] * 6)
    ds = ClipDataset(table, num_frames=4, seed=11)
    ds.set_epoch(4)
    local = {i: ds[i]["start_s"] for i in range(len(ds))}
    loader = make_loader(ds, batch_size=3, workers=2, pin_memory=False, shuffle=True, seed=1)
    got = {}
    for batch in loader:
        got.update(zip(batch["index"].tolist(), batch["start_s"].tolist()))
    assert got == pytest.approx(local)


# --------------------------------------------------------------------------- real videos


def test_real_videos_give_a_clip_or_a_clean_rejection(tmp_path: Path) -> None:
    if not REAL_VIDEOS.is_dir():
        pytest.skip(f"shared real videos not found at {REAL_VIDEOS}")
    paths = sorted(p for p in REAL_VIDEOS.iterdir() if p.is_file())
    table = pa.table(
        {
            "video_id": [p.name for p in paths],
            "uri": [str(p) for p in paths],
            "label_id": pa.array(range(len(paths)), pa.int32()),
        }
    )  # a manifest without duration_s: durations come from the containers
    rejects = tmp_path / "rejects.jsonl"
    ds = ClipDataset(table, num_frames=8, seed=0, rejects_path=rejects)
    results = {p.name: ds[i] for i, p in enumerate(paths)}
    rejected = {r["video_id"]: r["reason"] for r in read_rejects(rejects).to_pylist()}
    for name, item in results.items():
        if item is None:
            assert name in rejected and rejected[name]
        else:
            assert item["clip"].shape == (3, 8, 112, 112) and torch.isfinite(item["clip"]).all()
    if "moviepy__no_duration.webm" in results:  # no duration anywhere: the clip starts at 0
        assert results["moviepy__no_duration.webm"]["start_s"] == 0.0
    if "decord__video_90.mov" in results:  # 3 frames, rotated: padded, upright (portrait) frames
        clip = read_clip(str(REAL_VIDEOS / "decord__video_90.mov"), start_s=0.0, num_frames=8)
        assert clip.padded == 5 and clip.frames.shape[1:] == (227, 128, 3)
    # Seek and linear decodes agree on every real video (the seek is frame-exact, or falls back).
    for p in paths:
        a = read_clip(str(p), start_s=lambda info: 0.6 * (info.duration_s or 1.0), num_frames=4, stride=2)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(dc, "_seek", lambda *args, **kwargs: (_ for _ in ()).throw(OSError("no seek")))
            b = read_clip(str(p), start_s=a.start_s, num_frames=4, stride=2)
        assert np.array_equal(a.frames, b.frames), p.name
