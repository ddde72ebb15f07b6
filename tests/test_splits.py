"""Temporal splits (short / long / long-center) and clip materialisation."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from conftest import assert_input_error, rows
from typer.testing import CliRunner

from weaksup.assembly import splits as splits_mod
from weaksup.assembly.splits import SplitsConfig, make_splits, materialize_clips, materialized_paths, summary_path
from weaksup.bulk import parts_dir
from weaksup.cli import splits as splits_cli
from weaksup.errors import InputError
from weaksup.hashing import stable_uniform
from weaksup.synth.video import write_test_video
from weaksup.tables import read_table, write_table

ACCOUNTING = ("selected", "over_budget", "too_short", "too_long", "no_duration", "probe_rejected")

# video_id -> (manifest duration, probe status or None when the probe lacks it, probe duration)
VIDEOS: dict[str, tuple[float | None, str | None, float | None]] = {
    "d0.5": (0.5, "ok", 0.5),
    "d1": (1.0, "ok", 1.0),
    "d3": (40.0, "ok", 3.0),  # the probe's measured duration wins over the manifest's
    "d5": (5.0, "ok", 5.0),
    "d5.5": (5.5, "ok", 5.5),
    "d30": (30.0, "ok", 30.0),
    "d55": (55.0, "ok", 55.0),
    "d58": (58.0, "ok", 58.0),
    "d60": (60.0, "ok", 60.0),
    "d61": (61.0, "ok", 61.0),
    "m2": (2.0, None, None),  # not probed: manifest duration
    "ok57": (57.0, "ok", None),  # probed ok without a duration: manifest duration
    "bad": (3.0, "rejected", None),  # unreadable: never selected
    "nodur": (None, None, None),  # no duration anywhere
}
SHORT = {"d1", "d3", "d5", "m2"}
LONG = {"d55", "d58", "d60", "ok57"}


def write_manifest(
    path: Path, videos: dict[str, tuple[float | None, str | None, float | None]], uris: dict[str, str] | None = None
) -> Path:
    ids = list(videos)
    write_table(
        "manifest",
        {
            "video_id": ids,
            "uri": [(uris or {}).get(v, f"/videos/{v}.mp4") for v in ids],
            "label_id": [i % 3 for i in range(len(ids))],
            "label": [f"label{i % 3}" for i in range(len(ids))],
            "matched_label_ids": [[i % 3] for i in range(len(ids))],
            "duration_s": [videos[v][0] for v in ids],
        },
        path,
    )
    return path


def write_probe(path: Path, videos: dict[str, tuple[float | None, str | None, float | None]]) -> Path:
    probed = [v for v in videos if videos[v][1] is not None]
    # a failed earlier probe of d3 next to its ok row: the ok row wins
    ids = ["d3"] + probed if "d3" in videos else probed
    status = ["rejected"] + [videos[v][1] for v in probed] if "d3" in videos else [videos[v][1] for v in probed]
    write_table(
        "probe",
        {
            "video_id": ids,
            "uri": [f"/videos/{v}.mp4" for v in ids],
            "status": status,
            "error": [None if s == "ok" else "InvalidDataError: bad" for s in status],
            "duration_s": [None if s != "ok" else videos[v][2] for v, s in zip(ids, status)],
            "fps": [30.0 if s == "ok" else None for s in status],
        },
        path,
    )
    return path


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    return write_manifest(tmp_path / "manifest.parquet", VIDEOS), write_probe(tmp_path / "probe.parquet", VIDEOS)


def split(inputs: tuple[Path, Path], out: Path, kind: str, **kw) -> tuple[dict, list[dict]]:
    manifest, probe = inputs
    summary = make_splits(SplitsConfig(manifest=manifest, probe=probe, kind=kind, out=out, **kw))
    return summary, rows(out)


def test_kinds_select_the_paper_bounds_and_account_for_every_row(inputs, tmp_path):
    short, short_rows = split(inputs, tmp_path / "short.parquet", "short")
    long, long_rows = split(inputs, tmp_path / "long.parquet", "long")
    center, center_rows = split(inputs, tmp_path / "center.parquet", "long-center")

    assert {r["video_id"] for r in short_rows} == SHORT
    assert {r["video_id"] for r in long_rows} == LONG
    assert {r["video_id"] for r in center_rows} == {r["video_id"] for r in long_rows}
    for r in short_rows:
        assert 1.0 <= r["duration_s"] <= 5.0 and r["clip_start_s"] == 0.0 and r["clip_end_s"] == r["duration_s"]
        assert r["split"] == "short"
    for r in long_rows:
        assert 55.0 <= r["duration_s"] <= 60.0 and r["clip_start_s"] == 0.0 and r["clip_end_s"] == r["duration_s"]
    for r in center_rows:
        d = r["duration_s"]
        assert r["clip_start_s"] == pytest.approx((d - 4.0) / 2) and r["clip_end_s"] - r[
            "clip_start_s"
        ] == pytest.approx(4.0)
        assert r["split"] == "long-center"
    assert {r["video_id"]: r["duration_s"] for r in short_rows}["d3"] == 3.0  # probe beats manifest

    for s in (short, long, center):
        assert sum(s[k] for k in ACCOUNTING) == s["manifest_rows"] == len(VIDEOS)
        assert s["probe_rejected"] == 1 and s["no_duration"] == 1 and s["over_budget"] == 0
    assert (short["selected"], short["too_short"], short["too_long"]) == (4, 1, 7)
    assert (long["selected"], long["too_short"], long["too_long"]) == (4, 7, 1)
    assert short["duration_from_manifest"] == 2 and short["duration_from_probe"] == 10  # m2, ok57
    assert center["clip_seconds"] == pytest.approx(16.0)
    assert read_table("clips", tmp_path / "center.parquet").num_rows == 4
    assert summary_path(tmp_path / "center.parquet").is_file()


def test_bound_overrides_and_center_option(inputs, tmp_path):
    _, got = split(inputs, tmp_path / "a.parquet", "short", min_s=0.5, max_s=5.5)
    assert {r["video_id"] for r in got} == SHORT | {"d0.5", "d5.5"}
    _, got = split(inputs, tmp_path / "b.parquet", "long-center", center_s=10.0)
    assert all(r["clip_end_s"] - r["clip_start_s"] == pytest.approx(10.0) for r in got)
    with pytest.raises(InputError, match="min-s >= center-s"):
        split(inputs, tmp_path / "c.parquet", "long-center", min_s=2.0)
    with pytest.raises(InputError, match="unknown split kind"):
        split(inputs, tmp_path / "d.parquet", "medium")
    with pytest.raises(InputError, match="min-s <= max-s"):
        split(inputs, tmp_path / "e.parquet", "short", min_s=6.0)


@pytest.fixture
def many(tmp_path: Path) -> tuple[Path, Path]:
    """300 short and 300 long videos with varied durations, no probe rejects."""
    rng = np.random.default_rng(0)
    videos: dict[str, tuple[float | None, str | None, float | None]] = {}
    for i in range(300):
        d = float(np.round(rng.uniform(1, 5), 3))
        videos[f"s{i:03d}"] = (d, "ok", d)
        d = float(np.round(rng.uniform(55, 60), 3))
        videos[f"l{i:03d}"] = (d, "ok", d)
    return write_manifest(tmp_path / "many.parquet", videos), write_probe(tmp_path / "many_probe.parquet", videos)


def test_max_videos_is_a_seeded_prefix_shared_by_long_and_long_center(many, tmp_path):
    s1, a = split(many, tmp_path / "a.parquet", "long", max_videos=50, seed=7)
    _, b = split(many, tmp_path / "b.parquet", "long", max_videos=50, seed=7)
    _, c = split(many, tmp_path / "c.parquet", "long-center", max_videos=50, seed=7)
    _, d = split(many, tmp_path / "d.parquet", "long", max_videos=50, seed=8)
    assert len(a) == 50 and a == b
    assert s1["over_budget"] == 250 and sum(s1[k] for k in ACCOUNTING) == 600
    assert {r["video_id"] for r in c} == {r["video_id"] for r in a}
    assert {r["video_id"] for r in d} != {r["video_id"] for r in a}
    # the chosen ones are exactly the 50 with the lowest stable priority
    longs = [f"l{i:03d}" for i in range(300)]
    u = stable_uniform(longs, 7, splits_mod.PRIORITY_SALT)
    assert {r["video_id"] for r in a} == {longs[i] for i in np.argsort(u)[:50]}


def test_max_videos_does_not_depend_on_manifest_row_order(many, tmp_path):
    manifest, probe = many
    table = pq.read_table(manifest)
    shuffled = table.take(np.random.default_rng(1).permutation(table.num_rows))
    write_table("manifest", shuffled, tmp_path / "shuffled.parquet")
    _, a = split(many, tmp_path / "a.parquet", "short", max_videos=40)
    _, b = split((tmp_path / "shuffled.parquet", probe), tmp_path / "b.parquet", "short", max_videos=40)
    assert sorted(r["video_id"] for r in a) == sorted(r["video_id"] for r in b)


def test_total_duration_matches_the_budget(many, tmp_path):
    budget = 600.0
    s_short, short = split(many, tmp_path / "s.parquet", "short", total_duration_s=budget)
    s_long, long = split(many, tmp_path / "l.parquet", "long", total_duration_s=budget)
    s_center, center = split(many, tmp_path / "c.parquet", "long-center", total_duration_s=budget)
    for summary, got, longest in ((s_short, short, 5.0), (s_long, long, 60.0), (s_center, center, 4.0)):
        total = sum(r["clip_end_s"] - r["clip_start_s"] for r in got)
        assert total == pytest.approx(summary["clip_seconds"])
        assert budget - longest < total <= budget + 1e-6  # filled up to within one clip
    assert len(center) == 150  # 150 x 4 s = 600 s exactly
    assert len(short) > len(long)  # F2: same seconds, many more short videos
    # with both budgets the stricter one wins
    s, got = split(many, tmp_path / "x.parquet", "short", total_duration_s=budget, max_videos=10)
    assert len(got) == 10 and s["over_budget"] == 290 and s["too_long"] == 300
    _, again = split(many, tmp_path / "s2.parquet", "short", total_duration_s=budget)
    assert again == short


def test_input_errors(inputs, tmp_path):
    manifest, probe = inputs
    with pytest.raises(InputError, match="file not found"):
        make_splits(
            SplitsConfig(manifest=manifest, probe=tmp_path / "nope.parquet", kind="short", out=tmp_path / "o.parquet")
        )
    table = pq.read_table(manifest)
    pq.write_table(pa.concat_tables([table, table]), tmp_path / "dup.parquet")
    with pytest.raises(InputError, match="duplicate video_id"):
        make_splits(
            SplitsConfig(manifest=tmp_path / "dup.parquet", probe=probe, kind="short", out=tmp_path / "o.parquet")
        )
    # without a probe table, durations come from the manifest alone
    s = make_splits(SplitsConfig(manifest=manifest, probe=None, kind="short", out=tmp_path / "o.parquet"))
    assert {r["video_id"] for r in rows(tmp_path / "o.parquet")} == {"d1", "d5", "m2", "bad"}
    assert s["probe_rejected"] == 0 and s["duration_from_probe"] == 0


# ------------------------------------------------------------------ materialize

FPS, SECONDS, W, H, GOP_SRC = 16, 6.0, 96, 64, 10


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """Two real 6 s moving-square videos (keyframe every 10 frames, so seeks drop a pre-roll),
    a missing path and a corrupt file."""
    root = tmp_path_factory.mktemp("sources")
    corrupt = root / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    return {
        "a": write_test_video(root / "a.mp4", seconds=SECONDS, fps=FPS, width=W, height=H, seed=1, gop=GOP_SRC),
        "b": write_test_video(root / "b.mp4", seconds=SECONDS, fps=FPS, width=W, height=H, seed=2, gop=GOP_SRC),
        "missing": root / "missing.mp4",
        "corrupt": corrupt,
    }


def clips_table(sources: dict[str, Path], path: Path) -> Path:
    windows = {"a": (2.0, 4.0), "b": (0.0, 1.5), "missing": (2.0, 4.0), "corrupt": (2.0, 4.0)}
    ids = list(windows)
    write_table(
        "clips",
        {
            "video_id": ids,
            "uri": [str(sources[v]) for v in ids],
            "label_id": [0, 1, 0, 1],
            "label": ["x", "y", "x", "y"],
            "split": ["long-center"] * 4,
            "clip_start_s": [windows[v][0] for v in ids],
            "clip_end_s": [windows[v][1] for v in ids],
            "duration_s": [SECONDS] * 4,
        },
        path,
    )
    return path


def thumbnails(path: Path) -> tuple[list[np.ndarray], tuple[int, int]]:
    """24x16 grey thumbnails of every frame (area-averaged, so coding noise mostly cancels)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        thumbs = [
            f.reformat(width=24, height=16, format="gray", interpolation="AREA").to_ndarray().astype(np.float64)
            for f in c.decode(s)
        ]
        return thumbs, (s.width, s.height)


def check_cut(path: Path, source: Path, first_index: int, n_expected: int) -> None:
    """The cut decodes, has ~n frames at short side 32, and starts at source frame first_index."""
    out, size = thumbnails(path)
    assert size == (48, 32)  # 96x64 with the short side at 32
    assert abs(len(out) - n_expected) <= 1
    src, _ = thumbnails(source)
    mad = np.array([np.abs(out[0] - s).mean() for s in src])
    assert int(np.argmin(mad)) == first_index
    far = [i for i in range(len(src)) if abs(i - first_index) >= 8]
    assert mad[first_index] < 0.3 * mad[far].min()


def materialize(clips: Path, out: Path, **kw) -> dict:
    kw.setdefault("workers", 0)
    return materialize_clips(clips, out, short_side=32, crf=18, progress=False, **kw)


def test_materialize_cuts_windows_and_rejects_bad_sources(sources, tmp_path):
    clips = clips_table(sources, tmp_path / "clips.parquet")
    summary = materialize(clips, tmp_path / "cut")
    mat_path, cut_clips_path, _ = materialized_paths(tmp_path / "cut")
    mat = {r["video_id"]: r for r in rows(mat_path)}
    assert [r["video_id"] for r in rows(mat_path)] == ["a", "b", "missing", "corrupt"]
    assert mat["a"]["status"] == mat["b"]["status"] == "ok"
    assert mat["missing"]["status"] == "rejected" and mat["missing"]["error"].startswith("source not found")
    assert mat["corrupt"]["status"] == "rejected" and mat["corrupt"]["error"].startswith("unreadable source")
    assert mat["missing"]["uri"] is None and mat["a"]["n_frames"] == 32
    assert mat["a"]["cut_s"] == pytest.approx(2.0) and mat["missing"]["cut_s"] is None  # measured by the worker
    assert summary["ok"] == 2 and summary["rejected"] == 2
    assert summary["rejected_by_reason"] == {"source not found": 1, "unreadable source": 1}

    check_cut(tmp_path / "cut" / "a.mp4", sources["a"], first_index=32, n_expected=32)
    check_cut(tmp_path / "cut" / "b.mp4", sources["b"], first_index=0, n_expected=24)
    with av.open(str(tmp_path / "cut" / "a.mp4")) as c:
        assert not c.streams.audio
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.format.name == "yuv420p"
        keyframes = [i for i, p in enumerate(p for p in c.demux(s) if p.size) if p.is_keyframe]
    assert keyframes == [0, 16]  # short GOP

    cut = {r["video_id"]: r for r in read_table("clips", cut_clips_path).to_pylist()}
    assert set(cut) == {"a", "b"}
    assert cut["a"]["uri"] == str(tmp_path / "cut" / "a.mp4") and cut["a"]["clip_start_s"] == 0.0
    assert cut["a"]["clip_end_s"] == pytest.approx(2.0) and cut["b"]["clip_end_s"] == pytest.approx(1.5)
    assert cut["a"]["label"] == "x" and cut["a"]["split"] == "long-center"
    assert sorted(p.name for p in (tmp_path / "cut").iterdir()) == sorted(
        ["a.mp4", "b.mp4", "materialized.parquet", "clips.parquet", "materialized.summary.json"]
    )


def test_the_clips_of_the_cut_files_take_the_workers_lengths(tmp_path, monkeypatch):
    """The driver writes the cut files' clips table from the lengths the workers measured:
    it opens a cut file only for a row of an older weaksup's part (no ``cut_s``)."""
    opened: list[str] = []
    monkeypatch.setattr(splits_mod, "_cut_seconds", lambda u: (opened.append(u), 9.0)[1])
    cut = pa.table(
        {
            "video_id": ["a", "b"],
            "uri": ["/src/a.mp4", "/src/b.mp4"],
            "label_id": pa.array([0, 1], pa.int32()),
            "label": ["x", "y"],
            "split": ["short", "short"],
            "clip_start_s": [1.0, 2.0],
            "clip_end_s": [3.0, 4.0],
        }
    )
    block, seconds = splits_mod._cut_clips_block(cut, pa.array(["/cut/a.mp4", "/cut/b.mp4"]), pa.array([2.5, None]))
    assert opened == ["/cut/b.mp4"] and seconds == pytest.approx(11.5)
    assert (
        block.column("clip_end_s").to_pylist() == [2.5, 9.0] and block.column("source_clip_start_s")[1].as_py() == 2.0
    )


def test_seek_failures_fall_back_to_a_linear_decode(sources, tmp_path, monkeypatch):
    clips = clips_table(sources, tmp_path / "clips.parquet")
    seeks: list[float] = []
    real_seek = splits_mod._seek
    monkeypatch.setattr(splits_mod, "_seek", lambda c, s, t: (seeks.append(t), real_seek(c, s, t))[1])
    materialize(clips, tmp_path / "normal")
    assert seeks == [2.0]  # only the window that does not start at 0 seeks

    def broken(container, stream, seconds):
        raise OSError("seek failed")

    monkeypatch.setattr(splits_mod, "_seek", broken)
    materialize(clips, tmp_path / "raising")
    check_cut(tmp_path / "raising" / "a.mp4", sources["a"], first_index=32, n_expected=32)

    # a seek that lands after the window start (broken index) is detected too
    monkeypatch.setattr(splits_mod, "_seek", lambda c, s, t: real_seek(c, s, t + 1.5))
    materialize(clips, tmp_path / "late")
    check_cut(tmp_path / "late" / "a.mp4", sources["a"], first_index=32, n_expected=32)


def _mp4_boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, whole box) of the ISO-BMFF boxes in ``data`` (32-bit sizes only: small test files)."""
    out, pos = [], 0
    while pos < len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        out.append((data[pos + 4 : pos + 8], data[pos : pos + size]))
        pos += size
    return out


def with_cover_art_first(source: Path, dest: Path) -> Path:
    """``source``'s video remuxed beside an attached cover picture that FFmpeg lists as the first
    video stream: the mp4 muxer writes cover art as ``moov/udta/meta/ilst/covr``, after the
    tracks, so the ``udta`` box is moved before them (inside ``moov``, so no offset changes)."""
    plain = dest.with_name("plain-" + dest.name)
    with av.open(str(source)) as src, av.open(str(plain), "w", options={"movflags": "+faststart"}) as out:
        video_in = src.streams.video[0]
        video_out = out.add_stream_from_template(video_in)
        cover = out.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 32, 32, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        picture = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 200, np.uint8), format="rgb24")
        for packet in [*cover.encode(picture.reformat(format="yuvj420p")), *cover.encode()]:
            out.mux(packet)
        for packet in src.demux(video_in):
            if packet.dts is not None:
                packet.stream = video_out
                out.mux(packet)
    top = _mp4_boxes(plain.read_bytes())
    moved = b""
    for kind, box in top:
        if kind == b"moov":
            children = sorted(_mp4_boxes(box[8:]), key=lambda child: child[0] != b"udta")
            box = box[:8] + b"".join(b for _, b in children)
        moved += box
    dest.write_bytes(moved)
    with av.open(str(dest)) as c:  # the premise: a reader taking "the first video stream" gets the picture
        first, second = c.streams.video
        assert first.disposition & av.stream.Disposition.attached_pic and first.codec_context.name == "mjpeg"
        assert not second.disposition & av.stream.Disposition.attached_pic and second.frames == FPS * SECONDS
    return dest


def test_materialize_cuts_the_real_video_stream_not_the_cover_art(sources, tmp_path):
    covered = with_cover_art_first(sources["a"], tmp_path / "covered.mp4")
    clips = clips_table({**sources, "a": covered}, tmp_path / "clips.parquet")
    summary = materialize(clips, tmp_path / "cut")
    mat = {r["video_id"]: r for r in rows(materialized_paths(tmp_path / "cut")[0])}
    assert mat["a"]["status"] == "ok" and mat["a"]["n_frames"] == 32, mat["a"]["error"]
    assert summary["ok"] == 2
    check_cut(tmp_path / "cut" / "a.mp4", sources["a"], first_index=32, n_expected=32)


def test_materialize_resumes_after_a_kill(sources, tmp_path, monkeypatch):
    clips = clips_table(sources, tmp_path / "clips.parquet")
    out = tmp_path / "cut"
    calls: list[str] = []
    real = splits_mod._encode_window

    def killed_at_b(source, dest, start, end, settings):
        calls.append(dest.name)
        if dest.name == "b.mp4":
            raise KeyboardInterrupt  # not an Exception: escapes the worker like a kill
        return real(source, dest, start, end, settings)

    monkeypatch.setattr(splits_mod, "_encode_window", killed_at_b)
    with pytest.raises(KeyboardInterrupt):
        materialize(clips, out, chunk_size=1)
    mat_path, _, _ = materialized_paths(out)
    assert not mat_path.exists() and len(list(parts_dir(mat_path).glob("*/part-*.parquet"))) == 1
    first = (out / "a.mp4").stat().st_mtime_ns

    def counting(source, dest, start, end, settings):
        calls.append(dest.name)
        return real(source, dest, start, end, settings)

    calls.clear()
    monkeypatch.setattr(splits_mod, "_encode_window", counting)
    summary = materialize(clips, out, chunk_size=1)
    assert calls == ["b.mp4", "corrupt.mp4"]  # a was done; missing never reaches the encoder
    assert (out / "a.mp4").stat().st_mtime_ns == first
    assert summary["ok"] == 2 and summary["rejected"] == 2
    assert not parts_dir(mat_path).exists()
    assert not [p for p in out.iterdir() if ".tmp" in p.name]


def test_materialize_recomputes_parts_of_other_windows_or_settings(sources, tmp_path, monkeypatch):
    """Killed, then rerun on a clips table with another window for "a": the resumed run used to keep
    a's old cut and row (parts were matched by row number only, issue 15)."""
    from weaksup.bulk import StaleResumeWarning

    clips = clips_table(sources, tmp_path / "clips.parquet")
    out = tmp_path / "cut"
    real = splits_mod._encode_window

    def killed_at_b(source, dest, start, end, settings):
        if dest.name == "b.mp4":
            raise KeyboardInterrupt
        return real(source, dest, start, end, settings)

    def cut(table: Path, **kw) -> dict:
        return materialize_clips(
            table, out, **{"short_side": 32, "crf": 18, "progress": False, "workers": 0, "chunk_size": 1, **kw}
        )

    def kill() -> None:
        with monkeypatch.context() as patch:
            patch.setattr(splits_mod, "_encode_window", killed_at_b)
            with pytest.raises(KeyboardInterrupt):
                cut(clips)

    kill()
    moved = tmp_path / "moved.parquet"
    table = read_table("clips", clips)
    starts = table.column("clip_start_s").to_pylist()
    ends = table.column("clip_end_s").to_pylist()
    starts[0], ends[0] = 0.0, 1.5  # "a" now from 0 s
    table = table.set_column(
        table.schema.get_field_index("clip_start_s"), "clip_start_s", pa.array(starts, pa.float64())
    )
    write_table(
        "clips",
        table.set_column(table.schema.get_field_index("clip_end_s"), "clip_end_s", pa.array(ends, pa.float64())),
        moved,
    )
    with pytest.warns(StaleResumeWarning, match=r"1 of 1 part of an earlier run was stale .*input rows changed"):
        summary = cut(moved)
    assert summary["ok"] == 2
    mat = {r["video_id"]: r for r in rows(materialized_paths(out)[0])}
    assert (mat["a"]["clip_start_s"], mat["a"]["clip_end_s"]) == (0.0, 1.5)
    check_cut(out / "a.mp4", sources["a"], first_index=0, n_expected=24)

    # other cut settings: stale too; --resume-strict stops instead, --no-resume starts over
    kill()
    with pytest.raises(InputError, match=r"settings changed: crf 18 -> 30"):
        cut(clips, crf=30, resume_strict=True)
    with pytest.warns(StaleResumeWarning, match=r"settings changed: crf 18 -> 30"):
        cut(clips, crf=30)
    kill()
    calls: list[str] = []
    monkeypatch.setattr(
        splits_mod, "_encode_window", lambda s, d, a, b, c: (calls.append(d.name), real(s, d, a, b, c))[1]
    )
    cut(clips, resume=False)
    assert calls == ["a.mp4", "b.mp4", "corrupt.mp4"]


def test_materialize_in_worker_processes(sources, tmp_path):
    clips = clips_table(sources, tmp_path / "clips.parquet")
    summary = materialize(clips, tmp_path / "cut", workers=2, chunk_size=1)
    assert summary["ok"] == 2 and summary["frames"] == 32 + 24
    with pytest.raises(InputError, match="even"):
        materialize_clips(clips, tmp_path / "x", short_side=33)


# ------------------------------------------------------------------ CLI


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test root"""

    splits_cli.register(app)
    return app


def test_cli_splits_and_materialize(app, sources, tmp_path):
    videos = {"a": (6.0, "ok", 6.0), "b": (3.0, "ok", 3.0), "gone": (2.0, None, None)}
    manifest = write_manifest(
        tmp_path / "m.parquet",
        videos,
        uris={"a": str(sources["a"]), "b": str(sources["b"]), "gone": str(sources["missing"])},
    )
    probe = write_probe(tmp_path / "p.parquet", videos)
    out = tmp_path / "clips.parquet"
    result = CliRunner().invoke(
        app,
        [
            "splits",
            "--manifest",
            str(manifest),
            "--probe",
            str(probe),
            "--kind",
            "short",
            "--out",
            str(out),
            "--max-s",
            "6",
            "--materialize",
            str(tmp_path / "cut"),
            "--short-side",
            "32",
            "--workers",
            "0",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "selected" in result.output and "rejected" in result.output
    assert {r["video_id"] for r in rows(out)} == {"a", "b", "gone"}
    assert (tmp_path / "cut" / "a.mp4").is_file() and (tmp_path / "cut" / "b.mp4").is_file()
    mat = {r["video_id"]: r["status"] for r in rows(tmp_path / "cut" / "materialized.parquet")}
    assert mat == {"a": "ok", "b": "ok", "gone": "rejected"}


def test_cli_input_errors(app, inputs, tmp_path):
    manifest, probe = inputs
    runner = CliRunner()

    def invoke(*args: object):
        return runner.invoke(app, ["splits", *map(str, args)], catch_exceptions=False)

    out = tmp_path / "o.parquet"
    no_label = tmp_path / "no_label.parquet"
    pq.write_table(pq.read_table(manifest).drop_columns(["label_id"]), no_label)
    assert_input_error(invoke("--manifest", no_label, "--probe", probe, "--kind", "short", "--out", out), "label_id")
    assert_input_error(
        invoke("--manifest", manifest, "--probe", tmp_path / "nope.parquet", "--kind", "short", "--out", out),
        "nope.parquet",
        "not found",
    )
    assert_input_error(invoke("--manifest", manifest, "--probe", probe, "--kind", "medium", "--out", out), "medium")
    assert_input_error(
        invoke(
            "--manifest",
            manifest,
            "--probe",
            probe,
            "--kind",
            "short",
            "--out",
            tmp_path / "cut" / "clips.parquet",
            "--materialize",
            tmp_path / "cut",
        ),
        "--out",
    )
    assert not out.exists()


def test_cli_selection_that_keeps_nothing_exits_3_unless_allow_empty(app, inputs, tmp_path):
    from conftest import stderr_of

    manifest, probe = inputs
    out = tmp_path / "clips.parquet"
    args = [
        "splits",
        "--manifest",
        str(manifest),
        "--probe",
        str(probe),
        "--kind",
        "short",
        "--out",
        str(out),
        "--max-videos",
        "0",
    ]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 3, result.output
    warning = [line for line in stderr_of(result).splitlines() if line.startswith("weaksup: warning:")]
    assert len(warning) == 1 and "nothing done: the selection keeps none" in warning[0], stderr_of(result)
    assert "over budget" in warning[0]
    assert out.exists() and read_table("clips", out).num_rows == 0  # the (empty) table is still written
    result = CliRunner().invoke(app, [*args, "--allow-empty"], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_materialize_from_a_parquet_file_in_blocks_equals_the_table_in_memory(sources, tmp_path):
    """A clips file of several row groups is cut block by block (each worker reads its rows);
    the materialized table, the cut-clips table and the summary equal those of the same
    clips given as an in-memory table. A repeated video_id is refused from hashes alone."""
    clips = clips_table(sources, tmp_path / "clips.parquet")
    table = pq.read_table(clips)
    split = tmp_path / "split.parquet"
    pq.write_table(table, split, row_group_size=1)
    from_file = materialize(split, tmp_path / "file", chunk_size=1, workers=2)
    in_memory = materialize(table, tmp_path / "memory", chunk_size=1)
    for a, b in zip(materialized_paths(tmp_path / "file")[:2], materialized_paths(tmp_path / "memory")[:2]):
        left, right = pq.read_table(a), pq.read_table(b)
        assert left.drop_columns(["uri"]).equals(right.drop_columns(["uri"]))
    assert {k: v for k, v in from_file.items() if k not in ("materialized", "clips_table")} == {
        k: v for k, v in in_memory.items() if k not in ("materialized", "clips_table")
    }
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), split, row_group_size=2)
    with pytest.raises(InputError, match="1 duplicate video_id"):
        materialize(split, tmp_path / "again")
