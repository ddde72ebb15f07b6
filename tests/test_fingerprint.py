"""fingerprint: timestamp sampling at 16 fps, codes that survive copies, bad files, real videos, resume, CLI."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import typer
from conftest import assert_input_error
from typer.testing import CliRunner

from weaksup.bulk import parts_dir
from weaksup.cli import fingerprint as fingerprint_cli
from weaksup.dedupe import fingerprint as fingerprint_mod
from weaksup.dedupe.census import CODE_VERSION, census_codes, frame_grids, hamming, mirror_codes
from weaksup.dedupe.decode import decode_samples, sample_grey_frames
from weaksup.dedupe.fingerprint import (
    FingerprintConfig,
    fingerprint_video,
    fingerprint_videos,
    read_codes,
    summary_path,
)
from weaksup.errors import InputError
from weaksup.synth.video import write_test_video, write_video
from weaksup.tables import validate_file, write_table

REAL_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
HQ = {"crf": "10"}  # near-lossless, so decoded frames code like the source frames


def smooth_frames(seed: int, n: int, width: int = 160, height: int = 120) -> np.ndarray:
    """RGB frames of a panning smooth random texture with a moving disc: coherent motion, rich codes."""
    rng = np.random.default_rng(seed)
    big = cv2.resize(
        rng.random((12, 16, 3)).astype(np.float32), (width + 64, height + 64), interpolation=cv2.INTER_CUBIC
    )
    big = (big * 215 + 20).clip(0, 255).astype(np.uint8)
    frames = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        dx, dy = int(32 + 28 * np.sin(i / 9 + seed)), int(32 + 28 * np.cos(i / 13 + seed))
        frames[i] = big[dy : dy + height, dx : dx + width]
        x, y = int((20 + 3 * i) % width), int((30 + 2 * i) % height)
        cv2.circle(frames[i], (x, y), 14, (255, 255, 255), -1)
    return frames


def random_frames(seed: int, n: int, width: int = 128, height: int = 96) -> np.ndarray:
    """Independent smooth random frames: every frame has its own code, so sampling is checkable."""
    rng = np.random.default_rng(seed)
    low = rng.random((n, 6, 8, 3)).astype(np.float32)
    frames = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_CUBIC) for f in low])
    return (frames * 215 + 20).clip(0, 255).astype(np.uint8)


def direct_codes(frames: np.ndarray) -> np.ndarray:
    """Full-frame codes computed straight from RGB frames, no video in between."""
    grey = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]
    return census_codes(np.stack([frame_grids(g) for g in grey]))[:, 0]


def codes(row: dict, column: str = "codes") -> np.ndarray:
    return np.asarray(row[column], np.uint64)


def distances(a: dict, b: dict, column_b: str = "codes", transform=lambda c: c) -> np.ndarray:
    x, y = codes(a), transform(codes(b, column_b))
    n = min(len(x), len(y))
    assert n and abs(len(x) - len(y)) <= 1
    return hamming(x[:n], y[:n])


def videos_table(path: Path, uris: list[str | Path], ids: list[str] | None = None) -> Path:
    """A videos table (Parquet, or CSV by suffix) with video_id and uri."""
    ids = ids or [f"v{i}" for i in range(len(uris))]
    table = pa.table({"video_id": ids, "uri": [str(u) for u in uris]})
    if path.suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path


@pytest.fixture(scope="module")
def vids(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("fingerprint-videos")
    base = smooth_frames(1, 48)
    h, w = base.shape[1:3]
    v = {
        "base": write_video(d / "base.mp4", base, fps=16, options=HQ),
        "other": write_video(d / "other.mp4", smooth_frames(2, 48), fps=16, options=HQ),
        "lowbitrate": write_video(d / "lowbitrate.mp4", base, fps=16, options={"crf": "40"}),
        "half": write_video(
            d / "half.mp4",
            np.stack([cv2.resize(f, (w // 2, h // 2), interpolation=cv2.INTER_AREA) for f in base]),
            fps=16,
        ),
        "bright": write_video(d / "bright.mp4", (base * 0.7 + 60).astype(np.uint8), fps=16),
        "flipped": write_video(d / "flipped.mp4", base[:, :, ::-1], fps=16, options=HQ),
        "webm": write_video(d / "base.webm", base, fps=16, codec="libvpx"),
        "black": write_video(d / "black.mp4", np.zeros((32, 48, 64, 3), np.uint8), fps=16),
        "one_frame": write_video(d / "one_frame.mp4", random_frames(3, 1), fps=30, options=HQ),
        "square": write_test_video(d / "square.mp4", seconds=1.0, fps=16),
    }
    bar = 24
    boxed = np.zeros((len(base), h + 2 * bar, w, 3), np.uint8)
    boxed[:, bar : bar + h] = base
    v["letterbox"] = write_video(d / "letterbox.mp4", boxed, fps=16, options=HQ)
    (d / "empty.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("not a video at all\n", encoding="utf-8")
    data = v["base"].read_bytes()
    (d / "half_file.mp4").write_bytes(data[: len(data) // 2])
    mkv = write_video(d / "long.mkv", smooth_frames(4, 64), fps=16, gop=8).read_bytes()
    (d / "cut.mkv").write_bytes(mkv[: len(mkv) // 2])
    v.update(
        {
            k: d / f
            for k, f in (
                ("empty", "empty.mp4"),
                ("text", "text.mp4"),
                ("half_file", "half_file.mp4"),
                ("cut", "cut.mkv"),
            )
        }
    )
    v["long"] = d / "long.mkv"
    v["missing"] = d / "missing.mp4"
    return v


# --- sampling ---------------------------------------------------------------------------


@pytest.mark.parametrize("src_fps", [16.0, 24.0, 30.0, 12.0, 30000 / 1001])
def test_one_code_per_sixteenth_of_a_second(src_fps: float, tmp_path: Path) -> None:
    seconds = 2.5
    path = write_video(tmp_path / "v.mp4", smooth_frames(5, round(seconds * src_fps)), fps=src_fps)
    row = fingerprint_video(str(path))
    n = round(round(seconds * src_fps) / src_fps * 16)
    assert row["status"] == "ok" and row["error"] is None
    assert abs(len(row["codes"]) - n) <= 1
    assert len(row["codes"]) == len(row["codes_crop10"]) == len(row["codes_crop20"]) == len(row["informative"])
    assert row["duration_s"] == len(row["codes"]) / 16 and row["fps"] == 16.0 and row["code_version"] == CODE_VERSION
    assert all(0 <= c < 2**64 for c in row["codes"]) and all(row["informative"])
    frames, duration = sample_grey_frames(str(path))
    assert frames.dtype == np.uint8 and frames.shape == (len(row["codes"]), 120, 160)
    assert duration == pytest.approx(seconds, abs=1 / src_fps)


def test_grey_frames_are_small_and_keep_the_aspect(tmp_path: Path) -> None:
    path = write_video(tmp_path / "wide.mp4", smooth_frames(6, 8, width=640, height=360), fps=16)
    frames, _ = sample_grey_frames(str(path), max_side=160)
    assert frames.shape == (8, 90, 160)
    frames, _ = sample_grey_frames(str(path), fps=8.0, max_side=64)
    assert frames.shape == (4, 36, 64)


def test_30fps_samples_take_the_frame_on_screen(tmp_path: Path) -> None:
    frames = random_frames(7, 60)  # 2 s at 30 fps, every frame different
    path = write_video(tmp_path / "v30.mp4", frames, fps=30, options=HQ)
    row = fingerprint_video(str(path))
    got = codes(row)
    assert len(got) == 32
    truth = direct_codes(frames)
    shown = [int(np.floor(k * 30 / 16 + 1e-9)) for k in range(32)]  # sample k at k/16 s shows frame floor(k*30/16)
    d = hamming(got, truth[shown])
    assert np.median(d) <= 2 and d.max() <= 6, d
    # and not a neighbour: the next frame's code is far away
    nxt = hamming(got, truth[np.minimum(np.array(shown) + 1, 59)])
    assert np.median(nxt) >= 16


def test_12fps_frames_repeat(tmp_path: Path) -> None:
    frames = random_frames(8, 24)  # 2 s at 12 fps
    path = write_video(tmp_path / "v12.mp4", frames, fps=12, options=HQ)
    got = codes(fingerprint_video(str(path)))
    assert len(got) == 32
    shown = [int(np.floor(k * 12 / 16 + 1e-9)) for k in range(32)]
    assert np.median(hamming(got, direct_codes(frames)[shown])) <= 2


def write_vfr(path: Path, frames: np.ndarray, times_ms: list[int]) -> Path:
    """A variable-frame-rate clip: frame i shown from times_ms[i] (Matroska, 1 ms time base)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.time_base = Fraction(1, 1000)
        s.codec_context.time_base = Fraction(1, 1000)
        s.options = {"preset": "ultrafast", **HQ}
        for f, t in zip(frames, times_ms):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts, vf.time_base = t, Fraction(1, 1000)
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def test_variable_frame_rate_is_sampled_by_time(tmp_path: Path) -> None:
    times = [0, 100, 150, 400, 410, 420, 800, 1000]
    frames = random_frames(9, len(times))
    path = write_vfr(tmp_path / "vfr.mkv", frames, times)
    got = codes(fingerprint_video(str(path)))
    truth = direct_codes(frames)
    n = 1000 * 16 // 1000  # samples before the last frame starts
    assert len(got) >= n
    shown = [max(i for i, t in enumerate(times) if t <= k * 62.5) for k in range(n)]
    assert shown[:8] == [0, 0, 1, 2, 2, 2, 2, 5]  # 400 and 410 ms fall between samples: never shown
    assert np.max(hamming(got[:n], truth[shown])) <= 6


def test_clock_falls_back_when_timestamps_are_missing_or_reordered() -> None:
    from types import SimpleNamespace

    from weaksup.dedupe.decode import FrameClock

    def times(stamps: list[tuple[int | None, int | None]], time_base: float | None = 0.04) -> list[float]:
        clock = FrameClock(time_base, interval=0.04)
        return [round(clock.time(SimpleNamespace(pts=p, dts=d)), 3) for p, d in stamps]

    assert times([(None, None)] * 4) == [0.0, 0.04, 0.08, 0.12]  # no timestamps: one frame interval each
    assert times([(5, 5), (6, 6), (7, 7)], time_base=None) == [0.0, 0.04, 0.08]
    assert times([(-2, -2), (-1, -1), (0, 0)]) == [0.0, 0.04, 0.08]  # negative pts count from the first frame
    assert times([(None, None), (11, None), (12, None)]) == [0.0, 0.04, 0.08]  # timestamps start late
    # AVI packed B-frames: pts out of order, dts in order -> dts wins once pts proves worse
    avi = [(1, 1), (2, 2), (4, 3), (3, 4), (5, 5), (7, 6), (6, 7), (8, 8), (10, 9), (9, 10), (11, 11)]
    got = times(avi)
    assert got == sorted(got) and got[-1] == 0.4
    assert times([(0, None), (10, None), (5, None)]) == [0.0, 0.4, 0.4]  # never backwards


def test_decode_hands_out_each_frame_once_with_its_count(vids: dict[str, Path]) -> None:
    calls: list[int] = []
    info = decode_samples(str(vids["base"]), lambda grey, count: calls.append(count), fps=32.0)
    assert info.n_samples == sum(calls) == 96 and set(calls) == {2} and info.partial is None
    assert info.duration_s == pytest.approx(3.0)


# --- codes that survive copies -------------------------------------------------------------


@pytest.fixture(scope="module")
def rows(vids: dict[str, Path]) -> dict[str, dict]:
    names = ["base", "other", "lowbitrate", "half", "bright", "flipped", "webm", "letterbox"]
    return {n: fingerprint_video(str(vids[n])) for n in names}


@pytest.mark.parametrize("copy", ["lowbitrate", "half", "bright", "webm", "letterbox"])
def test_copies_code_close(rows: dict[str, dict], copy: str) -> None:
    assert rows[copy]["status"] == "ok"
    d = distances(rows["base"], rows[copy])
    assert np.median(d) <= 4, d


def test_other_video_codes_far(rows: dict[str, dict]) -> None:
    assert np.median(distances(rows["base"], rows["other"])) >= 16


def test_flipped_copy_meets_mirrored_codes(rows: dict[str, dict]) -> None:
    assert np.median(distances(rows["base"], rows["flipped"], transform=mirror_codes)) <= 4
    assert np.median(distances(rows["base"], rows["flipped"])) >= 16  # unmirrored it does not match
    for crop in ("codes_crop10", "codes_crop20"):
        assert np.median(hamming(codes(rows["base"], crop), mirror_codes(codes(rows["flipped"], crop)))) <= 4


# --- what cannot be fingerprinted ----------------------------------------------------------


def test_black_video_is_unfingerprintable(vids: dict[str, Path]) -> None:
    row = fingerprint_video(str(vids["black"]))
    assert row["status"] == "unfingerprintable" and row["error"].startswith("NoInformativeFrame:")
    assert row.get("codes") is None and row["duration_s"] == pytest.approx(2.0)


def test_shorter_than_one_frame_is_unfingerprintable(vids: dict[str, Path], tmp_path: Path) -> None:
    row = fingerprint_video(str(vids["one_frame"]))  # one frame at 30 fps: 1/30 s < 1/16 s
    assert row["status"] == "unfingerprintable" and row["error"].startswith("TooShort:")
    # a video stream without a single frame (beside an audio track that keeps the file readable)
    path = tmp_path / "no_frames.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=16)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=16000)
        for start in range(0, 16000, 1024):
            af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            af.sample_rate, af.pts = 16000, start
            for p in a.encode(af):
                c.mux(p)
        for p in list(a.encode()) + list(s.encode()):
            c.mux(p)
    row = fingerprint_video(str(path))
    assert row["status"] == "unfingerprintable" and "no frames" in row["error"]


def test_cut_file_keeps_what_decodes(vids: dict[str, Path]) -> None:
    whole = fingerprint_video(str(vids["long"]))
    row = fingerprint_video(str(vids["cut"]))
    assert row["status"] == "ok" and row["error"].startswith("PartialDecode:")
    assert 8 <= len(row["codes"]) < len(whole["codes"])
    assert row["codes"][:-1] == whole["codes"][: len(row["codes"]) - 1]


@pytest.mark.parametrize(
    "name, kind",
    [("empty", "EmptyFile"), ("text", "NotAVideo"), ("half_file", "TruncatedVideo"), ("missing", "FileNotFoundError")],
)
def test_bad_files_raise_with_a_reason(vids: dict[str, Path], name: str, kind: str) -> None:
    with pytest.raises(Exception) as info:
        fingerprint_video(str(vids[name]))
    assert type(info.value).__name__ == kind and str(vids[name]) in str(info.value)


def test_job_accounts_for_every_row(vids: dict[str, Path], tmp_path: Path) -> None:
    names = ["base", "empty", "text", "black", "half_file", "missing", "one_frame", "cut", "square"]
    table_path = videos_table(tmp_path / "videos.csv", [vids[n] for n in names], names)
    out = tmp_path / "codes.parquet"
    table, summary = fingerprint_videos(
        FingerprintConfig(videos=table_path, out=out, workers=2, chunk_size=2, progress=False)
    )
    table = table.read()
    got = table.to_pylist()
    assert [r["video_id"] for r in got] == names and validate_file("codes", out) == len(names)
    status = {r["video_id"]: r["status"] for r in got}
    assert status == {
        "base": "ok",
        "empty": "rejected",
        "text": "rejected",
        "black": "unfingerprintable",
        "half_file": "rejected",
        "missing": "rejected",
        "one_frame": "unfingerprintable",
        "cut": "ok",
        "square": "ok",
    }
    for r in got:
        assert r["code_version"] == CODE_VERSION and r["fps"] == 16.0
        assert (r["error"] is None) == (r["status"] == "ok" and r["video_id"] != "cut")
        assert (r["codes"] is None) == (r["status"] != "ok")
    assert (
        summary["videos"] == 9 and summary["ok"] == 3 and summary["rejected"] == 4 and summary["unfingerprintable"] == 2
    )
    assert summary["partial"] == 1 and summary["reasons"]["EmptyFile"] == 1 and summary["reasons"]["TooShort"] == 1
    assert summary["frames"] == sum(len(r["codes"]) for r in got if r["codes"])
    assert summary["video_seconds"] == pytest.approx(summary["frames"] / 16, abs=1e-3)
    assert json.loads(summary_path(out).read_text()) == summary
    assert read_codes(out).num_rows == len(names)


# --- real videos ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    if not REAL_VIDEOS.is_dir():
        pytest.skip(f"shared real videos not found at {REAL_VIDEOS}")
    paths = sorted(REAL_VIDEOS.iterdir())
    d = tmp_path_factory.mktemp("fingerprint-real")
    table, _ = fingerprint_videos(
        FingerprintConfig(
            videos=videos_table(d / "videos.parquet", paths, [p.name for p in paths]),
            out=d / "codes.parquet",
            workers=2,
            chunk_size=2,
            progress=False,
        )
    )
    table = table.read()
    return {r["video_id"]: r for r in table.to_pylist()}


def test_real_videos_all_get_a_row(real: dict[str, dict]) -> None:
    assert len(real) == 14
    not_ok = {k: r["error"] for k, r in real.items() if r["status"] != "ok"}
    # almost black from start to end: flat frames must never vote, so it gets no codes
    assert set(not_ok) == {"moviepy__no_duration.webm"} and not_ok["moviepy__no_duration.webm"].startswith(
        "NoInformativeFrame"
    )
    for name, r in real.items():
        if r["status"] == "ok":
            assert r["error"] is None, (name, r["error"])
    assert len(real["mmaction2__test.mp4"]["codes"]) == 160  # 10 s
    assert len(real["decord__video_90.mov"]["codes"]) == 2  # 3 frames at 30 fps: 0.1 s
    assert len(real["moviepy__big_buck_bunny_0_30.webm"]["codes"]) == 480
    assert len(real["mmaction2__test.avi"]["codes"]) == 105  # packed B-frames: timestamps from dts


def test_real_same_clip_other_codec_is_near_identical(real: dict[str, dict]) -> None:
    d = distances(real["mdn__flower.mp4"], real["mdn__flower.webm"])
    assert len(d) == 80 and np.median(d) == 0 and np.mean(d <= 2) >= 0.95


def test_real_prefix_matches_the_start_of_its_source(real: dict[str, dict]) -> None:
    part, full = codes(real["mmaction2__part_0.mp4"]), codes(real["mmaction2__test.mp4"])
    d = hamming(part, full[: len(part)])
    assert len(part) == 18 and np.median(d) <= 1 and d.max() <= 4
    assert np.median(hamming(part, full[80 : 80 + len(part)])) >= 8  # the middle of the source is elsewhere


def test_real_unrelated_videos_are_far(real: dict[str, dict]) -> None:
    assert np.median(distances(real["mmaction2__demo.mp4"], real["mmaction2__test.mp4"])) >= 16


# --- resume, table checks, CLI ---------------------------------------------------------------


def test_resume_after_kill_gives_the_same_table(
    vids: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["base", "text", "square", "black", "missing", "one_frame", "base"]
    table_path = videos_table(tmp_path / "videos.parquet", [vids[n] for n in names])
    whole, _ = fingerprint_videos(
        FingerprintConfig(videos=table_path, out=tmp_path / "whole.parquet", workers=0, chunk_size=2, progress=False)
    )
    whole = whole.read()

    real_fn = fingerprint_mod.fingerprint_video
    calls: list[str] = []

    def killed_on_fifth(uri: str, **kw: object) -> dict:
        calls.append(uri)
        if len(calls) == 5:
            raise KeyboardInterrupt  # a kill: not an Exception, so not a rejected row
        return real_fn(uri, **kw)

    out = tmp_path / "resumed.parquet"
    cfg = FingerprintConfig(videos=table_path, out=out, workers=0, chunk_size=2, progress=False)
    monkeypatch.setattr(fingerprint_mod, "fingerprint_video", killed_on_fifth)
    with pytest.raises(KeyboardInterrupt):
        fingerprint_videos(cfg)
    assert not out.exists() and len(list(parts_dir(out).glob("*/part-*.parquet"))) == 2

    calls.clear()
    monkeypatch.setattr(
        fingerprint_mod, "fingerprint_video", lambda uri, **kw: (calls.append(uri), real_fn(uri, **kw))[1]
    )
    with pytest.raises(InputError, match="--fps 16"):  # the interrupted run's rows were coded at 16 fps
        fingerprint_videos(
            FingerprintConfig(videos=table_path, out=out, fps=8.0, workers=0, chunk_size=2, progress=False)
        )
    resumed, _ = fingerprint_videos(cfg)
    resumed = resumed.read()
    assert len(calls) == 3  # only the rows without a part were done again
    assert resumed.to_pylist() == whole.to_pylist() == pq.read_table(out).to_pylist()


def test_read_codes_refuses_stale_or_mixed_tables(vids: dict[str, Path], tmp_path: Path) -> None:
    table_path = videos_table(tmp_path / "videos.parquet", [vids["square"], vids["text"]])
    out = tmp_path / "codes.parquet"
    table, _ = fingerprint_videos(FingerprintConfig(videos=table_path, out=out, workers=0, progress=False))
    table = table.read()
    assert read_codes(out).to_pylist() == table.to_pylist()

    stale = table.set_column(
        table.schema.get_field_index("code_version"), "code_version", pa.array([CODE_VERSION + 1] * 2, pa.int32())
    )
    write_table("codes", stale, tmp_path / "stale.parquet")
    with pytest.raises(InputError, match="stale code table") as info:
        read_codes(tmp_path / "stale.parquet")
    assert (
        "stale.parquet" in str(info.value)
        and "re-run weaksup fingerprint" in str(info.value)
        and "\n" not in str(info.value)
    )

    mixed = table.set_column(table.schema.get_field_index("fps"), "fps", pa.array([16.0, 8.0]))
    write_table("codes", mixed, tmp_path / "mixed.parquet")
    with pytest.raises(InputError, match="different fps"):
        read_codes(tmp_path / "mixed.parquet")
    with pytest.raises(InputError, match="not found"):
        read_codes(tmp_path / "nope.parquet")


def test_config_errors(vids: dict[str, Path], tmp_path: Path) -> None:
    table_path = videos_table(tmp_path / "videos.parquet", [vids["square"]])
    with pytest.raises(InputError, match="fps must be positive"):
        fingerprint_videos(FingerprintConfig(videos=table_path, out=tmp_path / "o.parquet", fps=0.0, progress=False))
    with pytest.raises(InputError, match="chunk size"):
        fingerprint_videos(
            FingerprintConfig(videos=table_path, out=tmp_path / "o.parquet", chunk_size=0, progress=False)
        )


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test app"""

    fingerprint_cli.register(app)
    return app


def test_cli(vids: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    app = _app()
    table_path = videos_table(tmp_path / "videos.parquet", [vids["square"], vids["text"], vids["black"]])
    out = tmp_path / "codes.parquet"
    res = runner.invoke(
        app, ["fingerprint", "--videos", str(table_path), "--out", str(out), "--workers", "0", "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    assert "unfingerprintable" in res.output and validate_file("codes", out) == 3
    assert summary_path(out).is_file()

    bad = tmp_path / "bad.csv"
    bad.write_text("video_id,url\na,x.mp4\n", encoding="utf-8")
    res = runner.invoke(
        app, ["fingerprint", "--videos", str(bad), "--out", str(tmp_path / "x.parquet"), "--workers", "0"]
    )
    assert_input_error(res, "bad.csv", "uri")
