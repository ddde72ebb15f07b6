"""End to end on tiny generated videos: fingerprint + dedupe find each transform family.

One target (4 s of a textured scene) and one copy per family, encoded with PyAV; an
unrelated video must not match. Checks removal, and the overlap of a 1 s cut (100% of
the source, 25% of the target) and of an embedded copy.
"""

from __future__ import annotations

import cv2
import numpy as np
import pyarrow as pa
import pytest

from weaksup.dedupe.dedupe import DedupeConfig, dedupe_manifest
from weaksup.synth.video import textured_frames, write_video
from weaksup.tables import read_table, write_table

FPS = 16.0


def _families(frames: np.ndarray, other: np.ndarray) -> dict[str, tuple[np.ndarray, float]]:
    n, h, w = frames.shape[:3]
    grey = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
    text = frames.copy()
    for f in text:
        cv2.putText(f, "#viral", (4, h - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1)
    bars = np.zeros((n, h + 2 * (h // 6), w, 3), np.uint8)
    bars[:, h // 6 : h // 6 + h] = frames
    m_h, m_w = h // 10, w // 10
    return {
        "reencode": (frames, FPS),
        "rescale": (np.stack([cv2.resize(f, (w * 2, h * 2)) for f in frames]), FPS),
        "fps": (frames[::2], FPS / 2),
        "colour": (np.clip(frames[..., ::-1] * 0.8 + 30, 0, 255).astype(np.uint8), FPS),
        "greyscale": (np.repeat(grey[..., None], 3, axis=3), FPS),
        "text": (text, FPS),
        "trim": (frames[16:48], FPS),
        "flip": (frames[:, :, ::-1], FPS),
        "crop20": (frames[:, m_h : h - m_h, m_w : w - m_w], FPS),
        "letterbox": (bars, FPS),
        "speed": (frames[np.round(np.arange(0, n - 1, 1.1)).astype(int)], FPS),
        "embed": (np.concatenate([other[:48], frames[:32], other[48:]]), FPS),
        "unrelated": (other, FPS),
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    d = tmp_path_factory.mktemp("families")
    target = textured_frames(64, width=128, height=96, seed=11)
    other = textured_frames(128, width=128, height=96, seed=12)
    write_table(
        "videos",
        pa.Table.from_pylist([{"video_id": "target", "uri": str(write_video(d / "target.mp4", target, fps=FPS))}]),
        d / "targets.parquet",
    )
    rows = []
    for name, (frames, fps) in _families(target, other).items():
        path = write_video(d / f"{name}.mp4", frames, fps=fps, options={"crf": "28"})
        rows.append({"video_id": name, "uri": str(path), "label_id": 0, "label": "x", "matched_label_ids": [0]})
    write_table("manifest", pa.Table.from_pylist(rows), d / "manifest.parquet")
    summary = dedupe_manifest(
        DedupeConfig(
            manifest=d / "manifest.parquet",
            targets=d / "targets.parquet",
            out=d / "clean.parquet",
            report=d / "overlaps.parquet",
            workers=0,
            progress=False,
        )
    )
    report = {r["source_video_id"]: r for r in read_table("overlaps", d / "overlaps.parquet").to_pylist()}
    return summary, report


@pytest.mark.parametrize(
    "family",
    [
        "reencode",
        "rescale",
        "fps",
        "colour",
        "greyscale",
        "text",
        "trim",
        "flip",
        "crop20",
        "letterbox",
        "speed",
        "embed",
    ],
)
def test_each_family_is_found_and_removed(run, family):
    _, report = run
    assert family in report and report[family]["removed"], family


def test_flip_and_crop_are_labelled(run):
    _, report = run
    assert report["flip"]["mirrored"] is True
    assert report["crop20"]["variant"] in ("crop10", "crop20")


def test_overlap_of_a_cut_and_of_an_embedded_copy(run):
    _, report = run
    trim = report["trim"]  # 2 s cut out of the 4 s target, from 1 s on
    assert trim["overlap_source"] == pytest.approx(100, abs=5)
    assert trim["overlap_target"] == pytest.approx(50, abs=5)
    assert trim["offset_s"] == pytest.approx(1.0, abs=0.15)
    embed = report["embed"]  # 2 s of the target inside 10 s of other footage, at 3 s
    assert embed["overlap_source"] == pytest.approx(20, abs=3)
    assert embed["offset_s"] == pytest.approx(-3.0, abs=0.15)


def test_unrelated_video_is_kept(run):
    summary, report = run
    assert "unrelated" not in report
    assert summary["removed"] == 12 and summary["kept"] == 1
