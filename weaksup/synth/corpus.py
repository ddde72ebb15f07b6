"""An embedded synthetic web-video corpus whose truth is known: ``weaksup synth-corpus``.

The real pipeline (IG-65M, Ghadiyaram et al. 2019) learns from web videos whose hashtags
are noisy and whose action fills only part of a long video, then transfers to a clean
target benchmark, and must not train on copies of the benchmark's test videos. This
module builds a tiny corpus with all of that, and records the truth, so every stage can
be checked end to end on a laptop:

* classes are defined by **motion** only (sliding left, spinning clockwise, ...). Shape,
  colour, size, position and the textured background are drawn independently of the
  class, so a single frame does not tell the class while a video model can;
* ``n_videos`` web videos with Zipf class frequencies, log-uniform durations, the
  action only in a window of long videos, and hashtags with missing, wrong and extra
  labels plus unrelated tags (``DIR/videos.parquet``, schema ``videos``);
* a target benchmark in another visual domain (``DIR/target/{train,test}.parquet``,
  schema ``manifest``), some of whose test videos are planted, transformed, in the web
  corpus (``DIR/planted.parquet``);
* the truth per web video (``DIR/truth.parquet``) and the class list (``DIR/labels.txt``),
  from which ``weaksup build-labels --source file --labels-file DIR/labels.txt --out
  labels.parquet`` builds the label space that ``weaksup match`` meets the hashtags with.

Everything is a function of the config (seed included). :func:`draw_corpus_plan` draws
every video's parameters without encoding, so statistics can be checked on thousands
of videos; :func:`render_clip` and :func:`plant_frames` turn a plan entry into frames.
Video files carry a digest of their plan entry in their name, so a rerun into the same
folder skips the files already written for the same config and encodes only the rest.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import os
import re
import time
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from weaksup.errors import InputError
from weaksup.pools import make_pool

Motion = Literal["translate", "rotate", "bounce", "sway", "zoom"]
Shape = Literal["square", "disc", "cross", "triangle"]
Transform = Literal["rescale", "reencode", "hflip", "crop", "colour", "trim", "embed"]

SHAPES: tuple[Shape, ...] = ("square", "disc", "cross", "triangle")
#: Transforms of planted copies, used in this order, cycling.
TRANSFORMS: tuple[Transform, ...] = ("rescale", "reencode", "hflip", "crop", "colour", "trim", "embed")
NOISE_KINDS = ("clean", "missing", "wrong_label", "extra_label", "planted")

_CRF = 26  # x264 quality of every file but the low-quality re-encodes
_REENCODE_CRF = 36
_ZOOM_RANGE = (0.6, 1.4)  # object scale: zoom classes sweep it, the others draw a fixed value from it
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


# ----------------------------------------------------------------------------- plan


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
    need(math.isfinite(cfg.zipf_exponent) and cfg.zipf_exponent >= 0, f"zipf_exponent must be >= 0, got {cfg.zipf_exponent}")
    need(0 < cfg.fps <= 60, f"fps must be in (0, 60], got {cfg.fps}")
    for name in ("min_duration_s", "target_min_duration_s"):
        need(getattr(cfg, name) * cfg.fps >= 2, f"{name} must give at least 2 frames at {cfg.fps} fps, got {getattr(cfg, name)}")
    need(cfg.min_duration_s <= cfg.max_duration_s, f"min_duration_s {cfg.min_duration_s} > max_duration_s {cfg.max_duration_s}")
    need(
        cfg.target_min_duration_s <= cfg.target_max_duration_s,
        f"target_min_duration_s {cfg.target_min_duration_s} > target_max_duration_s {cfg.target_max_duration_s}",
    )
    need(cfg.max_duration_s <= 3600, f"max_duration_s must be <= 3600, got {cfg.max_duration_s}")
    need(cfg.partial_action_after_s > 0, f"partial_action_after_s must be > 0, got {cfg.partial_action_after_s}")
    need(cfg.shot_length_s == 0 or cfg.shot_length_s * cfg.fps >= 2,
         f"shot_length_s must be 0 or give at least 2 frames at {cfg.fps} fps, got {cfg.shot_length_s}")
    for name in ("width", "height", "target_width", "target_height"):
        value = getattr(cfg, name)
        need(32 <= value <= 1024 and value % 2 == 0, f"{name} must be even and in [32, 1024], got {value}")
    need(cfg.n_target_train_per_class >= 0, f"n_target_train_per_class must be >= 0, got {cfg.n_target_train_per_class}")
    need(cfg.n_target_test_per_class >= 0, f"n_target_test_per_class must be >= 0, got {cfg.n_target_test_per_class}")
    n_test = cfg.n_classes * cfg.n_target_test_per_class
    need(0 <= cfg.n_planted <= n_test, f"n_planted must be between 0 and the {n_test} target test videos, got {cfg.n_planted}")
    rates = (cfg.missing_tag_rate, cfg.wrong_tag_rate, cfg.second_label_rate)
    need(all(0 <= r <= 1 for r in rates) and sum(rates) <= 1, f"tag noise rates must be in [0, 1] and sum to <= 1, got {rates}")
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
            style="smooth", seed=_sub_seed(rng), cell=int(rng.choice([8, 12, 16])),
            low=_uniform(rng, 30, 70), high=_uniform(rng, 150, 200), tint=_uniform(rng, 0.8, 1.2, 3), pad=pad,
            pan_amplitude=_uniform(rng, 0, pad, 2) if pans else (0.0, 0.0), pan_period_s=_uniform(rng, 6, 20),
            pan_phase=_uniform(rng, 0, 2 * np.pi, 2),
        )
    return Background(
        style="stripes", seed=_sub_seed(rng), cell=int(rng.choice([16, 24])), low=_uniform(rng, 60, 100),
        high=_uniform(rng, 170, 220), tint=(_uniform(rng, 1.05, 1.2), _uniform(rng, 0.9, 1.0), _uniform(rng, 0.7, 0.85)),
        pad=0, pan_amplitude=(0.0, 0.0), pan_period_s=1.0, pan_phase=(0.0, 0.0),
        stripe_wavelength=_uniform(rng, 10, 20), stripe_angle=_uniform(rng, 0, np.pi),
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
    angle, scale, phase = _uniform(rng, 0, 360, digits=2), _uniform(rng, *_ZOOM_RANGE), _uniform(rng, 0, 1)
    speed = float(rng.uniform(0.8, 1.25))
    velocity = cls.velocity
    if velocity is None:
        dx, dy = _DIAGONALS[int(rng.integers(4))]
        velocity = (round(dx / math.sqrt(2), 4), round(dy / math.sqrt(2), 4))
    amplitude = _uniform(rng, 0.25, 0.4) * (height if cls.motion == "bounce" else width)
    distractors = tuple(
        Distractor(
            shape=SHAPES[int(rng.integers(len(SHAPES)))], colour=_colour(rng, avoid=colour),
            radius=_uniform(rng, 2.5, 4.5, digits=2),
            position=(_uniform(rng, 0, width, digits=2), _uniform(rng, 0, height, digits=2)),
            angle=_uniform(rng, 0, 360, digits=2),
        )
        for _ in range(int(rng.choice([0, 1, 2], p=[0.4, 0.4, 0.2])))
    )
    return ClipSpec(
        width=width, height=height, fps=fps, n_frames=n_frames, action_start=action[0], action_end=action[1],
        motion=cls.motion, rate=round(cls.rate * speed, 3), velocity=velocity, amplitude=round(amplitude, 2),
        phase=phase, shape=shape, colour=colour, radius=radius, position=position, angle=angle, scale=scale,
        idle="jitter" if rng.random() < 0.5 else "static", background=_background(rng, domain),
        distractors=distractors, noise_sigma=_uniform(rng, 1.5, 3.5, digits=2), seed=_sub_seed(rng),
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
    for s, (split, per_class) in enumerate((("train", cfg.n_target_train_per_class), ("test", cfg.n_target_test_per_class))):
        for label, cls in enumerate(classes):
            for j in range(per_class):
                rng = _rng(cfg, 2, s, label, j)
                n = _frames(rng.uniform(cfg.target_min_duration_s, cfg.target_max_duration_s), cfg.fps)
                clip = draw_clip(
                    rng, cls, domain="target", width=cfg.target_width, height=cfg.target_height, fps=cfg.fps,
                    n_frames=n, action=(0, n),
                )
                out.append(TargetVideo(f"t{len(out):05d}", split, label, clip))  # type: ignore[arg-type]
    return out


def _draw_web_shots(cfg: SynthCorpusConfig, rng: np.random.Generator, cls: MotionClass,
                    seconds: float) -> tuple[ClipSpec, tuple[ClipSpec, ...]]:
    """A web video's first scene and its further shots: one scene, unless ``shot_length_s``
    cuts a longer video into near-equal shots, each a new scene showing the action throughout."""
    n = _frames(seconds, cfg.fps)
    if not cfg.shot_length_s or n / cfg.fps <= cfg.shot_length_s:
        return _draw_web_clip(cfg, rng, cls, seconds), ()
    k = math.ceil(n / cfg.fps / cfg.shot_length_s)
    bounds = np.linspace(0, n, k + 1).round().astype(int)
    shots = tuple(
        draw_clip(rng, cls, domain="web", width=cfg.width, height=cfg.height, fps=cfg.fps, n_frames=int(b - a),
                  action=(0, int(b - a)))
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
    cfg: SynthCorpusConfig, k: int, transform: Transform, target: TargetVideo, target_classes: tuple[MotionClass, ...],
    classes: tuple[MotionClass, ...],
) -> PlantSpec:
    rng = _rng(cfg, 3, k)
    src = target.clip
    size, fps = (src.width, src.height), src.fps
    if transform == "rescale":
        factor = float(rng.choice([0.75, 1.25, 1.5]))
        return PlantSpec(transform, src, (_even(src.width * factor), _even(src.height * factor)), fps, _CRF)
    if transform == "reencode":
        return PlantSpec(transform, src, size, fps / 2, _REENCODE_CRF, frame_step=2)
    if transform == "hflip":
        return PlantSpec(transform, src, size, fps, _CRF)
    if transform == "crop":
        w, h = _even(src.width * 0.9), _even(src.height * 0.9)
        box = (int(rng.integers(0, src.width - w + 1)), int(rng.integers(0, src.height - h + 1)), w, h)
        return PlantSpec(transform, src, (w, h), fps, _CRF, crop_box=box)
    if transform == "colour":
        gains = _uniform(rng, 0.75, 1.25, 3)
        return PlantSpec(transform, src, size, fps, _CRF, gains=gains, offset=_uniform(rng, -25, 25, digits=2))
    if transform == "trim":
        n = src.n_frames
        length = max(2, round(n * rng.uniform(0.4, 0.7)))
        start = int(rng.integers(0, n - length + 1))
        return PlantSpec(transform, src, size, fps, _CRF, trim=(start, start + length))
    # embed: the target clip becomes a segment of a longer web video of the same class's scene
    extra = _frames(rng.uniform(3.0, 15.0), fps)
    at = int(rng.integers(0, extra + 1))
    host = draw_clip(
        rng, target_classes[target.label_id], domain="web", width=cfg.width, height=cfg.height, fps=fps,
        n_frames=src.n_frames + extra, action=(at, at + src.n_frames),
    )
    return PlantSpec(transform, src, (cfg.width, cfg.height), fps, _CRF, host=host, insert_at=at)


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
                label_id=label, hashtags=tags, hashtags_noise=kind, tagged_label_ids=tagged, clip=clip, shots=shots,
                action_start_s=clip.action_start / clip.fps, action_end_s=end,
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
        pick = next((t for t in candidates
                     if transform != "hflip" or _mirror_id(t.label_id, target_classes) is not None), None)
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
                label_id=label, hashtags=tags, hashtags_noise="planted", tagged_label_ids=tagged, plant=plant,
                planted_from=pick.video_id, action_start_s=window[0], action_end_s=window[1],
            )
        )

    # planted copies sit at random places among the web videos, their ids telling nothing
    order = _rng(cfg, 6).permutation(len(rows))
    web = tuple(WebVideo(video_id=f"w{j:06d}", **rows[i]) for j, i in enumerate(order))
    return CorpusPlan(classes, tuple(float(p) for p in probs), web, tuple(target), class_hashtags, target_classes)


# ----------------------------------------------------------------------------- rendering


def _background_canvas(bg: Background, width: int, height: int) -> np.ndarray:
    """The texture as uint8 RGB, ``pad`` pixels larger than the frame on every side (room to pan)."""
    import cv2

    rng = np.random.default_rng(bg.seed)
    cw, ch = width + 2 * bg.pad, height + 2 * bg.pad
    coarse = rng.random((ch // bg.cell + 3, cw // bg.cell + 3)).astype(np.float32)
    value = cv2.resize(coarse, (cw, ch), interpolation=cv2.INTER_CUBIC)
    fine = cv2.resize(rng.random((ch // 4 + 3, cw // 4 + 3)).astype(np.float32), (cw, ch), interpolation=cv2.INTER_LINEAR)
    value = 0.8 * value + 0.2 * fine
    if bg.style == "stripes":
        yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(bg.stripe_angle) + yy * np.sin(bg.stripe_angle)) / bg.stripe_wavelength)
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


def _draw_shape(img: np.ndarray, shape: Shape, colour: tuple[int, int, int], x: float, y: float, r: float, angle: float) -> None:
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
        lo, hi = _ZOOM_RANGE
        scale = lo + (hi - lo) * ((clip.phase + clip.rate * tau) % 1.0)
    return x, y, scale, angle % 360


def render_clip(clip: ClipSpec) -> np.ndarray:
    """RGB frames (N, H, W, 3) uint8 of ``clip``: background, distractors, object, sensor noise."""
    rng = np.random.default_rng(clip.seed)
    bg = clip.background
    canvas = _background_canvas(bg, clip.width, clip.height)
    jitter = rng.integers(-1, 2, (clip.n_frames, 2)) if clip.idle == "jitter" else np.zeros((clip.n_frames, 2), np.int64)
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


# ----------------------------------------------------------------------------- encoding


@dataclass(frozen=True)
class _EncodeJob:
    path: str
    video: WebVideo | TargetVideo
    fps: float
    crf: int
    n_frames: int
    size: tuple[int, int]


def _is_complete(path: Path, n_frames: int, size: tuple[int, int]) -> bool:
    """A file from an earlier run counts if it opens with the planned frame count and size."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return stream.frames == n_frames and (stream.codec_context.width, stream.codec_context.height) == size
    except Exception:  # noqa: BLE001 - anything unreadable is simply encoded again
        return False


def _encode(job: _EncodeJob) -> tuple[int, bool]:
    """Encode one video unless it is already there; return its bytes and whether it was encoded."""
    from weaksup.synth.video import write_video

    path = Path(job.path)
    if path.exists() and _is_complete(path, job.n_frames, job.size):
        return path.stat().st_size, False
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.mp4")
    try:
        write_video(tmp, video_frames(job.video), fps=job.fps, gop=max(1, round(job.fps)), options={"crf": str(job.crf)})
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path.stat().st_size, True


_OUR_FILE = re.compile(r"^([wt]\d+-[0-9a-f]{10}\.mp4|\.[wt]\d+-[0-9a-f]{10}\.tmp-\d+\.mp4)$")


def _remove_stale(folder: Path, keep: set[str]) -> int:
    """Delete video files of an earlier, different config (only names this module writes)."""
    removed = 0
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name not in keep and _OUR_FILE.match(p.name) and p.is_file():
                p.unlink()
                removed += 1
    return removed


def _write_parquet(table, path: Path) -> None:
    """Write a plain Parquet table atomically (temporary name, then rename)."""
    import pyarrow.parquet as pq

    from weaksup.outputs import atomic_output

    with atomic_output(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def _write_text(text: str, path: Path) -> None:
    from weaksup.outputs import atomic_output

    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def synth_corpus(cfg: SynthCorpusConfig, *, progress: bool = True) -> dict:
    """Encode the corpus of ``cfg`` under ``cfg.out`` and write its tables; return a summary.

    Files already written by a run of the same config are kept; tables are written at the end.
    """
    import pyarrow as pa
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from weaksup.tables import write_json, write_table

    started = time.perf_counter()
    plan = draw_corpus_plan(cfg)
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder (synth-corpus writes a folder)")
    web_dir, target_dir = out / "videos", out / "target" / "videos"
    try:
        web_dir.mkdir(parents=True, exist_ok=True)
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the output folders ({exc.strerror or exc})") from None
    web_dir, target_dir = web_dir.resolve(), target_dir.resolve()

    jobs = [
        _EncodeJob(str(web_dir / v.file_name), v, v.fps, v.plant.crf if v.plant else _CRF, v.n_frames, v.size)
        for v in plan.web
    ] + [
        _EncodeJob(str(target_dir / t.file_name), t, t.clip.fps, _CRF, t.clip.n_frames, (t.clip.width, t.clip.height))
        for t in plan.target
    ]
    stale = _remove_stale(web_dir, {v.file_name for v in plan.web}) + _remove_stale(target_dir, {t.file_name for t in plan.target})
    # long videos first, so that the pool does not end waiting on one
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i].n_frames * jobs[i].size[0] * jobs[i].size[1])
    sizes = [0] * len(jobs)
    encoded = 0
    with Progress(
        TextColumn("[bold]synth-corpus"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), disable=not progress
    ) as bar:
        task = bar.add_task("encoding", total=len(jobs))
        if cfg.workers <= 0 or len(jobs) <= 1:
            for i in order:
                sizes[i], fresh = _encode(jobs[i])
                encoded += fresh
                bar.advance(task)
        else:
            with make_pool(cfg.workers) as pool:
                futures = {pool.submit(_encode, jobs[i]): i for i in order}
                for fut in as_completed(futures):
                    sizes[futures[fut]], fresh = fut.result()
                    encoded += fresh
                    bar.advance(task)

    names = [c.name for c in plan.classes]
    target_names = [c.name for c in plan.target_classes]
    web_uris = [str(web_dir / v.file_name) for v in plan.web]
    videos_path, truth_path, planted_path = out / "videos.parquet", out / "truth.parquet", out / "planted.parquet"
    labels_path, summary_path = out / "labels.txt", out / "summary.json"
    write_table(
        "videos",
        {
            "video_id": [v.video_id for v in plan.web],
            "uri": web_uris,
            "hashtags": pa.array([list(v.hashtags) for v in plan.web], pa.list_(pa.string())),
            "duration_s": [v.duration_s for v in plan.web],
        },
        videos_path,
    )
    truth = pa.table(
        {
            "video_id": [v.video_id for v in plan.web],
            "label": [names[v.label_id] for v in plan.web],
            "label_id": pa.array([v.label_id for v in plan.web], pa.int32()),
            "action_start_s": [v.action_start_s for v in plan.web],
            "action_end_s": [v.action_end_s for v in plan.web],
            "duration_s": [v.duration_s for v in plan.web],
            "hashtags_noise": [v.hashtags_noise for v in plan.web],
            "tagged_label_ids": pa.array([list(v.tagged_label_ids) for v in plan.web], pa.list_(pa.int32())),
            "planted_from": pa.array([v.planted_from for v in plan.web], pa.string()),
            "transform": pa.array([v.plant.transform if v.plant else None for v in plan.web], pa.string()),
            "fps": [v.fps for v in plan.web],
            "n_frames": pa.array([v.n_frames for v in plan.web], pa.int32()),
            "width": pa.array([v.size[0] for v in plan.web], pa.int32()),
            "height": pa.array([v.size[1] for v in plan.web], pa.int32()),
            "uri": web_uris,
        }
    )
    _write_parquet(truth, truth_path)
    planted = [v for v in plan.web if v.plant is not None]
    _write_parquet(
        pa.table(
            {
                "web_video_id": pa.array([v.video_id for v in planted], pa.string()),
                "target_video_id": pa.array([v.planted_from for v in planted], pa.string()),
                "transform": pa.array([v.plant.transform for v in planted], pa.string()),  # type: ignore[union-attr]
            }
        ),
        planted_path,
    )
    split_paths = {}
    for split in ("train", "test"):
        rows = [t for t in plan.target if t.split == split]
        split_paths[split] = out / "target" / f"{split}.parquet"
        write_table(
            "manifest",
            {
                "video_id": pa.array([t.video_id for t in rows], pa.string()),
                "uri": pa.array([str(target_dir / t.file_name) for t in rows], pa.string()),
                "label_id": pa.array([t.label_id for t in rows], pa.int32()),
                "label": pa.array([target_names[t.label_id] for t in rows], pa.string()),
                "matched_label_ids": pa.array([[t.label_id] for t in rows], pa.list_(pa.int32())),
                "duration_s": pa.array([t.duration_s for t in rows], pa.float64()),
            },
            split_paths[split],
        )
    _write_text("".join(f"{n}\n" for n in names), labels_path)

    per_class = np.bincount([v.label_id for v in plan.web], minlength=len(names))
    noise = {k: sum(v.hashtags_noise == k for v in plan.web) for k in NOISE_KINDS}
    summary = {
        "web_videos": len(plan.web),
        "planted": len(planted),
        "classes": len(names),
        "target_classes": len(target_names),
        "per_class_min": int(per_class.min()),
        "per_class_max": int(per_class.max()),
        "hashtag_noise": noise,
        "target_train": sum(t.split == "train" for t in plan.target),
        "target_test": sum(t.split == "test" for t in plan.target),
        "web_seconds": round(sum(v.duration_s for v in plan.web), 1),
        "target_seconds": round(sum(t.duration_s for t in plan.target), 1),
        "video_seconds": round(sum(v.duration_s for v in plan.web) + sum(t.duration_s for t in plan.target), 1),
        "files": len(jobs),
        "encoded": encoded,
        "skipped": len(jobs) - encoded,
        "stale_removed": stale,
        "bytes": int(sum(sizes)),
        "wall_s": round(time.perf_counter() - started, 2),
        "videos": str(videos_path),
        "truth": str(truth_path),
        "labels": str(labels_path),
        "target_train_manifest": str(split_paths["train"]),
        "target_test_manifest": str(split_paths["test"]),
        "planted_table": str(planted_path),
    }
    write_json(summary, summary_path)
    return summary
