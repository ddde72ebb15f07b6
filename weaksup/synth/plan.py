"""The plan of a synthetic corpus: its classes, its config, and every video drawn from them.

:func:`draw_corpus_plan` turns a :class:`SynthCorpusConfig` into a :class:`CorpusPlan`: each
web video's class, duration, action window, hashtags (with their noise) and render
parameters, the target benchmark's videos, and the planted copies of target test videos,
all without rendering or encoding anything. It is a pure function of the config (seed
included; output paths aside), and every drawn value is rounded, so a plan prints and
hashes stably: a video's file name carries a digest of its plan entry.

:mod:`weaksup.synth.render` turns a plan entry into frames; :mod:`weaksup.synth.corpus`
encodes the videos and writes the tables.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from weaksup.errors import InputError

Motion = Literal["translate", "rotate", "bounce", "sway", "zoom"]
Shape = Literal["square", "disc", "cross", "triangle"]
Transform = Literal["rescale", "reencode", "hflip", "crop", "colour", "trim", "embed"]

SHAPES: tuple[Shape, ...] = ("square", "disc", "cross", "triangle")
#: Transforms of planted copies, used in this order, cycling.
TRANSFORMS: tuple[Transform, ...] = ("rescale", "reencode", "hflip", "crop", "colour", "trim", "embed")
NOISE_KINDS = ("clean", "missing", "wrong_label", "extra_label", "planted")

#: x264 quality (CRF) of every file but the low-quality re-encodes of planted copies.
CRF = 26
#: x264 quality of the ``reencode`` planted copies.
REENCODE_CRF = 36
#: Object scale range: zoom classes sweep it, the others draw a fixed value from it.
ZOOM_RANGE = (0.6, 1.4)
_DIAGONALS = ((1, 1), (1, -1), (-1, 1), (-1, -1))


@dataclass(frozen=True)
class MotionClass:
    """A class of the corpus: a name the hashtag machinery handles and the motion it shows.

    ``velocity`` is a unit direction (translations; None draws a diagonal per video),
    ``rate`` is px/s for translations, deg/s for rotations (sign: clockwise on screen is
    positive) and cycles/s for bounce, sway and zoom (sign: growing is positive).
    ``mirror`` names the class a horizontal flip turns it into.
    """

    name: str
    motion: Motion
    rate: float
    velocity: tuple[float, float] | None = (0.0, 0.0)
    mirror: str | None = None


#: Every defined class; a corpus of n classes uses the first n.
CLASSES: tuple[MotionClass, ...] = (
    MotionClass("sliding left", "translate", 60.0, (-1.0, 0.0), mirror="sliding right"),
    MotionClass("sliding right", "translate", 60.0, (1.0, 0.0), mirror="sliding left"),
    MotionClass("rising up", "translate", 50.0, (0.0, -1.0)),
    MotionClass("falling down", "translate", 50.0, (0.0, 1.0)),
    MotionClass("spinning clockwise", "rotate", 200.0, mirror="spinning anticlockwise"),
    MotionClass("spinning anticlockwise", "rotate", -200.0, mirror="spinning clockwise"),
    MotionClass("bouncing ball", "bounce", 1.0),
    MotionClass("swaying sideways", "sway", 0.6),
    MotionClass("zooming in", "zoom", 0.7),
    MotionClass("zooming out", "zoom", -0.7),
    MotionClass("drifting fast", "translate", 60.0, None),
    MotionClass("drifting slowly", "translate", 12.0, None),
)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)

#: Classes a target benchmark can use besides :data:`CLASSES`: diagonal translations, which
#: no web class of the first eight shows but whose horizontal and vertical parts the
#: cardinal web classes (sliding left/right, rising, falling) do. A network that learnt
#: those primitives on the web corpus has a head start on them; one that did not has not.
_D = round(1 / math.sqrt(2), 4)
TARGET_ONLY_CLASSES: tuple[MotionClass, ...] = (
    MotionClass("moving up left", "translate", 50.0, (-_D, -_D), mirror="moving up right"),
    MotionClass("moving up right", "translate", 50.0, (_D, -_D), mirror="moving up left"),
    MotionClass("moving down left", "translate", 50.0, (-_D, _D), mirror="moving down right"),
    MotionClass("moving down right", "translate", 50.0, (_D, _D), mirror="moving down left"),
)
#: The target label set of ``synth-corpus --target diagonals`` (the quickstart's and examples').
DIAGONALS: tuple[str, ...] = tuple(c.name for c in TARGET_ONLY_CLASSES)


@dataclass(frozen=True)
class SynthCorpusConfig:
    """Options of ``weaksup synth-corpus``; the defaults encode in about a minute on 2 cores."""

    out: Path
    seed: int = 0
    n_videos: int = 600
    n_classes: int = len(CLASSES)
    zipf_exponent: float = 1.0
    min_duration_s: float = 1.0
    max_duration_s: float = 60.0
    #: Web videos longer than this show the action only in a window.
    partial_action_after_s: float = 8.0
    #: 0: a web video is one scene. > 0: web videos longer than this are cut into scenes
    #: (shots) of about this length, each a new scene, object and look showing the action
    #: throughout, as long web videos cut between shots (the window rule does not apply).
    shot_length_s: float = 0.0
    fps: float = 12.0
    width: int = 80
    height: int = 64
    target_width: int = 64
    target_height: int = 64
    target_min_duration_s: float = 2.0
    target_max_duration_s: float = 10.0
    n_target_train_per_class: int = 12
    n_target_test_per_class: int = 6
    n_planted: int = 12
    #: Target classes by name (from CLASSES or TARGET_ONLY_CLASSES); empty = the web classes.
    #: A label set unlike the web's is the paper's setting: the target shares motion
    #: primitives with the pre-training labels, not the labels themselves.
    target_classes: tuple[str, ...] = ()
    missing_tag_rate: float = 0.15
    wrong_tag_rate: float = 0.10
    second_label_rate: float = 0.10
    noise_tags_mean: float = 1.5
    workers: int = 2


@dataclass(frozen=True)
class Background:
    """A smooth random texture (web: tinted value noise, panning; target: warm stripes, static)."""

    style: Literal["smooth", "stripes"]
    seed: int
    cell: int
    low: float
    high: float
    tint: tuple[float, float, float]
    pad: int
    pan_amplitude: tuple[float, float]
    pan_period_s: float
    pan_phase: tuple[float, float]
    stripe_wavelength: float = 0.0
    stripe_angle: float = 0.0


@dataclass(frozen=True)
class Distractor:
    """A static shape that moves with nothing (only the background pan)."""

    shape: Shape
    colour: tuple[int, int, int]
    radius: float
    position: tuple[float, float]
    angle: float


@dataclass(frozen=True)
class ClipSpec:
    """Everything :func:`render_clip` needs: frames, object, its motion and the scene.

    Outside frames [action_start, action_end) the object rests at its pose at the
    nearest end of the window, still or jittering by a pixel.
    """

    width: int
    height: int
    fps: float
    n_frames: int
    action_start: int
    action_end: int
    motion: Motion
    rate: float
    velocity: tuple[float, float]
    amplitude: float
    phase: float
    shape: Shape
    colour: tuple[int, int, int]
    radius: float
    position: tuple[float, float]
    angle: float
    scale: float
    idle: Literal["static", "jitter"]
    background: Background
    distractors: tuple[Distractor, ...]
    noise_sigma: float
    seed: int


@dataclass(frozen=True)
class PlantSpec:
    """A transformed copy of a target video (and, for ``embed``, the web video around it)."""

    transform: Transform
    source: ClipSpec
    size: tuple[int, int]  # output width, height
    fps: float
    crf: int
    frame_step: int = 1
    crop_box: tuple[int, int, int, int] | None = None  # x, y, width, height
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    offset: float = 0.0
    trim: tuple[int, int] | None = None  # frames [start, end) of the source
    host: ClipSpec | None = None
    insert_at: int = 0

    @property
    def n_frames(self) -> int:
        if self.host is not None:
            return self.host.n_frames
        n = self.source.n_frames if self.trim is None else self.trim[1] - self.trim[0]
        return -(-n // self.frame_step)


@dataclass(frozen=True)
class WebVideo:
    """One web video of the plan with its truth; exactly one of ``clip`` and ``plant`` is set.

    ``shots``: further scenes after ``clip`` (``SynthCorpusConfig.shot_length_s``), played in turn.
    """

    video_id: str
    label_id: int
    hashtags: tuple[str, ...]
    hashtags_noise: str
    tagged_label_ids: tuple[int, ...]
    action_start_s: float
    action_end_s: float
    clip: ClipSpec | None = None
    plant: PlantSpec | None = None
    planted_from: str | None = None
    shots: tuple[ClipSpec, ...] = ()

    @property
    def fps(self) -> float:
        return self.clip.fps if self.clip is not None else self.plant.fps  # type: ignore[union-attr]

    @property
    def n_frames(self) -> int:
        if self.clip is not None:
            return self.clip.n_frames + sum(shot.n_frames for shot in self.shots)
        return self.plant.n_frames  # type: ignore[union-attr]

    @property
    def size(self) -> tuple[int, int]:
        return (self.clip.width, self.clip.height) if self.clip is not None else self.plant.size  # type: ignore[union-attr]

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps

    @property
    def file_name(self) -> str:
        return f"{self.video_id}-{_digest((self.clip, self.shots) if self.shots else (self.clip or self.plant))}.mp4"


@dataclass(frozen=True)
class TargetVideo:
    """One video of the target benchmark; the action fills it."""

    video_id: str
    split: Literal["train", "test"]
    label_id: int
    clip: ClipSpec

    @property
    def duration_s(self) -> float:
        return self.clip.n_frames / self.clip.fps

    @property
    def file_name(self) -> str:
        return f"{self.video_id}-{_digest(self.clip)}.mp4"


@dataclass(frozen=True)
class CorpusPlan:
    """Every video of a corpus, drawn from the config without encoding anything."""

    classes: tuple[MotionClass, ...]
    class_probs: tuple[float, ...]
    web: tuple[WebVideo, ...]
    target: tuple[TargetVideo, ...]
    class_hashtags: tuple[tuple[str, ...], ...] = field(repr=False)
    target_classes: tuple[MotionClass, ...] = ()


def _digest(spec: object) -> str:
    return hashlib.sha1(repr(spec).encode()).hexdigest()[:10]


def _even(n: float) -> int:
    return max(2, int(n) // 2 * 2)


def validate_config(cfg: SynthCorpusConfig) -> None:
    """Raise InputError for a config that cannot make a corpus."""

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise InputError(f"synth-corpus: {message}")

    need(cfg.n_videos >= 1, f"n_videos must be >= 1, got {cfg.n_videos}")
    need(
        2 <= cfg.n_classes <= len(CLASSES),
        f"n_classes must be between 2 and {len(CLASSES)} (the defined motion classes), got {cfg.n_classes}",
    )
    need(
        math.isfinite(cfg.zipf_exponent) and cfg.zipf_exponent >= 0,
        f"zipf_exponent must be >= 0, got {cfg.zipf_exponent}",
    )
    need(0 < cfg.fps <= 60, f"fps must be in (0, 60], got {cfg.fps}")
    for name in ("min_duration_s", "target_min_duration_s"):
        need(
            getattr(cfg, name) * cfg.fps >= 2,
            f"{name} must give at least 2 frames at {cfg.fps} fps, got {getattr(cfg, name)}",
        )
    need(
        cfg.min_duration_s <= cfg.max_duration_s,
        f"min_duration_s {cfg.min_duration_s} > max_duration_s {cfg.max_duration_s}",
    )
    need(
        cfg.target_min_duration_s <= cfg.target_max_duration_s,
        f"target_min_duration_s {cfg.target_min_duration_s} > target_max_duration_s {cfg.target_max_duration_s}",
    )
    need(cfg.max_duration_s <= 3600, f"max_duration_s must be <= 3600, got {cfg.max_duration_s}")
    need(cfg.partial_action_after_s > 0, f"partial_action_after_s must be > 0, got {cfg.partial_action_after_s}")
    need(
        cfg.shot_length_s == 0 or cfg.shot_length_s * cfg.fps >= 2,
        f"shot_length_s must be 0 or give at least 2 frames at {cfg.fps} fps, got {cfg.shot_length_s}",
    )
    for name in ("width", "height", "target_width", "target_height"):
        value = getattr(cfg, name)
        need(32 <= value <= 1024 and value % 2 == 0, f"{name} must be even and in [32, 1024], got {value}")
    need(
        cfg.n_target_train_per_class >= 0, f"n_target_train_per_class must be >= 0, got {cfg.n_target_train_per_class}"
    )
    need(cfg.n_target_test_per_class >= 0, f"n_target_test_per_class must be >= 0, got {cfg.n_target_test_per_class}")
    n_test = cfg.n_classes * cfg.n_target_test_per_class
    need(
        0 <= cfg.n_planted <= n_test,
        f"n_planted must be between 0 and the {n_test} target test videos, got {cfg.n_planted}",
    )
    rates = (cfg.missing_tag_rate, cfg.wrong_tag_rate, cfg.second_label_rate)
    need(
        all(0 <= r <= 1 for r in rates) and sum(rates) <= 1,
        f"tag noise rates must be in [0, 1] and sum to <= 1, got {rates}",
    )
    need(cfg.noise_tags_mean >= 0, f"noise_tags_mean must be >= 0, got {cfg.noise_tags_mean}")
    need(cfg.workers >= 0, f"workers must be >= 0, got {cfg.workers}")
    known = {c.name for c in CLASSES + TARGET_ONLY_CLASSES}
    unknown = [n for n in cfg.target_classes if n not in known]
    need(not unknown, f"unknown target class {unknown[0]!r}; known: {', '.join(sorted(known))}" if unknown else "")
    need(len(set(cfg.target_classes)) == len(cfg.target_classes), "target_classes has a duplicate name")
    need(len(cfg.target_classes) != 1, "target_classes needs at least 2 classes (or none for the web classes)")


def target_class_list(cfg: SynthCorpusConfig) -> tuple[MotionClass, ...]:
    """The target benchmark's classes: ``cfg.target_classes`` by name, else the web classes."""
    if not cfg.target_classes:
        return CLASSES[: cfg.n_classes]
    by_name = {c.name: c for c in CLASSES + TARGET_ONLY_CLASSES}
    return tuple(by_name[n] for n in cfg.target_classes)


def _rng(cfg: SynthCorpusConfig, *stream: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, *stream])


def _sub_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31))


def _colour(rng: np.random.Generator, avoid: tuple[int, int, int] | None = None) -> tuple[int, int, int]:
    """A saturated, bright colour (the backgrounds are dull); far from ``avoid`` if given."""
    while True:
        r, g, b = colorsys.hsv_to_rgb(float(rng.random()), float(rng.uniform(0.75, 1.0)), float(rng.uniform(0.85, 1.0)))
        rgb = (round(r * 255), round(g * 255), round(b * 255))
        if avoid is None or sum((a - c) ** 2 for a, c in zip(rgb, avoid)) >= 130**2:
            return rgb


def _uniform(rng: np.random.Generator, low: float, high: float, n: int | None = None, digits: int = 3):
    """A rounded uniform draw (a float, or a tuple of n), so plans print and hash stably."""
    if n is None:
        return round(float(rng.uniform(low, high)), digits)
    return tuple(round(float(v), digits) for v in rng.uniform(low, high, n))


def _background(rng: np.random.Generator, domain: str) -> Background:
    """Web: grey-ish value noise, panning in 60% of videos. Target: warm, static, striped."""
    if domain == "web":
        pad, pans = 12, rng.random() < 0.6
        return Background(
            style="smooth",
            seed=_sub_seed(rng),
            cell=int(rng.choice([8, 12, 16])),
            low=_uniform(rng, 30, 70),
            high=_uniform(rng, 150, 200),
            tint=_uniform(rng, 0.8, 1.2, 3),
            pad=pad,
            pan_amplitude=_uniform(rng, 0, pad, 2) if pans else (0.0, 0.0),
            pan_period_s=_uniform(rng, 6, 20),
            pan_phase=_uniform(rng, 0, 2 * np.pi, 2),
        )
    return Background(
        style="stripes",
        seed=_sub_seed(rng),
        cell=int(rng.choice([16, 24])),
        low=_uniform(rng, 60, 100),
        high=_uniform(rng, 170, 220),
        tint=(_uniform(rng, 1.05, 1.2), _uniform(rng, 0.9, 1.0), _uniform(rng, 0.7, 0.85)),
        pad=0,
        pan_amplitude=(0.0, 0.0),
        pan_period_s=1.0,
        pan_phase=(0.0, 0.0),
        stripe_wavelength=_uniform(rng, 10, 20),
        stripe_angle=_uniform(rng, 0, np.pi),
    )


def draw_clip(
    rng: np.random.Generator,
    cls: MotionClass,
    *,
    domain: Literal["web", "target"],
    width: int,
    height: int,
    fps: float,
    n_frames: int,
    action: tuple[int, int],
) -> ClipSpec:
    """Random scene, object and motion parameters for one clip of class ``cls``.

    Everything but the motion is drawn the same way whatever the class.
    """
    radius = _uniform(rng, 8.0, 11.0, digits=2) if domain == "web" else _uniform(rng, 8.5, 12.0, digits=2)
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    colour = _colour(rng)
    position = (_uniform(rng, 0.2 * width, 0.8 * width, digits=2), _uniform(rng, 0.2 * height, 0.8 * height, digits=2))
    angle, scale, phase = _uniform(rng, 0, 360, digits=2), _uniform(rng, *ZOOM_RANGE), _uniform(rng, 0, 1)
    speed = float(rng.uniform(0.8, 1.25))
    velocity = cls.velocity
    if velocity is None:
        dx, dy = _DIAGONALS[int(rng.integers(4))]
        velocity = (round(dx / math.sqrt(2), 4), round(dy / math.sqrt(2), 4))
    amplitude = _uniform(rng, 0.25, 0.4) * (height if cls.motion == "bounce" else width)
    distractors = tuple(
        Distractor(
            shape=SHAPES[int(rng.integers(len(SHAPES)))],
            colour=_colour(rng, avoid=colour),
            radius=_uniform(rng, 2.5, 4.5, digits=2),
            position=(_uniform(rng, 0, width, digits=2), _uniform(rng, 0, height, digits=2)),
            angle=_uniform(rng, 0, 360, digits=2),
        )
        for _ in range(int(rng.choice([0, 1, 2], p=[0.4, 0.4, 0.2])))
    )
    return ClipSpec(
        width=width,
        height=height,
        fps=fps,
        n_frames=n_frames,
        action_start=action[0],
        action_end=action[1],
        motion=cls.motion,
        rate=round(cls.rate * speed, 3),
        velocity=velocity,
        amplitude=round(amplitude, 2),
        phase=phase,
        shape=shape,
        colour=colour,
        radius=radius,
        position=position,
        angle=angle,
        scale=scale,
        idle="jitter" if rng.random() < 0.5 else "static",
        background=_background(rng, domain),
        distractors=distractors,
        noise_sigma=_uniform(rng, 1.5, 3.5, digits=2),
        seed=_sub_seed(rng),
    )


def _zipf_probs(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Zipf class probabilities, the rank of each class a seeded permutation."""
    by_rank = 1.0 / np.arange(1, n + 1) ** exponent
    rank = rng.permutation(n)
    p = by_rank[rank]
    return p / p.sum()


_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in ("a", "e", "i", "o", "u", "ay", "oo")]


def noise_vocabulary(cfg: SynthCorpusConfig, size: int = 400) -> tuple[str, ...]:
    """Unrelated tags, most popular first: common Instagram tags, then made-up words.

    No word is a hashtag of any defined class, so extra tags never add a label.
    """
    from weaksup.labels.hashtags import normalize_hashtag, relevant_hashtags
    from weaksup.synth.metadata import NOISE_TAGS

    class_tags = {t for name in CLASS_NAMES for t in relevant_hashtags(name)}
    rng = _rng(cfg, 4)
    words = [t for t in NOISE_TAGS if " " not in t]
    while len(words) < size:
        words.append("".join(rng.choice(_SYLLABLES, size=int(rng.integers(2, 4)))))
    return tuple(w for w in dict.fromkeys(words) if normalize_hashtag(w) not in class_tags)


def _class_tag(rng: np.random.Generator, label: int, class_hashtags: tuple[tuple[str, ...], ...]) -> str:
    """A hashtag of class ``label`` as posted: often CamelCase words, else any relevant form."""
    if rng.random() < 0.35:
        return "".join(w.capitalize() for w in CLASS_NAMES[label].split())
    tags = class_hashtags[label]
    return tags[int(rng.integers(len(tags)))]


def _other_label(rng: np.random.Generator, label: int, probs: np.ndarray) -> int:
    """Another class, as popular as its Zipf frequency (popular tags are misused most)."""
    p = probs.copy()
    p[label] = 0
    return int(rng.choice(len(p), p=p / p.sum()))


def _draw_tags(
    rng: np.random.Generator,
    cfg: SynthCorpusConfig,
    label: int,
    probs: np.ndarray,
    class_hashtags: tuple[tuple[str, ...], ...],
    vocab: tuple[str, ...],
    vocab_p: np.ndarray,
    kind: str | None = None,
) -> tuple[tuple[str, ...], str, tuple[int, ...]]:
    """Hashtags of one video: the noise kind decides its class tags; unrelated tags come on top."""
    if kind is None:
        u = rng.random()
        edges = np.cumsum([cfg.missing_tag_rate, cfg.wrong_tag_rate, cfg.second_label_rate])
        kind = ("missing", "wrong_label", "extra_label", "clean")[int(np.searchsorted(edges, u, side="right"))]
    if kind == "missing":
        tagged: tuple[int, ...] = ()
    elif kind == "wrong_label":
        tagged = (_other_label(rng, label, probs),)
    elif kind == "extra_label":
        tagged = (label, _other_label(rng, label, probs))
    else:
        tagged = (label,)
    tags = [_class_tag(rng, lab, class_hashtags) for lab in tagged]
    n_extra = int(rng.poisson(cfg.noise_tags_mean))
    tags += [vocab[i] for i in rng.choice(len(vocab), size=n_extra, p=vocab_p)]
    tags = list(dict.fromkeys(tags))
    order = rng.permutation(len(tags))
    return tuple(tags[i] for i in order), kind, tuple(sorted(tagged))


def _frames(seconds: float, fps: float) -> int:
    return max(2, round(seconds * fps))


def _draw_target(cfg: SynthCorpusConfig, classes: tuple[MotionClass, ...]) -> list[TargetVideo]:
    out: list[TargetVideo] = []
    for s, (split, per_class) in enumerate(
        (("train", cfg.n_target_train_per_class), ("test", cfg.n_target_test_per_class))
    ):
        for label, cls in enumerate(classes):
            for j in range(per_class):
                rng = _rng(cfg, 2, s, label, j)
                n = _frames(rng.uniform(cfg.target_min_duration_s, cfg.target_max_duration_s), cfg.fps)
                clip = draw_clip(
                    rng,
                    cls,
                    domain="target",
                    width=cfg.target_width,
                    height=cfg.target_height,
                    fps=cfg.fps,
                    n_frames=n,
                    action=(0, n),
                )
                out.append(TargetVideo(f"t{len(out):05d}", split, label, clip))  # type: ignore[arg-type]
    return out


def _draw_web_shots(
    cfg: SynthCorpusConfig, rng: np.random.Generator, cls: MotionClass, seconds: float
) -> tuple[ClipSpec, tuple[ClipSpec, ...]]:
    """A web video's first scene and its further shots: one scene, unless ``shot_length_s``
    cuts a longer video into near-equal shots, each a new scene showing the action throughout."""
    n = _frames(seconds, cfg.fps)
    if not cfg.shot_length_s or n / cfg.fps <= cfg.shot_length_s:
        return _draw_web_clip(cfg, rng, cls, seconds), ()
    k = math.ceil(n / cfg.fps / cfg.shot_length_s)
    bounds = np.linspace(0, n, k + 1).round().astype(int)
    shots = tuple(
        draw_clip(
            rng,
            cls,
            domain="web",
            width=cfg.width,
            height=cfg.height,
            fps=cfg.fps,
            n_frames=int(b - a),
            action=(0, int(b - a)),
        )
        for a, b in zip(bounds[:-1], bounds[1:])
    )
    return shots[0], shots[1:]


def _draw_web_clip(cfg: SynthCorpusConfig, rng: np.random.Generator, cls: MotionClass, seconds: float) -> ClipSpec:
    n = _frames(seconds, cfg.fps)
    if n / cfg.fps > cfg.partial_action_after_s:
        length = max(_frames(2.0, cfg.fps), round(n * rng.uniform(0.25, 0.75)))
        start = int(rng.integers(0, n - length + 1))
        action = (start, start + length)
    else:
        action = (0, n)
    return draw_clip(rng, cls, domain="web", width=cfg.width, height=cfg.height, fps=cfg.fps, n_frames=n, action=action)


def _mirror_id(label: int, classes: tuple[MotionClass, ...]) -> int | None:
    """The class a horizontal flip of class ``label`` shows, or None if it is not in use."""
    mirror = classes[label].mirror or classes[label].name
    names = [c.name for c in classes]
    return names.index(mirror) if mirror in names else None


def _draw_plant(
    cfg: SynthCorpusConfig,
    k: int,
    transform: Transform,
    target: TargetVideo,
    target_classes: tuple[MotionClass, ...],
    classes: tuple[MotionClass, ...],
) -> PlantSpec:
    rng = _rng(cfg, 3, k)
    src = target.clip
    size, fps = (src.width, src.height), src.fps
    if transform == "rescale":
        factor = float(rng.choice([0.75, 1.25, 1.5]))
        return PlantSpec(transform, src, (_even(src.width * factor), _even(src.height * factor)), fps, CRF)
    if transform == "reencode":
        return PlantSpec(transform, src, size, fps / 2, REENCODE_CRF, frame_step=2)
    if transform == "hflip":
        return PlantSpec(transform, src, size, fps, CRF)
    if transform == "crop":
        w, h = _even(src.width * 0.9), _even(src.height * 0.9)
        box = (int(rng.integers(0, src.width - w + 1)), int(rng.integers(0, src.height - h + 1)), w, h)
        return PlantSpec(transform, src, (w, h), fps, CRF, crop_box=box)
    if transform == "colour":
        gains = _uniform(rng, 0.75, 1.25, 3)
        return PlantSpec(transform, src, size, fps, CRF, gains=gains, offset=_uniform(rng, -25, 25, digits=2))
    if transform == "trim":
        n = src.n_frames
        length = max(2, round(n * rng.uniform(0.4, 0.7)))
        start = int(rng.integers(0, n - length + 1))
        return PlantSpec(transform, src, size, fps, CRF, trim=(start, start + length))
    # embed: the target clip becomes a segment of a longer web video of the same class's scene
    extra = _frames(rng.uniform(3.0, 15.0), fps)
    at = int(rng.integers(0, extra + 1))
    host = draw_clip(
        rng,
        target_classes[target.label_id],
        domain="web",
        width=cfg.width,
        height=cfg.height,
        fps=fps,
        n_frames=src.n_frames + extra,
        action=(at, at + src.n_frames),
    )
    return PlantSpec(transform, src, (cfg.width, cfg.height), fps, CRF, host=host, insert_at=at)


def draw_corpus_plan(cfg: SynthCorpusConfig) -> CorpusPlan:
    """Draw every web and target video (truth, hashtags, render parameters) without encoding.

    A pure function of ``cfg`` (output paths aside): the same config gives the same plan.
    """
    from weaksup.labels.hashtags import relevant_hashtags

    validate_config(cfg)
    classes = CLASSES[: cfg.n_classes]
    class_hashtags = tuple(tuple(relevant_hashtags(c.name)) for c in classes)
    probs = _zipf_probs(len(classes), cfg.zipf_exponent, _rng(cfg, 0))
    vocab = noise_vocabulary(cfg)
    vocab_p = 1.0 / np.arange(1, len(vocab) + 1)
    vocab_p /= vocab_p.sum()
    log_lo, log_hi = math.log(cfg.min_duration_s), math.log(cfg.max_duration_s)

    rows: list[dict] = []
    for i in range(cfg.n_videos):
        rng = _rng(cfg, 1, i)
        label = int(rng.choice(len(classes), p=probs))
        clip, shots = _draw_web_shots(cfg, rng, classes[label], math.exp(rng.uniform(log_lo, log_hi)))
        tags, kind, tagged = _draw_tags(rng, cfg, label, probs, class_hashtags, vocab, vocab_p)
        end = (clip.n_frames + sum(s.n_frames for s in shots)) / clip.fps if shots else clip.action_end / clip.fps
        rows.append(
            dict(
                label_id=label,
                hashtags=tags,
                hashtags_noise=kind,
                tagged_label_ids=tagged,
                clip=clip,
                shots=shots,
                action_start_s=clip.action_start / clip.fps,
                action_end_s=end,
            )
        )

    target_classes = target_class_list(cfg)
    same_space = target_classes == classes
    target = _draw_target(cfg, target_classes)
    test = [t for t in target if t.split == "test"]
    candidates = [test[i] for i in _rng(cfg, 3).permutation(len(test))]
    for k in range(cfg.n_planted):
        transform = TRANSFORMS[k % len(TRANSFORMS)]
        # a flip of a class whose mirror is not in use would show no class of the corpus
        pick = next(
            (t for t in candidates if transform != "hflip" or _mirror_id(t.label_id, target_classes) is not None), None
        )
        if pick is None:
            transform, pick = "colour", candidates[0]
        candidates.remove(pick)
        plant = _draw_plant(cfg, k, transform, pick, target_classes, classes)
        shown = _mirror_id(pick.label_id, target_classes) if transform == "hflip" else pick.label_id
        # a copy is posted with a web class's tags: its own class when the spaces agree, else
        # the web class of the same index (a fixed stand-in, so copies of a class agree)
        label = shown if same_space else shown % len(classes)  # type: ignore[operator]
        tag_class = pick.label_id if same_space else pick.label_id % len(classes)  # tagged as posted: unflipped
        tags, kind, tagged = _draw_tags(
            _rng(cfg, 5, k), cfg, tag_class, probs, class_hashtags, vocab, vocab_p, kind="clean"
        )
        if plant.host is not None:
            window = (plant.insert_at / plant.fps, (plant.insert_at + pick.clip.n_frames) / plant.fps)
        else:
            window = (0.0, plant.n_frames / plant.fps)
        rows.append(
            dict(
                label_id=label,
                hashtags=tags,
                hashtags_noise="planted",
                tagged_label_ids=tagged,
                plant=plant,
                planted_from=pick.video_id,
                action_start_s=window[0],
                action_end_s=window[1],
            )
        )

    # planted copies sit at random places among the web videos, their ids telling nothing
    order = _rng(cfg, 6).permutation(len(rows))
    web = tuple(WebVideo(video_id=f"w{j:06d}", **rows[i]) for j, i in enumerate(order))
    return CorpusPlan(classes, tuple(float(p) for p in probs), web, tuple(target), class_hashtags, target_classes)
