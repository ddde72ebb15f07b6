"""Rendering a planned video into RGB frames: backgrounds, shapes, motion, planted copies.

Every function here is a pure function of its plan entry (:mod:`weaksup.synth.plan`): the
same entry gives the same frames, bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

from weaksup.synth.plan import ZOOM_RANGE, Background, ClipSpec, PlantSpec, Shape, TargetVideo, WebVideo


def _background_canvas(bg: Background, width: int, height: int) -> np.ndarray:
    """The texture as uint8 RGB, ``pad`` pixels larger than the frame on every side (room to pan)."""
    import cv2

    rng = np.random.default_rng(bg.seed)
    cw, ch = width + 2 * bg.pad, height + 2 * bg.pad
    coarse = rng.random((ch // bg.cell + 3, cw // bg.cell + 3)).astype(np.float32)
    value = cv2.resize(coarse, (cw, ch), interpolation=cv2.INTER_CUBIC)
    fine = cv2.resize(
        rng.random((ch // 4 + 3, cw // 4 + 3)).astype(np.float32), (cw, ch), interpolation=cv2.INTER_LINEAR
    )
    value = 0.8 * value + 0.2 * fine
    if bg.style == "stripes":
        yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
        wave = 0.5 + 0.5 * np.sin(
            2 * np.pi * (xx * np.cos(bg.stripe_angle) + yy * np.sin(bg.stripe_angle)) / bg.stripe_wavelength
        )
        value = 0.55 * value + 0.45 * wave
    value = bg.low + (bg.high - bg.low) * np.clip(value, 0, 1)
    return np.clip(value[..., None] * np.asarray(bg.tint, np.float32), 0, 255).astype(np.uint8)


def _unit_polygon(shape: Shape) -> np.ndarray:
    if shape == "square":
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) * 0.8
    if shape == "triangle":
        a = np.deg2rad([-90, 30, 150])
        return np.stack([np.cos(a), np.sin(a)], 1) * 1.1
    w = 0.38  # cross: a plus sign of arm half-width w
    return np.array(
        [[-w, -1], [w, -1], [w, -w], [1, -w], [1, w], [w, w], [w, 1], [-w, 1], [-w, w], [-1, w], [-1, -w], [-w, -w]],
        np.float64,
    )


_SHIFT = 4  # cv2 drawing at 1/16 pixel precision


def _draw_shape(
    img: np.ndarray, shape: Shape, colour: tuple[int, int, int], x: float, y: float, r: float, angle: float
) -> None:
    import cv2

    s = 1 << _SHIFT
    a = math.radians(angle)
    if shape == "disc":
        centre = (round(x * s), round(y * s))
        cv2.circle(img, centre, max(1, round(r * s)), colour, -1, cv2.LINE_AA, _SHIFT)
        # a darker radius, so that spinning shows
        tip = (round((x + 0.9 * r * math.cos(a)) * s), round((y + 0.9 * r * math.sin(a)) * s))
        dark = tuple(int(c * 0.35) for c in colour)
        cv2.line(img, centre, tip, dark, max(2, round(r / 2.5)), cv2.LINE_AA, _SHIFT)
        return
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    pts = (_unit_polygon(shape) @ rot.T) * r + (x, y)
    cv2.fillPoly(img, [np.round(pts * s).astype(np.int32)], colour, cv2.LINE_AA, _SHIFT)


def object_pose(clip: ClipSpec, frame: int) -> tuple[float, float, float, float]:
    """Object centre x, y, scale and angle (degrees, clockwise on screen) at ``frame``, before jitter."""
    length = clip.action_end - clip.action_start
    tau = min(max(frame - clip.action_start, 0), max(length - 1, 0)) / clip.fps
    x, y = clip.position
    scale, angle = clip.scale, clip.angle
    if clip.motion == "translate":  # wraps at once: leaving one side, it is already entering the other
        x = (x + clip.velocity[0] * clip.rate * tau) % clip.width
        y = (y + clip.velocity[1] * clip.rate * tau) % clip.height
    elif clip.motion == "rotate":
        angle = angle + clip.rate * tau
    elif clip.motion == "bounce":  # hops up from a floor, the path centred on the drawn position
        y = y + clip.amplitude / 2 - clip.amplitude * abs(math.sin(math.pi * (clip.rate * tau + clip.phase)))
    elif clip.motion == "sway":
        x = x + clip.amplitude / 2 * math.sin(2 * math.pi * (clip.rate * tau + clip.phase))
    elif clip.motion == "zoom":
        lo, hi = ZOOM_RANGE
        scale = lo + (hi - lo) * ((clip.phase + clip.rate * tau) % 1.0)
    return x, y, scale, angle % 360


def render_clip(clip: ClipSpec) -> np.ndarray:
    """RGB frames (N, H, W, 3) uint8 of ``clip``: background, distractors, object, sensor noise."""
    rng = np.random.default_rng(clip.seed)
    bg = clip.background
    canvas = _background_canvas(bg, clip.width, clip.height)
    jitter = (
        rng.integers(-1, 2, (clip.n_frames, 2)) if clip.idle == "jitter" else np.zeros((clip.n_frames, 2), np.int64)
    )
    frames = np.empty((clip.n_frames, clip.height, clip.width, 3), np.uint8)
    for k in range(clip.n_frames):
        t = k / clip.fps
        ox = bg.pad + round(bg.pan_amplitude[0] * math.sin(2 * math.pi * t / bg.pan_period_s + bg.pan_phase[0]))
        oy = bg.pad + round(bg.pan_amplitude[1] * math.sin(2 * math.pi * t / bg.pan_period_s + bg.pan_phase[1]))
        frame = canvas[oy : oy + clip.height, ox : ox + clip.width].copy()
        for d in clip.distractors:
            _draw_shape(frame, d.shape, d.colour, d.position[0], d.position[1], d.radius, d.angle)
        x, y, scale, angle = object_pose(clip, k)
        if not clip.action_start <= k < clip.action_end:
            x, y = x + jitter[k, 0], y + jitter[k, 1]
        _draw_shape(frame, clip.shape, clip.colour, x, y, clip.radius * scale, angle)
        frames[k] = frame
    for start in range(0, clip.n_frames, 64):  # chunks keep the float noise small
        chunk = frames[start : start + 64]
        noise = rng.standard_normal(chunk.shape, dtype=np.float32) * clip.noise_sigma
        chunk[...] = np.clip(chunk + noise, 0, 255).astype(np.uint8)
    return frames


def plant_frames(plant: PlantSpec) -> np.ndarray:
    """Frames of a planted copy: the target clip, transformed (or set into its host video)."""
    import cv2

    frames = render_clip(plant.source)
    width, height = plant.size
    t = plant.transform
    if t == "rescale":
        frames = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames])
    elif t == "reencode":
        frames = frames[:: plant.frame_step]
    elif t == "hflip":
        frames = frames[:, :, ::-1]
    elif t == "crop":
        x, y, w, h = plant.crop_box  # type: ignore[misc]
        frames = frames[:, y : y + h, x : x + w]
    elif t == "colour":
        frames = np.clip(frames * np.asarray(plant.gains, np.float32) + plant.offset, 0, 255).astype(np.uint8)
    elif t == "trim":
        a, b = plant.trim  # type: ignore[misc]
        frames = frames[a:b]
    elif t == "embed":
        host = render_clip(plant.host)  # type: ignore[arg-type]
        inserted = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) for f in frames])
        host[plant.insert_at : plant.insert_at + len(inserted)] = inserted
        frames = host
    return np.ascontiguousarray(frames)


def video_frames(video: WebVideo | TargetVideo) -> np.ndarray:
    """Frames of any planned video."""
    if isinstance(video, WebVideo) and video.plant is not None:
        return plant_frames(video.plant)
    if isinstance(video, WebVideo) and video.shots:
        return np.concatenate([render_clip(c) for c in (video.clip, *video.shots)])  # type: ignore[misc]
    return render_clip(video.clip)  # type: ignore[arg-type]
