"""Pre-training: LR schedule, sampler, checkpoints, exact resume, DDP, CLI.

Training tests run the ``tiny`` preset on CPU on videos generated here: two classes of a
smooth texture panning left or right, so a few dozen steps are enough for the loss to fall.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn as nn
from conftest import assert_input_error

from weaksup.errors import InputError
from weaksup.train.checkpoint import (
    CheckpointWarning,
    capture_rng,
    list_checkpoints,
    load_latest,
    restore_rng,
    save_checkpoint,
)
from weaksup.train.config import PRESETS, LRSchedule, TrainConfig, preset
from weaksup.train.sampler import ResumableSampler

# ----------------------------------------------------------------------------- LR schedule


def test_schedule_warms_up_linearly_then_halves_13_times_at_equal_steps() -> None:
    s = LRSchedule(peak=1.0, total_steps=1400, warmup_steps=50, halvings=13)
    assert s.boundaries == [100 * k for k in range(1, 14)]
    assert s.lr(0) == pytest.approx(1 / 50)
    assert s.lr(24) == pytest.approx(25 / 50)
    assert s.lr(49) == 1.0 and s.lr(99) == 1.0
    lrs = [s.lr(i) for i in range(1400)]
    drops = [i for i in range(51, 1400) if lrs[i] < lrs[i - 1]]
    assert drops == s.boundaries
    assert all(lrs[b] == pytest.approx(lrs[b - 1] / 2) for b in drops)
    assert lrs[-1] == pytest.approx(2.0**-13)
    # uneven totals still give 13 halvings, spaced within one step of each other
    gaps = np.diff([0, *LRSchedule(peak=1.0, total_steps=1001, halvings=13).boundaries])
    assert len(gaps) == 13 and gaps.max() - gaps.min() <= 1


def test_linear_scaling_uses_total_batch_of_batch_accumulate_and_world() -> None:
    cfg = preset("paper-8f")
    assert (cfg.frames, cfg.batch_size, cfg.weight_decay, cfg.lr_halvings) == (8, 16, 1e-4, 13)
    assert cfg.peak_lr(128) == pytest.approx(0.192)  # 16 x 128 = 2048, the reference batch
    assert cfg.peak_lr(8) == pytest.approx(0.192 * 128 / 2048)
    assert replace(cfg, batch_size=8, accumulate=2).peak_lr(128) == pytest.approx(0.192)
    assert preset("paper-32f").peak_lr(128) == pytest.approx(0.192 * 768 / 2048)
    # the paper's 490M clips: steps follow the total batch, so 1 GPU runs 128x more steps
    assert cfg.total_steps(128, steps_per_epoch=10) == math.ceil(490e6 / 2048)
    assert cfg.total_steps(1, steps_per_epoch=10) == math.ceil(490e6 / 16)
    assert replace(cfg, max_clips=0, epochs=3).total_steps(1, steps_per_epoch=10) == 30
    assert replace(cfg, max_steps=7).total_steps(1, steps_per_epoch=10) == 7
    sched = cfg.schedule(128, 1400)
    assert sched.warmup_steps == 70 and sched.warmup_steps < sched.boundaries[0]


def test_override_applies_the_run_length_rule_of_the_cli() -> None:
    """The Python API and the CLI share one rule: the length a user names replaces the preset's."""
    from weaksup.train.config import FIELD_HELP, PRESETS

    paper = PRESETS["paper-8f"]
    assert paper.max_clips and not paper.max_steps
    by_epochs = paper.override(epochs=3)
    assert (by_epochs.epochs, by_epochs.max_clips, by_epochs.max_steps) == (3, 0, 0)
    by_clips = PRESETS["tiny"].override(max_clips=1000)
    assert (by_clips.max_clips, by_clips.max_steps) == (1000, 0)
    both = paper.override(epochs=3, max_steps=7)
    assert (both.max_steps, both.max_clips) == (7, paper.max_clips)  # max_steps named: nothing cleared
    assert paper.override(seed=1).max_clips == paper.max_clips  # no length named: the preset's stays
    assert set(FIELD_HELP) == set(TrainConfig.__dataclass_fields__) and all(FIELD_HELP.values())


def test_config_validates_and_overrides() -> None:
    cfg = PRESETS["tiny"].override(arch="r3d_18", seed=None)
    assert cfg.arch == "r3d_18" and cfg.seed == PRESETS["tiny"].seed
    assert TrainConfig.from_dict(json.loads(cfg.to_json())) == cfg
    for bad in ({"loss": "hinge"}, {"precision": "fp8"}, {"batch_size": 0}, {"crop": 500}, {"bogus": 1}):
        with pytest.raises(InputError):
            PRESETS["tiny"].override(**bad)
    with pytest.raises(InputError, match="unknown preset"):
        preset("paper-64f")


# ----------------------------------------------------------------------------- sampler


def test_sampler_is_deterministic_sharded_and_padded() -> None:
    a = ResumableSampler(10, seed=3, rank=0, world_size=3)
    b = ResumableSampler(10, seed=3, rank=1, world_size=3)
    c = ResumableSampler(10, seed=3, rank=2, world_size=3)
    shards = [list(s) for s in (a, b, c)]
    assert all(len(s) == 4 for s in shards)  # ceil(10 / 3), padded by wrapping
    assert sorted(set(sum(shards, []))) == list(range(10))
    assert shards[0] == list(ResumableSampler(10, seed=3, rank=0, world_size=3))
    a.set_epoch(1)
    assert list(a) != shards[0]  # another epoch, another order
    assert (
        list(ResumableSampler(10, seed=3, world_size=1, multiple_of=4))
        == ResumableSampler(10, seed=3).shard(0)[:8].tolist()
    )
    with pytest.raises(InputError, match="fewer than one step"):
        ResumableSampler(5, world_size=2, multiple_of=4)


def test_sampler_resumes_mid_epoch() -> None:
    s = ResumableSampler(20, seed=1, world_size=2, rank=1)
    s.set_epoch(2)
    full = list(s)
    s.advance(6)
    state = s.state_dict()
    t = ResumableSampler(20, seed=1, world_size=2, rank=1)
    t.load_state_dict(state)
    assert (t.epoch, t.position, len(t)) == (2, 6, 4)
    assert list(t) == full[6:]
    with pytest.raises(InputError, match="table of 20 rows"):
        ResumableSampler(21, seed=1, world_size=2, rank=1).load_state_dict(state)


def test_weighted_sampler_draws_by_weight_with_replacement() -> None:
    w = np.array([0.0, 1.0, 3.0, 0.0])
    s = ResumableSampler(4, seed=0, weights=w)
    draws = np.concatenate([s.shard(e) for e in range(500)])
    assert set(draws.tolist()) <= {1, 2}
    assert (draws == 2).mean() == pytest.approx(0.75, abs=0.03)
    assert np.array_equal(s.shard(7), ResumableSampler(4, seed=0, weights=w).shard(7))


# ----------------------------------------------------------------------------- checkpoints


def _tiny_state(seed: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(8, 4)).sum().backward()
    opt.step()
    return model, opt


def test_checkpoint_round_trip_with_rng_states(tmp_path: Path) -> None:
    model, opt = _tiny_state(0)
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    rng = capture_rng()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    state = {
        "arch": "toy",
        "step": 5,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "rng": [rng],
        "sampler": {"epoch": 1, "position": 4},
        "config": {"seed": 0},
    }
    path = save_checkpoint(tmp_path, state, step=5, keep=2)
    assert path.name == "step_000000005.pt" and not list(tmp_path.glob(".*tmp*"))

    loaded, where = load_latest(tmp_path, arch="toy")  # weights_only=True inside
    assert where == path and loaded["step"] == 5 and loaded["sampler"] == {"epoch": 1, "position": 4}
    other, other_opt = _tiny_state(9)
    other.load_state_dict(loaded["model"])
    other_opt.load_state_dict(loaded["optimizer"])
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, other.state_dict()[key])
    assert torch.equal(
        opt.state_dict()["state"][0]["momentum_buffer"], other_opt.state_dict()["state"][0]["momentum_buffer"]
    )
    random.random(), np.random.rand(), torch.rand(1)
    restore_rng(loaded["rng"][0])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_checkpoints_keep_last_k_and_fall_back_from_a_truncated_one(tmp_path: Path) -> None:
    model, _ = _tiny_state(0)
    for step in (10, 20, 30):
        save_checkpoint(tmp_path, {"arch": "toy", "step": step, "model": model.state_dict()}, step=step, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000000020.pt", "step_000000030.pt"]
    latest = list_checkpoints(tmp_path)[-1]
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])
    with pytest.warns(CheckpointWarning, match="step_000000030.pt: unreadable checkpoint"):
        state, path = load_latest(tmp_path, arch="toy")
    assert state["step"] == 20 and path.name == "step_000000020.pt"
    with (
        pytest.raises(InputError, match="checkpoint is for arch 'toy', this run uses 'r3d_18'"),
        pytest.warns(CheckpointWarning),
    ):
        load_latest(tmp_path, arch="r3d_18")
    assert load_latest(tmp_path / "none", arch="toy") is None
    # the run goes on from step 20; its next save drops the unreadable later one
    save_checkpoint(tmp_path, {"arch": "toy", "step": 25, "model": model.state_dict()}, step=25, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000000020.pt", "step_000000025.pt"]


# ----------------------------------------------------------------------------- training on tiny videos

DIRECTIONS = {"up": -1, "down": 1, "still": 0}  # vertical, so the training flips keep the classes apart


def stripe_frames(n: int, *, direction: int, seed: int, width: int = 48, height: int = 40) -> np.ndarray:
    """Horizontal sine stripes moving up, down or not at all, 3 px per frame, random phase."""
    phase = np.random.default_rng(seed).random() * 2 * np.pi
    y = np.arange(height, dtype=np.float64)[:, None]
    frames = []
    for i in range(n):
        v = 0.5 + 0.45 * np.sin(2 * np.pi * (y + direction * 3 * i) / 16 + phase)
        v = np.repeat(v, width, axis=1)
        frames.append((np.stack([v, 0.8 * v, 0.6 * v], axis=-1) * 255).astype(np.uint8))
    return np.stack(frames)


def write_manifest(
    folder: Path, *, per_class: int, broken: int = 0, name: str = "manifest.parquet", schema: str = "manifest"
) -> Path:
    """Tiny videos of the three motion classes (+ ``broken`` undecodable files) and their table."""
    from weaksup.synth.video import write_video
    from weaksup.tables import write_table

    rows = []
    for label, (word, direction) in enumerate(DIRECTIONS.items()):
        for k in range(per_class):
            path = folder / f"{word}{k}.mp4"
            if not path.exists():
                write_video(path, stripe_frames(12, direction=direction, seed=10 * label + k), fps=12)
            rows.append({"video_id": f"{word}{k}", "uri": str(path), "label_id": label, "label": word})
    for k in range(broken):
        path = folder / f"broken{k}.mp4"
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 8)
        rows.append({"video_id": f"broken{k}", "uri": str(path), "label_id": 0, "label": "up"})
    table = {key: [r[key] for r in rows] for key in rows[0]}
    table["matched_label_ids"] = [[r["label_id"], 2] if r["label_id"] == 0 else [r["label_id"]] for r in rows]
    table["duration_s"] = [1.0] * len(rows)
    if schema == "sample":
        table["draw"] = list(range(len(rows)))
        table["sample_weight"] = [3.0 if r["label_id"] == 1 else 1.0 for r in rows]
    write_table(schema, table, folder / name)
    return folder / name


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="module")
def manifest(videos: Path) -> Path:
    return write_manifest(videos, per_class=6)


@pytest.fixture(autouse=True)
def one_thread():
    """Two shared cores: one intra-op thread keeps step times stable when the other core is busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(**changes) -> TrainConfig:
    """The tiny preset with one fixed thread: resumes are compared bit for bit, and an adaptive
    thread count (the default) changes the order of float sums with the machine's load."""
    return preset("tiny").override(**{"threads": 1, **changes})


def losses(out: Path) -> list[float]:
    import csv

    with open(out / "log.csv", newline="") as fh:
        return [float(row["loss"]) for row in csv.DictReader(fh)]


def test_tiny_preset_loss_falls(manifest: Path, tmp_path: Path) -> None:
    from weaksup.train.loop import pretrain

    out = tmp_path / "run"
    summary = pretrain(tiny(max_steps=30, log_every=1, checkpoint_every=30), manifest=manifest, out=out, progress=False)
    curve = losses(out)
    assert len(curve) == 30 and summary["steps"] == 30
    first, last = np.mean(curve[:10]), np.mean(curve[-10:])
    assert last < 0.5 * first, f"loss did not fall: first 10 steps {first:.3f}, last 10 {last:.3f}"
    assert summary["checkpoint"].endswith("step_000000030.pt") and Path(summary["checkpoint"]).exists()
    assert summary["clips_per_s"] > 0 and summary["clips_skipped"] == 0 and summary["ranks_in_sync"]
    assert TrainConfig.from_dict(json.loads((out / "config.json").read_text())) == tiny(
        max_steps=30, log_every=1, checkpoint_every=30
    )
    assert json.loads((out / "summary.json").read_text())["steps"] == 30


class Interrupted(Exception):
    pass


def test_resume_reproduces_the_uninterrupted_run_exactly(manifest: Path, tmp_path: Path, monkeypatch) -> None:
    """6 steps straight vs. killed in step 5 and resumed from the checkpoint at step 3.

    16 clips an epoch make 4 steps, so the resume starts mid-epoch and crosses into the next.

    The resumed half loads with two worker processes, the straight run in-process: the
    data order and every clip's augmentation must not depend on who loads it.
    """
    from weaksup.train.checkpoint import load_checkpoint
    from weaksup.train.loop import pretrain

    # bitwise reproducibility is promised on CPU (cuDNN kernels are not deterministic)
    cfg = tiny(max_steps=6, checkpoint_every=3, log_every=1, keep_checkpoints=5, device="cpu")
    straight = pretrain(cfg, manifest=manifest, out=tmp_path / "a", progress=False)

    calls = {"n": 0}
    original = torch.optim.SGD.step

    def crashing_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise Interrupted
        return original(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(torch.optim.SGD, "step", crashing_step)
        with pytest.raises(Interrupted):
            pretrain(replace(cfg, workers=2), manifest=manifest, out=tmp_path / "b", progress=False)
    assert [p.name for p in list_checkpoints(tmp_path / "b" / "checkpoints")] == ["step_000000003.pt"]
    mid = load_checkpoint(tmp_path / "b" / "checkpoints" / "step_000000003.pt")["sampler"]
    assert (mid["epoch"], mid["position"]) == (0, 12)

    resumed = pretrain(replace(cfg, workers=2), manifest=manifest, out=tmp_path / "b", progress=False)
    assert resumed["resumed_from_step"] == 3 and resumed["steps_this_run"] == 3 and resumed["epoch"] == 1
    assert resumed["weights_sha256"] == straight["weights_sha256"]
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "step_000000006.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "step_000000006.pt")
    for key, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][key]), key
    for i, slot in a["optimizer"]["state"].items():
        assert torch.equal(slot["momentum_buffer"], b["optimizer"]["state"][i]["momentum_buffer"])
    assert a["sampler"] == b["sampler"]
    assert losses(tmp_path / "a") == losses(tmp_path / "b")  # log.csv cut back to step 3, then the same rows

    # rerunning a finished run trains nothing; another arch in the same folder is bad input
    again = pretrain(cfg, manifest=manifest, out=tmp_path / "a", progress=False)
    assert again["steps_this_run"] == 0 and again["weights_sha256"] == straight["weights_sha256"]
    with pytest.raises(InputError, match="checkpoint is for arch 'r2plus1d_10', this run uses 'r3d_18'"):
        pretrain(replace(cfg, arch="r3d_18"), manifest=manifest, out=tmp_path / "a", progress=False)


def test_run_fields_come_from_the_config_metadata() -> None:
    from dataclasses import fields

    from weaksup.train.config import RUN_FIELDS
    from weaksup.train.loop import changed_run_fields

    assert all(isinstance(f.metadata.get("run"), bool) for f in fields(TrainConfig))  # every field is decided
    assert {"max_steps", "max_clips", "epochs", "precision", "seed", "base_lr", "frames"} <= set(RUN_FIELDS)
    assert not {
        "workers",
        "threads",
        "log_every",
        "checkpoint_every",
        "keep_checkpoints",
        "device",
        "compile",
        "channels_last",
    } & set(RUN_FIELDS)
    cfg = tiny(max_steps=4)
    assert changed_run_fields(cfg.to_dict(), replace(cfg, workers=3, threads=2, log_every=1, device="cpu")) == []
    assert changed_run_fields(cfg.to_dict(), replace(cfg, epochs=5)) == []  # max_steps decides the length
    assert changed_run_fields(cfg.to_dict(), replace(cfg, max_steps=8)) == [("max_steps", 4, 8)]
    assert changed_run_fields(cfg.to_dict(), replace(cfg, precision="bf16")) == [("precision", "fp32", "bf16")]
    assert changed_run_fields(cfg.to_dict(), replace(cfg, max_steps=0, max_clips=64)) == [
        ("max_steps", 4, 0),
        ("max_clips", None, 64),
    ]


def test_resume_with_another_max_steps_is_refused_unless_allowed(manifest: Path, tmp_path: Path, pretrain_cli) -> None:
    """A resumed run with another --max-steps changed the LR schedule mid-run without a word (issue 15)."""
    from weaksup.train.loop import pretrain

    out = tmp_path / "run"
    base = (
        "--manifest",
        manifest,
        "--out",
        out,
        "--preset",
        "tiny",
        "--threads",
        1,
        "--no-progress",
        "--checkpoint-every",
        2,
        "--log-every",
        1,
    )
    first = pretrain_cli(*base, "--max-steps", 4)
    assert first.exit_code == 0, first.output
    assert_input_error(
        pretrain_cli(*base, "--max-steps", 8),
        "step_000000004.pt",
        "max_steps 4 -> 8",
        "LR schedule",
        "--allow-changed-config",
        "--no-resume",
    )
    threads = torch.get_num_threads()
    with pytest.raises(InputError, match=r"precision fp32 -> bf16"):
        pretrain(tiny(max_steps=4, precision="bf16", threads=threads + 1), manifest=manifest, out=out, progress=False)
    assert torch.get_num_threads() == threads  # a refused resume leaves the caller's thread count alone
    assert [p.name for p in list_checkpoints(out / "checkpoints")] == ["step_000000002.pt", "step_000000004.pt"]

    allowed = pretrain_cli(*base, "--max-steps", 8, "--allow-changed-config")
    assert allowed.exit_code == 0, allowed.output
    from conftest import stderr_of

    warned = [line for line in stderr_of(allowed).splitlines() if line.startswith("weaksup: warning:")]
    assert len(warned) == 1 and "max_steps 4 -> 8" in warned[0] and "LR schedule" in warned[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from_step"] == 4 and summary["steps"] == 8


def test_training_table_kinds_and_class_count(videos: Path, manifest: Path, tmp_path: Path) -> None:
    from weaksup.data.training_data import read_training_table
    from weaksup.tables import write_table

    data = read_training_table(manifest)
    assert (data.kind, data.rows, data.num_classes, data.weights) == ("manifest", 18, 3, None)
    sample = read_training_table(write_manifest(videos, per_class=1, name="s.parquet", schema="sample"))
    assert sample.kind == "sample" and sample.weights.tolist() == [1.0, 3.0, 1.0]

    def labels(n: int) -> Path:
        rows = {
            "label_id": list(range(n)),
            "label": [f"l{i}" for i in range(n)],
            "source": ["file"] * n,
            "canonical": [f"l{i}" for i in range(n)],
            "aliases": [[]] * n,
            "hashtags": [[]] * n,
        }
        write_table("labels", rows, tmp_path / f"labels{n}.parquet")
        return tmp_path / f"labels{n}.parquet"

    assert read_training_table(manifest, labels=labels(400)).num_classes == 400
    with pytest.raises(InputError, match="label id 2 is outside the 2 labels"):
        read_training_table(manifest, labels=labels(2))


def test_corrupt_video_is_skipped_and_rejected(videos: Path, tmp_path: Path) -> None:
    from weaksup.data.rejects import read_rejects
    from weaksup.train.loop import pretrain

    table = write_manifest(videos, per_class=2, broken=2, name="with_broken.parquet")  # 8 rows: 2 steps an epoch
    summary = pretrain(tiny(max_steps=2), manifest=table, out=tmp_path / "run", progress=False)
    assert summary["steps"] == 2 and summary["clips_skipped"] == 2 and summary["rejected_videos"] == 2
    rejects = read_rejects(tmp_path / "run" / "rejects.jsonl")
    assert sorted(rejects.column("video_id").to_pylist()) == ["broken0", "broken1"]


def test_sample_weights_bce_loss_and_accumulation(videos: Path, tmp_path: Path) -> None:
    from weaksup.train.loop import pretrain

    table = write_manifest(videos, per_class=2, name="sample.parquet", schema="sample")
    cfg = tiny(max_steps=2, loss="bce", use_sample_weights=True, batch_size=2, accumulate=2)
    summary = pretrain(cfg, manifest=table, out=tmp_path / "run", progress=False)
    assert summary["steps"] == 2 and math.isfinite(summary["final_loss"]) and summary["total_batch"] == 4
    with pytest.raises(InputError, match="needs a sample table"):
        pretrain(
            tiny(use_sample_weights=True),
            manifest=write_manifest(videos, per_class=2, name="m.parquet"),
            out=tmp_path / "x",
            progress=False,
        )


# ----------------------------------------------------------------------------- CLI


@pytest.fixture
def pretrain_cli():
    """``weaksup pretrain ARGS...`` in-process (the standalone app of ``python -m weaksup.train``)."""
    from conftest import pretrain_app
    from typer.testing import CliRunner

    app = pretrain_app()

    return lambda *args: CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_nan_loss_stops_cleanly_keeping_the_last_good_checkpoint(
    manifest: Path, tmp_path: Path, monkeypatch, pretrain_cli
) -> None:
    import weaksup.train.loop as loop
    from weaksup.train.checkpoint import load_checkpoint

    forwards = {"n": 0}

    def build_poisoned(arch: str, *, num_classes: int) -> nn.Module:
        model = loop_build(arch, num_classes=num_classes)

        def hook(module, args, output):
            forwards["n"] += 1
            return output * float("nan") if forwards["n"] >= 4 else output

        model.register_forward_hook(hook)
        return model

    loop_build = loop.build_model
    monkeypatch.setattr(loop, "build_model", build_poisoned)
    out = tmp_path / "run"
    result = pretrain_cli(
        "--manifest",
        manifest,
        "--out",
        out,
        "--preset",
        "tiny",
        "--max-steps",
        6,
        "--checkpoint-every",
        2,
        "--no-progress",
    )
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("weaksup: error: loss is nan at step 4"), lines
    assert "last good checkpoint" in lines[0] and "step_000000002.pt" in lines[0]
    kept = list_checkpoints(out / "checkpoints")
    assert [p.name for p in kept] == ["step_000000002.pt"]
    assert all(torch.isfinite(t).all() for t in load_checkpoint(kept[0])["model"].values() if t.is_floating_point())


def test_cli_show_config_prints_the_resolved_preset(pretrain_cli) -> None:
    result = pretrain_cli(
        "--preset", "tiny", "--show-config", "--arch", "r3d_18", "--max-clips", "1e3", "--channels-last"
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    # the length given on the command line replaces the preset's (tiny: max_steps 40)
    assert shown == {
        **PRESETS["tiny"].to_dict(),
        "arch": "r3d_18",
        "max_clips": 1000,
        "max_steps": 0,
        "channels_last": True,
    }
    epochs = json.loads(pretrain_cli("--preset", "paper-8f", "--show-config", "--epochs", "3").output)
    assert (epochs["epochs"], epochs["max_clips"], epochs["max_steps"]) == (3, 0, 0)


def test_cli_bad_input_exits_2_with_one_line(manifest: Path, tmp_path: Path, pretrain_cli) -> None:
    out = tmp_path / "run"
    assert_input_error(
        pretrain_cli("--manifest", tmp_path / "nope.parquet", "--out", out, "--preset", "tiny"),
        "nope.parquet",
        "file not found",
    )
    assert_input_error(
        pretrain_cli("--manifest", manifest, "--out", out, "--preset", "tiny", "--arch", "r9d"),
        "unknown architecture 'r9d'",
    )
    assert_input_error(pretrain_cli("--preset", "huge", "--show-config"), "unknown preset 'huge'")
    assert_input_error(pretrain_cli("--preset", "tiny", "--loss", "hinge", "--show-config"), "unknown loss 'hinge'")
    assert_input_error(pretrain_cli("--preset", "tiny", "--out", out), "--manifest and --out are required")
    assert_input_error(
        pretrain_cli(
            "--manifest", manifest, "--out", out, "--preset", "tiny", "--precision", "fp16", "--device", "cpu"
        ),
        "fp16 needs CUDA",
    )
    assert_input_error(
        pretrain_cli(
            "--manifest",
            manifest,
            "--out",
            out,
            "--preset",
            "tiny",
            "--arch",
            "r3d_18",
            "--precision",
            "bf16",
            "--device",
            "cpu",
        ),
        "full 3D convolutions",
    )
    no_labels = tmp_path / "no_labels.parquet"

    pq.write_table(pa.table({"video_id": ["a"], "uri": ["a.mp4"]}), no_labels)
    assert_input_error(pretrain_cli("--manifest", no_labels, "--out", out, "--preset", "tiny"), "missing column")
    assert not (out / "checkpoints").exists()


# ----------------------------------------------------------------------------- DDP


def test_two_process_gloo_ddp_run_ends_with_identical_weights(manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "weaksup.train",
        "--manifest",
        str(manifest),
        "--out",
        str(out),
        "--preset",
        "tiny",
        "--max-steps",
        "2",
        "--device",
        "cpu",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # from the checkout: "-m" puts the cwd first on sys.path, and the source tree imports as the package
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150, env=env, cwd=Path(__file__).parents[1])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["total_batch"] == 8 and summary["steps"] == 2
    hashes = summary["ranks_weights_sha256"]
    assert len(hashes) == 2 and hashes[0] == hashes[1] and summary["ranks_in_sync"]
    assert (out / "checkpoints" / "step_000000002.pt").exists()


# ----------------------------------------------------------------------------- CUDA (skipped without a GPU)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_mixed_precision_channels_last_and_resume(manifest: Path, tmp_path: Path, precision: str) -> None:
    from weaksup.train.loop import pretrain

    cfg = tiny(max_steps=4, checkpoint_every=2, precision=precision, channels_last=True, device="cuda", workers=2)
    first = pretrain(replace(cfg, max_steps=2), manifest=manifest, out=tmp_path / "run", progress=False)
    assert first["device"] == "cuda:0" and math.isfinite(first["final_loss"])
    with pytest.warns(RuntimeWarning, match="max_steps 2 -> 4"):  # extending the run is a changed schedule
        second = pretrain(cfg, manifest=manifest, out=tmp_path / "run", progress=False, allow_changed_config=True)
    assert second["resumed_from_step"] == 2 and second["steps"] == 4 and math.isfinite(second["final_loss"])


# ----------------------------------------------------------------------------- nothing decoded (issue 15, item 6)


def test_manifest_of_only_corrupt_videos_stops_with_one_line(videos: Path, tmp_path: Path, pretrain_cli) -> None:
    table = write_manifest(videos, per_class=0, broken=4, name="all_broken.parquet")
    out = tmp_path / "run"
    result = pretrain_cli("--manifest", table, "--out", out, "--preset", "tiny", "--max-steps", 3, "--no-progress")
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("weaksup: error: no clip of step 1 could be decoded"), lines
    assert "no checkpoint was saved" in lines[0] and "rejects.jsonl" in lines[0]
    assert list_checkpoints(out / "checkpoints") == [] and not (out / "summary.json").exists()


def test_reject_fraction_over_the_limit_stops(videos: Path, tmp_path: Path, monkeypatch, pretrain_cli) -> None:
    import weaksup.train.loop as loop

    monkeypatch.setattr(loop, "REJECT_CHECK_AFTER", 8)  # the real 100 would take a dozen steps
    table = write_manifest(videos, per_class=2, broken=10, name="mostly_broken.parquet")  # 10 of 16 broken
    args = ("--manifest", table, "--preset", "tiny", "--batch-size", 8, "--max-steps", 2, "--no-progress")
    result = pretrain_cli(*args, "--out", tmp_path / "run")
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "clips were rejected" in lines[0] and "--max-reject-fraction 0.5" in lines[0], lines
    assert not (tmp_path / "run" / "summary.json").exists()
    # a looser limit lets the same run finish; it is not a run field (no refusal on resume either)
    ok = pretrain_cli(*args, "--out", tmp_path / "ok", "--max-reject-fraction", 0.9)
    assert ok.exit_code == 0, ok.output
    summary = json.loads((tmp_path / "ok" / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["clips_skipped"] == 10
    assert pretrain_cli(*args, "--out", tmp_path / "bad", "--max-reject-fraction", 1.5).exit_code == 2


def test_finetune_stops_on_undecodable_clips_like_pretraining(videos: Path, tmp_path: Path, monkeypatch) -> None:
    """`eval finetune --max-reject-fraction`: the same guard and one-line stop as pre-training."""
    from typer.testing import CliRunner

    import weaksup.train.loop as loop
    from weaksup.cli.main import app

    monkeypatch.setattr(loop, "REJECT_CHECK_AFTER", 8)
    table = write_manifest(videos, per_class=2, broken=10, name="mostly_broken.parquet")  # 10 of 16 broken
    args = [
        "eval",
        "finetune",
        "--train-manifest",
        table,
        "--test-manifest",
        table,
        "--arch",
        "r2plus1d_10",
        "--frames",
        4,
        "--crop",
        32,
        "--short-side",
        40,
        "--batch-size",
        8,
        "--max-steps",
        2,
        "--clips",
        1,
        "--precision",
        "fp32",
        "--workers",
        0,
        "--no-progress",
    ]
    result = CliRunner().invoke(app, [str(a) for a in args + ["--out", tmp_path / "ft"]])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "clips were rejected" in lines[0] and "--max-reject-fraction 0.5" in lines[0], lines
    ok = CliRunner().invoke(app, [str(a) for a in args + ["--out", tmp_path / "ok", "--max-reject-fraction", 0.9]])
    assert ok.exit_code == 0, ok.output
