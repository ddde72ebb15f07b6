"""Dedupe quality: recall, false positives and overlap error per transform family.

Targets ("benchmark videos") are real videos from ../shared/data/videos (when present)
plus generated ones with distinct textured content. Each target gets transformed copies,
one per family, made with PyAV + OpenCV; negatives are unrelated videos and hard
negatives (a different, non-overlapping segment of the same long video). Everything is
fingerprinted and deduplicated with the library as a user would run it, and each copy's
best match is compared with the truth.

    python benchmarks/dedupe_quality.py [--out DIR] [--generated 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
FAMILIES_HIGH = ("rescale", "reencode", "fps", "colour", "greyscale", "text", "trim")
FAMILIES_MID = ("flip", "crop10", "crop20", "letterbox", "speed+10", "speed-10", "embed")


def decode_rgb(path: Path, max_seconds: float, max_side: int = 320) -> tuple[np.ndarray, float]:
    """Frames (N,H,W,3) of the first ``max_seconds``, scaled so the long side is <= max_side."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        fps = float(s.average_rate or s.guessed_rate or 25)
        frames = []
        for f in c.decode(s):
            if f.time is not None and f.time > max_seconds:
                break
            scale = max_side / max(f.width, f.height)
            w, h = max(2, int(f.width * scale) // 2 * 2), max(2, int(f.height * scale) // 2 * 2)
            frames.append(f.to_ndarray(width=w, height=h, format="rgb24"))
    return np.stack(frames), fps


def encode(path: Path, frames: np.ndarray, fps: float, *, bitrate: int | None = None, gop: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        s.height, s.width = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
        s.pix_fmt = "yuv420p"
        s.codec_context.gop_size = gop
        s.options = {"preset": "ultrafast"} if bitrate is None else {"preset": "ultrafast"}
        if bitrate is not None:
            s.bit_rate = bitrate
        for fr in frames:
            for p in s.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(fr[: s.height, : s.width]), format="rgb24")
            ):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def generated_video(seed: int, seconds: float, size=(240, 320), fps: float = 24) -> np.ndarray:
    """Distinct textured content: a random smooth background, panning, with moving blobs."""
    rng = np.random.default_rng(seed)
    h, w = size
    big = cv2.resize(
        rng.random((h // 8 + 8, w // 8 + 8, 3)).astype(np.float32), (w + 64, h + 64), interpolation=cv2.INTER_CUBIC
    )
    big = (big * 255).clip(0, 255).astype(np.uint8)
    n = int(seconds * fps)
    frames = np.empty((n, h, w, 3), np.uint8)
    centres = rng.random((4, 2)) * [w, h]
    vel = (rng.random((4, 2)) - 0.5) * 8
    colours = rng.integers(0, 255, (4, 3))
    for i in range(n):
        dx, dy = int(32 + 30 * np.sin(i / 40 + seed)), int(32 + 30 * np.cos(i / 55 + seed))
        frame = big[dy : dy + h, dx : dx + w].copy()
        for k in range(4):
            x, y = (centres[k] + vel[k] * i) % [w, h]
            cv2.circle(frame, (int(x), int(y)), 12 + 4 * k, tuple(int(v) for v in colours[k]), -1)
        if (i // int(3 * fps)) % 2:  # scene change every 3 s
            frame = frame[:, ::-1] // 2 + 60
        frames[i] = frame
    return frames


@dataclass(frozen=True)
class Copy:
    family: str
    target: str
    path: Path
    overlap_source: float  # truth, percent
    overlap_target: float


def make_copies(target: str, frames: np.ndarray, fps: float, other: np.ndarray, out: Path) -> list[Copy]:
    """One transformed copy of the target per family (truth overlaps alongside)."""
    n = len(frames)
    h, w = frames.shape[1:3]
    copies: list[tuple[str, np.ndarray, float, float, float, int | None]] = []
    copies.append(
        ("rescale", np.stack([cv2.resize(f, (w // 2 // 2 * 2, h // 2 // 2 * 2)) for f in frames]), fps, 100, 100, None)
    )
    copies.append(("reencode", frames, fps, 100, 100, 60_000))
    idx = np.round(np.arange(0, n, fps / 15)).astype(int).clip(0, n - 1)
    copies.append(("fps", frames[idx], 15.0, 100, 100, None))
    copies.append(("colour", np.clip(frames[..., ::-1] * 0.7 + 40, 0, 255).astype(np.uint8), fps, 100, 100, None))
    # desaturation keeps luma (as ffmpeg's hue=s=0 or format=gray do), not the plain RGB mean
    grey = np.repeat(np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])[..., None], 3, axis=3)
    copies.append(("greyscale", grey, fps, 100, 100, None))
    text = frames.copy()
    for f in text:
        cv2.putText(f, "@someone #viral", (5, h - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
    copies.append(("text", text, fps, 100, 100, None))
    a, b = n // 4, 3 * n // 4
    copies.append(("trim", frames[a:b], fps, 100, 100 * (b - a) / n, None))
    copies.append(("flip", frames[:, :, ::-1], fps, 100, 100, None))
    for crop in (10, 20):
        m_h, m_w = int(h * crop / 200), int(w * crop / 200)
        cropped = frames[:, m_h : h - m_h, m_w : w - m_w]
        copies.append((f"crop{crop}", cropped, fps, 100, 100, None))
    bar = h // 6
    box = np.zeros((n, h + 2 * bar, w, 3), np.uint8)
    box[:, bar : bar + h] = frames
    copies.append(("letterbox", box, fps, 100, 100, None))
    for sign, name in ((1.1, "speed+10"), (0.9, "speed-10")):
        idx = np.round(np.arange(0, n, sign)).astype(int)
        idx = idx[idx < n]
        copies.append((name, frames[idx], fps, 100, 100, None))
    seg = frames[: int(5 * fps)] if n > 5 * fps else frames
    host = other[: int(60 * fps)]
    at = int(20 * fps)
    embedded = np.concatenate(
        [host[:at], np.stack([cv2.resize(f, (host.shape[2], host.shape[1])) for f in seg]), host[at:]]
    )
    copies.append(("embed", embedded, fps, 100 * len(seg) / len(embedded), 100 * len(seg) / n, None))
    out_copies = []
    for family, fr, f_fps, ov_s, ov_t, bitrate in copies:
        path = encode(out / f"{target}__{family}.mp4", fr, f_fps, bitrate=bitrate)
        out_copies.append(Copy(family, target, path, ov_s, ov_t))
    return out_copies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--generated", type=int, default=8)
    parser.add_argument("--negatives", type=int, default=24)
    args = parser.parse_args()

    from weaksup.dedupe.dedupe import DedupeConfig, dedupe_manifest
    from weaksup.tables import write_table

    work = args.out or Path(tempfile.mkdtemp(prefix="weaksup-dedupe-quality-"))
    t0 = time.perf_counter()
    targets: dict[str, tuple[np.ndarray, float]] = {}
    for p in sorted(SHARED.glob("*")) if SHARED.is_dir() else []:
        try:
            frames, fps = decode_rgb(p, 12.0)
        except Exception:
            continue
        if len(frames) >= 2 * fps and frames.std() > 10:  # at least 2 s of non-flat content
            targets[p.stem] = (frames, fps)
    for i in range(args.generated):
        targets[f"gen{i}"] = (generated_video(100 + i, 8.0), 24.0)

    host = generated_video(999, 62.0)
    copies: list[Copy] = []
    target_rows = []
    for name, (frames, fps) in targets.items():
        tpath = encode(work / "targets" / f"{name}.mp4", frames, fps)
        target_rows.append({"video_id": name, "uri": str(tpath), "hashtags": []})
        copies += make_copies(name, frames, fps, host, work / "copies")

    negatives = []
    for i in range(args.negatives):
        frames = generated_video(5000 + i, 6.0)
        negatives.append(("unrelated", encode(work / "negatives" / f"neg{i}.mp4", frames, 24.0), None))
    long = generated_video(777, 40.0)
    encode(work / "targets" / "long_target.mp4", long[: 24 * 10], 24.0)
    target_rows.append({"video_id": "long_target", "uri": str(work / "targets" / "long_target.mp4"), "hashtags": []})
    for k, start in enumerate((15, 25, 32)):
        path = encode(work / "negatives" / f"hard{k}.mp4", long[24 * start : 24 * (start + 6)], 24.0)
        negatives.append(("hard", path, "long_target"))

    manifest_rows = [
        {"video_id": c.path.stem, "uri": str(c.path), "label_id": 0, "label": c.family, "matched_label_ids": [0]}
        for c in copies
    ] + [
        {"video_id": p.stem, "uri": str(p), "label_id": 0, "label": kind, "matched_label_ids": [0]}
        for kind, p, _ in negatives
    ]
    write_table("manifest", pa.Table.from_pylist(manifest_rows), work / "manifest.parquet")
    write_table("videos", pa.Table.from_pylist(target_rows), work / "targets.parquet")
    t1 = time.perf_counter()
    summary = dedupe_manifest(
        DedupeConfig(
            manifest=work / "manifest.parquet",
            targets=work / "targets.parquet",
            out=work / "clean.parquet",
            report=work / "overlaps.parquet",
            progress=False,
        )
    )
    t2 = time.perf_counter()
    report = (
        pa.parquet.read_table(work / "overlaps.parquet").to_pylist() if (work / "overlaps.parquet").exists() else []
    )
    best: dict[tuple[str, str], dict] = {}
    for r in report:
        key = (r["source_video_id"], r["target_video_id"])
        if key not in best or r["overlap_source"] > best[key]["overlap_source"]:
            best[key] = r
    removed_sources = {r["source_video_id"] for r in report if r["removed"]}

    print(
        f"\ndedupe quality: {len(targets)} targets ({sum(1 for t in targets if not t.startswith('gen'))} real), "
        f"{len(copies)} copies, {len(negatives)} negatives; build {t1 - t0:.0f} s, dedupe {t2 - t1:.0f} s\n"
    )
    print("| family | copies | recall | overlap MAE (points) | goal |")
    print("|---|---:|---:|---:|---|")
    for family in FAMILIES_HIGH + FAMILIES_MID:
        fam = [c for c in copies if c.family == family]
        found = [c for c in fam if c.path.stem in removed_sources]
        errors = [
            abs(best[(c.path.stem, c.target)]["overlap_source"] - c.overlap_source)
            for c in fam
            if (c.path.stem, c.target) in best
        ]
        goal = "recall ≥ 0.98" if family in FAMILIES_HIGH else "recall ≥ 0.90"
        mae = f"{np.mean(errors):.1f}" if errors else "-"
        print(f"| {family} | {len(fam)} | {len(found) / max(1, len(fam)):.2f} | {mae} | {goal} |")
    n_pairs_unrelated = sum(1 for k, _, _ in negatives if k == "unrelated") * len(target_rows)
    fp_unrelated = sum(1 for k, p, _ in negatives if k == "unrelated" and p.stem in removed_sources)
    hard = [(p, t) for k, p, t in negatives if k == "hard"]
    fp_hard = sum(1 for p, t in hard if p.stem in removed_sources)
    wrong_target = sum(1 for (s, t), r in best.items() if r["removed"] and "__" in s and s.rsplit("__", 1)[0] != t)
    print(
        f"\nfalse positives: unrelated {fp_unrelated} of {n_pairs_unrelated} pairs "
        f"({100 * fp_unrelated / max(1, n_pairs_unrelated):.2f}%, goal ≤ 0.1%); "
        f"hard negatives {fp_hard} of {len(hard)} (goal ≤ 2%); copies matched to a wrong target: {wrong_target}"
    )
    print(f"summary: {summary}")


if __name__ == "__main__":
    main()
