"""probe: container metadata without decoding, rejected rows for bad files, resume, CLI."""

from __future__ import annotations

import json
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from conftest import assert_input_error, write_clip
from typer.testing import CliRunner

from weaksup import video_io
from weaksup.assembly import probe as probe_mod
from weaksup.assembly.probe import ProbeConfig, probe_video, probe_videos, summary_path
from weaksup.bulk import parts_dir
from weaksup.cli import probe as probe_cli
from weaksup.synth.video import write_test_video
from weaksup.tables import validate_file
from weaksup.video_io import rotation_from_matrix

REAL_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"


def open_ended_mdat(data: bytes) -> bytes:
    """The same faststart MP4 with its trailing mdat sized 0 ("to the end of the file")."""
    pos = 0
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"mdat":
            assert pos + size == len(data)
            return data[:pos] + b"\0\0\0\0" + data[pos + 4 :]
        pos += size
    raise AssertionError("no mdat")


@pytest.fixture(scope="module")
def vids(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("probe-videos")
    v = {
        "plain": write_test_video(d / "plain.mp4", seconds=2.0, fps=16),
        "audio": write_test_video(d / "audio.mp4", seconds=1.2, fps=25, width=96, height=64, with_audio=True),
        "webm": write_test_video(d / "clip.webm", seconds=3.0, fps=10, codec="libvpx"),
        "ntsc": write_test_video(d / "ntsc.mp4", seconds=1.0, fps=30000 / 1001, width=80, height=60),
        "rot90": write_clip(d / "rot90.mp4", 90),
        "rot180": write_clip(d / "rot180.mov", 180),
        "rot_webm": write_clip(d / "rot.webm", -90, codec="libvpx"),
    }
    (d / "empty.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("not a video at all\n", encoding="utf-8")
    data = v["plain"].read_bytes()
    (d / "half.mp4").write_bytes(data[: len(data) // 2])
    fast = write_clip(d / "faststart.mp4", container_options={"movflags": "faststart"}).read_bytes()
    (d / "half_faststart.mp4").write_bytes(fast[: len(fast) * 3 // 4])  # opens fine: moov is up front
    (d / "open_mdat.mp4").write_bytes(open_ended_mdat(fast))
    (d / "half_open_mdat.mp4").write_bytes(open_ended_mdat(fast)[: len(fast) * 3 // 4])
    webm = v["webm"].read_bytes()
    (d / "half.webm").write_bytes(webm[: len(webm) // 2])
    with av.open(str(d / "audio_only.m4a"), "w") as c:
        a = c.add_stream("aac", rate=16000)
        for start in range(0, 16000, 1024):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, start
            for p in a.encode(frame):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
    names = {
        "empty": "empty.mp4",
        "text": "text.mp4",
        "half": "half.mp4",
        "half_faststart": "half_faststart.mp4",
        "half_webm": "half.webm",
        "audio_only": "audio_only.m4a",
        "missing": "missing.mp4",
        "open_mdat": "open_mdat.mp4",
        "half_open_mdat": "half_open_mdat.mp4",
    }
    v.update({key: d / name for key, name in names.items()})
    return v


def videos_table(path: Path, uris: list[Path | str], ids: list[str] | None = None) -> Path:
    ids = ids or [f"v{i}" for i in range(len(uris))]
    pq.write_table(pa.table({"video_id": ids, "uri": [str(u) for u in uris]}), path)
    return path


def test_exact_metadata_of_generated_videos(vids: dict[str, Path]) -> None:
    plain = probe_video(str(vids["plain"]))
    assert plain["fps"] == 16.0 and plain["n_frames"] == 32 and not plain["n_frames_estimated"]
    assert (plain["width"], plain["height"], plain["codec"], plain["has_audio"], plain["rotation"]) == (
        64,
        48,
        "h264",
        False,
        0,
    )
    assert abs(plain["duration_s"] - 2.0) <= 1 / 16
    assert plain["bytes"] == vids["plain"].stat().st_size

    audio = probe_video(str(vids["audio"]))
    assert (audio["fps"], audio["n_frames"], audio["width"], audio["height"], audio["has_audio"]) == (
        25.0,
        30,
        96,
        64,
        True,
    )
    assert abs(audio["duration_s"] - 1.2) <= 1 / 25

    ntsc = probe_video(str(vids["ntsc"]))
    assert Fraction(ntsc["fps"]).limit_denominator(1001) == Fraction(30000, 1001)
    assert ntsc["n_frames"] == 30 and abs(ntsc["duration_s"] - 30 * 1001 / 30000) <= 1001 / 30000

    webm = probe_video(str(vids["webm"]))  # Matroska states no frame count: estimated
    assert (webm["codec"], webm["fps"], webm["n_frames"], webm["n_frames_estimated"]) == ("vp8", 10.0, 30, True)
    assert abs(webm["duration_s"] - 3.0) <= 0.1
    counted = probe_video(str(vids["webm"]), count_frames=True)
    assert counted["n_frames"] == 30 and abs(counted["duration_s"] - 3.0) <= 0.1


@pytest.mark.parametrize(
    "name, kind",
    [
        ("half_faststart", "TruncatedVideo"),
        ("half_open_mdat", "TruncatedVideo"),
        ("half_webm", "TruncatedVideo"),
        ("audio_only", "NoVideoStream"),
    ],
)
def test_more_broken_files(vids: dict[str, Path], name: str, kind: str) -> None:
    with pytest.raises(getattr(video_io, kind)):
        probe_video(str(vids[name]))


def test_uris(vids: dict[str, Path]) -> None:
    assert probe_video(str(vids["open_mdat"]))["n_frames"] == 5
    assert probe_video(vids["plain"].as_uri())["n_frames"] == 32
    with pytest.raises(video_io.UnsupportedUri, match="nosuch"):  # s3:// is read when s3fs is installed (test_uris.py)
        probe_video("nosuch://bucket/v.mp4")


def test_rotation_from_mp4_mov_and_webm_headers(vids: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    assert probe_video(str(vids["rot90"]))["rotation"] == 90
    assert probe_video(str(vids["rot180"]))["rotation"] == 180
    assert probe_video(str(vids["rot_webm"]))["rotation"] == -90
    # Headers the parser cannot read (e.g. compressed cmov): decoding one frame agrees.
    monkeypatch.setattr(probe_mod, "mov_structure", lambda path, track: (None, None, False))
    monkeypatch.setattr(probe_mod, "matroska_structure", lambda path, index: (None, None))
    for name, expected in [("rot90", 90), ("rot180", 180), ("rot_webm", -90), ("plain", 0)]:
        assert probe_video(str(vids[name]))["rotation"] == expected
    assert rotation_from_matrix(0.0, 1.0, -1.0, 0.0) == -90  # FFmpeg's sign convention
    assert rotation_from_matrix(-1.0, 0.0, 0.0, -1.0) == 180


def test_bad_files_become_rejected_rows_and_every_row_is_kept(vids: dict[str, Path], tmp_path: Path) -> None:
    names = ["plain", "missing", "empty", "text", "half", "plain"]
    table_path = videos_table(tmp_path / "videos.parquet", [vids[n] for n in names], ["a", "b", "c", "d", "e", "a"])
    out = tmp_path / "probe.parquet"
    table, summary = probe_videos(ProbeConfig(videos=table_path, out=out, workers=2, chunk_size=2, progress=False))
    table = table.read()
    rows = table.to_pylist()
    assert [r["video_id"] for r in rows] == ["a", "b", "c", "d", "e", "a"]  # duplicates stay separate rows
    assert [r["uri"] for r in rows] == [str(vids[n]) for n in names]
    assert [r["status"] for r in rows] == ["ok", "rejected", "rejected", "rejected", "rejected", "ok"]
    errors = [r["error"] for r in rows]
    assert errors[0] is None and all(e and len(e) > 10 for e in errors[1:5])
    assert errors[1].startswith("FileNotFoundError") and errors[2].startswith("EmptyFile")
    assert errors[3].startswith("NotAVideo") and errors[4].startswith("TruncatedVideo")
    assert all(r["duration_s"] is None for r in rows[1:5])
    assert summary == {
        "videos": 6,
        "ok": 2,
        "rejected": 4,
        "reasons": {"FileNotFoundError": 1, "EmptyFile": 1, "NotAVideo": 1, "TruncatedVideo": 1},
        "total_duration_s": pytest.approx(4.0, abs=0.2),
    }
    assert json.loads(summary_path(out).read_text()) == json.loads(json.dumps(summary))
    assert validate_file("probe", out) == 6 and not parts_dir(out).exists()


def test_real_videos(tmp_path: Path) -> None:
    if not REAL_VIDEOS.is_dir():
        pytest.skip(f"real videos not found at {REAL_VIDEOS}")
    files = sorted(REAL_VIDEOS.iterdir())
    table_path = tmp_path / "videos.csv"
    table_path.write_text("video_id,uri\n" + "".join(f"{f.name},{f}\n" for f in files), encoding="utf-8")
    table, summary = probe_videos(ProbeConfig(videos=table_path, out=tmp_path / "probe.parquet", progress=False))
    table = table.read()
    by = {r["video_id"]: r for r in table.to_pylist()}
    assert summary["ok"] == len(files) == 14, [r["error"] for r in by.values() if r["error"]]

    demo = by["mmaction2__demo.mp4"]
    assert (demo["width"], demo["height"], demo["fps"], demo["n_frames"], demo["duration_s"]) == (
        340,
        256,
        28.0,
        280,
        10.0,
    )
    assert by["decord__video_90.mov"]["rotation"] in (-90, 90)
    assert (by["decord__video_90.mov"]["width"], by["decord__video_90.mov"]["height"]) == (568, 320)
    nodur = by["moviepy__no_duration.webm"]
    assert nodur["duration_s"] == pytest.approx(4.9, abs=0.1) and nodur["n_frames_estimated"]
    assert nodur["n_frames"] == 74 and nodur["codec"] == "vp9"
    assert by["mdn__flower.mp4"]["has_audio"] is True and not by["mmaction2__demo.mp4"]["has_audio"]
    assert by["imageio__cockatoo.mp4"]["codec"] == "h264"
    assert by["mmaction2__demo_skeleton.mp4"]["fps"] == pytest.approx(2160 / 77)
    assert by["decord__flipping_a_pancake.mkv"]["n_frames"] == 310  # from the video track's own DURATION tag
    assert by["mmaction2__test.avi"]["codec"] == "mpeg4" and by["mmaction2__test.avi"]["n_frames"] == 164  # the .avi
    assert all(r["rotation"] == 0 for k, r in by.items() if k != "decord__video_90.mov")
    # Variable-rate WebM: duration x average fps is far off; counting packets is exact.
    echo = REAL_VIDEOS / "mediaelement__echo-hereweare.webm"
    assert by[echo.name]["n_frames_estimated"] and by[echo.name]["n_frames"] != 836
    assert probe_video(str(echo), count_frames=True)["n_frames"] == 836


def test_resume_after_kill_gives_the_same_table(
    vids: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["plain", "audio", "webm", "text", "ntsc", "missing", "rot90", "plain"]
    table_path = videos_table(tmp_path / "videos.parquet", [vids[n] for n in names])
    whole, _ = probe_videos(
        ProbeConfig(videos=table_path, out=tmp_path / "whole.parquet", workers=0, chunk_size=2, progress=False)
    )
    whole = whole.read()

    real = probe_mod.probe_video
    calls: list[str] = []

    def killed_on_fifth(uri: str, **kw: object) -> dict:
        calls.append(uri)
        if len(calls) == 5:
            raise KeyboardInterrupt  # what a kill looks like: not an Exception, so not a rejected row
        return real(uri, **kw)

    out = tmp_path / "resumed.parquet"
    cfg = ProbeConfig(videos=table_path, out=out, workers=0, chunk_size=2, progress=False)
    monkeypatch.setattr(probe_mod, "probe_video", killed_on_fifth)
    with pytest.raises(KeyboardInterrupt):
        probe_videos(cfg)
    assert not out.exists() and len(list(parts_dir(out).glob("*/part-*.parquet"))) == 2

    calls.clear()
    monkeypatch.setattr(probe_mod, "probe_video", lambda uri, **kw: (calls.append(uri), real(uri, **kw))[1])
    resumed, _ = probe_videos(cfg)
    resumed = resumed.read()
    assert len(calls) == 4  # only the rows without a part were probed again
    assert resumed.to_pylist() == whole.to_pylist()
    assert pq.read_table(out).to_pylist() == whole.to_pylist()


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test app"""

    probe_cli.register(app)
    return app


def test_cli(vids: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    app = _app()
    table_path = videos_table(tmp_path / "videos.parquet", [vids["plain"], vids["text"]])
    out = tmp_path / "probe.parquet"
    res = runner.invoke(
        app, ["probe", "--videos", str(table_path), "--out", str(out), "--workers", "0", "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    assert "rejected" in res.output and validate_file("probe", out) == 2

    bad = tmp_path / "no_uri.csv"
    bad.write_text("video_id,path\na,x.mp4\n", encoding="utf-8")
    res = runner.invoke(app, ["probe", "--videos", str(bad), "--out", str(tmp_path / "x.parquet")])
    assert_input_error(res, "no_uri.csv", "uri")
    res = runner.invoke(
        app, ["probe", "--videos", str(tmp_path / "nope.parquet"), "--out", str(tmp_path / "y.parquet")]
    )
    assert_input_error(res, "nope.parquet", "not found")


def test_cli_every_uri_missing_is_nothing_done_exit_3_unless_allow_empty(tmp_path: Path) -> None:
    from conftest import stderr_of

    runner = CliRunner()
    table_path = videos_table(tmp_path / "videos.parquet", [tmp_path / f"gone{i}.mp4" for i in range(5)])
    out = tmp_path / "probe.parquet"
    args = ["probe", "--videos", str(table_path), "--out", str(out), "--workers", "0", "--no-progress"]
    res = runner.invoke(_app(), args)
    assert res.exit_code == 3, res.output
    warning = [line for line in stderr_of(res).splitlines() if line.startswith("weaksup: warning:")]
    assert len(warning) == 1 and "nothing done: all 5 videos were rejected" in warning[0], stderr_of(res)
    table = pq.read_table(out)  # the table is still written, every row with its reason
    assert table.num_rows == 5 and set(table.column("status").to_pylist()) == {"rejected"}
    assert all(table.column("error").to_pylist())
    res = runner.invoke(_app(), [*args, "--allow-empty"])
    assert res.exit_code == 0, res.output
    assert pq.read_table(out).num_rows == 5
