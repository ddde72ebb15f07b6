"""extract, eval fc-only, eval finetune: the protocol, the report, label maps and every bad-input path."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import matplotlib.text
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from weaksup.cli.main import app
from weaksup.errors import InputError
from weaksup.eval import extract as extract_mod
from weaksup.eval import report as report_mod
from weaksup.eval.extract import ExtractConfig, extract_features
from weaksup.eval.fc_only import FcOnlyConfig, eval_fc_only
from weaksup.eval.features import class_space, read_features, read_protocol
from weaksup.eval.label_maps import LabelMap, name_key, read_label_map
from weaksup.eval.network import load_network
from weaksup.eval.report import Predictions, confusion_figure, network_name
from weaksup.models import build_model
from weaksup.synth.video import moving_square_frames, write_video
from weaksup.tables import write_table

TINY = dict(frames=4, crop=32, short_side=40, workers=0, progress=False)


def sliding_frames(direction: int, n: int, *, seed: int, size: int = 48) -> np.ndarray:
    """A bright square sliding up (-1) or down (+1) over random texture: one frame cannot tell which.

    Vertical, because training flips clips left-right (which would swap left and right).
    """
    rng = np.random.default_rng(seed)
    background = (rng.random((size, size, 3)) * 150).astype(np.uint8)
    side, y0, x0 = 10, int(rng.integers(0, size - 10)), int(rng.integers(0, size - 10))
    colour = rng.integers(150, 256, 3)
    frames = np.repeat(background[None], n, axis=0)
    for i in range(n):
        y = (y0 + direction * 3 * i) % (size - side)
        frames[i, y : y + side, x0 : x0 + side] = colour
    return frames


def motion_task(
    root: Path, per_class: int, *, offset: int = 0, names=("rising up", "falling down"), ids=(0, 1)
) -> Path:
    rows = []
    for label_id, name, direction in zip(ids, names, (-1, 1)):
        for j in range(per_class):
            path = root / f"{name.replace(' ', '_')}_{offset + j}.mp4"
            write_video(path, sliding_frames(direction, 24, seed=offset + 1000 * (direction + 1) + j), fps=12)
            rows.append(
                {
                    "video_id": path.stem,
                    "uri": str(path),
                    "label_id": label_id,
                    "label": name,
                    "matched_label_ids": [label_id],
                    "duration_s": 2.0,
                }
            )
    out = root / f"manifest_{offset}.parquet"
    write_table("manifest", pa.Table.from_pylist(rows), out)
    return out


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> tuple[Path, Path]:
    """Four good videos of different aspect ratios, one missing file and one truncated file."""
    root = tmp_path_factory.mktemp("extract")
    rows = []
    for i, (w, h) in enumerate([(64, 48), (48, 48), (80, 48), (64, 48)]):
        path = root / f"v{i}.mp4"
        write_video(path, moving_square_frames(24, width=w, height=h, seed=i), fps=12)
        rows.append(
            {
                "video_id": f"v{i}",
                "uri": str(path),
                "label_id": i % 2,
                "label": "ab"[i % 2],
                "matched_label_ids": [i % 2],
                "duration_s": 2.0,
            }
        )
    truncated = root / "truncated.mp4"
    truncated.write_bytes((root / "v0.mp4").read_bytes()[:700])
    rows.insert(
        1,
        {
            "video_id": "missing",
            "uri": str(root / "missing.mp4"),
            "label_id": 0,
            "label": "a",
            "matched_label_ids": [0],
            "duration_s": 2.0,
        },
    )
    rows.append(
        {
            "video_id": "truncated",
            "uri": str(truncated),
            "label_id": 1,
            "label": "b",
            "matched_label_ids": [1],
            "duration_s": 2.0,
        }
    )
    manifest = root / "manifest.parquet"
    write_table("manifest", pa.Table.from_pylist(rows), manifest)
    return root, manifest


# ----------------------------------------------------------------------------- extract


def test_extract_averages_k_clips_and_accounts_for_every_row(videos):
    root, manifest = videos
    out = root / "features.parquet"
    summary = extract_features(
        manifest, out, checkpoint=None, cfg=ExtractConfig(arch="r2plus1d_10", num_clips=3, chunk_videos=2, **TINY)
    )
    table = pq.read_table(out)
    assert table.column("video_id").to_pylist() == ["v0", "missing", "v1", "v2", "v3", "truncated"]
    status = dict(zip(table.column("video_id").to_pylist(), table.column("status").to_pylist()))
    errors = dict(zip(table.column("video_id").to_pylist(), table.column("error").to_pylist()))
    assert status == {"v0": "ok", "missing": "rejected", "v1": "ok", "v2": "ok", "v3": "ok", "truncated": "rejected"}
    assert "not found" in errors["missing"] and errors["truncated"]
    assert summary["ok"] == 4 and summary["rejected"] == 2 and summary["clips_failed"] == 6
    for row in table.to_pylist():
        if row["status"] != "ok":
            assert row["features"] is None and row["clips"] == 0
            continue
        clips = np.asarray(row["clip_features"], np.float32)
        assert clips.shape == (3, 512) and row["clips"] == 3
        np.testing.assert_allclose(row["features"], clips.mean(axis=0), rtol=1e-5, atol=1e-6)
        assert not np.allclose(clips[0], clips[1])  # clips come from different times
    proto = read_protocol(out)
    assert proto["num_clips"] == 3 and proto["crop"] == 32 and proto["arch"] == "r2plus1d_10"
    assert not out.with_name(out.name + ".parts").exists()


def test_extract_features_are_the_networks_pooled_layer(videos):
    """Video 0's first clip through the model by hand equals its stored clip feature."""
    root, manifest = videos
    out = root / "one.parquet"
    extract_features(manifest, out, checkpoint=None, cfg=ExtractConfig(arch="r2plus1d_10", num_clips=2, **TINY))
    from weaksup.data.dataset import EvalClipDataset

    clip = EvalClipDataset(manifest, num_clips=2, num_frames=4, crop=32, short_side=40)[0]["clip"]
    model = load_network(None, arch="r2plus1d_10").model
    with torch.inference_mode():
        expected = model.forward_features(clip[None]).numpy()[0]
    stored = np.asarray(pq.read_table(out).column("clip_features")[0].as_py()[0], np.float32)
    np.testing.assert_allclose(stored, expected, rtol=1e-3, atol=1e-4)


def test_extract_full_frame_handles_mixed_aspect_ratios(videos):
    root, manifest = videos
    out = root / "full.parquet"
    extract_features(
        manifest,
        out,
        checkpoint=None,
        cfg=ExtractConfig(arch="r2plus1d_10", num_clips=2, full_frame=True, batch_size=8, **TINY),
    )
    table = pq.read_table(out)
    assert table.column("status").to_pylist().count("ok") == 4
    assert read_protocol(out)["crop"] is None
    cropped = root / "cropped.parquet"
    extract_features(manifest, cropped, checkpoint=None, cfg=ExtractConfig(arch="r2plus1d_10", num_clips=2, **TINY))
    # the 80x48 video sees more of the frame without the crop, so its features differ
    a, b = pq.read_table(out).column("features")[3].as_py(), pq.read_table(cropped).column("features")[3].as_py()
    assert not np.allclose(a, b)


def test_extract_resumes_after_a_kill_with_the_same_result(videos, monkeypatch):
    root, manifest = videos
    cfg = ExtractConfig(arch="r2plus1d_10", num_clips=2, chunk_videos=2, **TINY)
    clean = root / "clean.parquet"
    extract_features(manifest, clean, checkpoint=None, cfg=cfg)

    out = root / "killed.parquet"
    _killed_extract(monkeypatch, manifest, out, checkpoint=None, cfg=cfg)
    assert not out.exists()
    summary = extract_features(manifest, out, checkpoint=None, cfg=cfg)
    assert summary["chunks_resumed"] == 1
    assert pq.read_table(out).equals(pq.read_table(clean))


def _killed_extract(monkeypatch, manifest, out, **kw) -> None:
    """An extract killed while writing its second part (so one part exists)."""
    real = extract_mod._write_part
    calls = {"n": 0}

    def dies_on_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(extract_mod, "_write_part", dies_on_second)
        with pytest.raises(KeyboardInterrupt):
            extract_features(manifest, out, **kw)
    assert len(list(out.with_name(out.name + ".parts").glob("part-*.parquet"))) == 1


def test_extract_recomputes_parts_of_another_manifest_or_checkpoint(videos, tmp_path, monkeypatch):
    """Parts were matched by the manifest's and checkpoint's paths only (issue 15): a table or
    checkpoint rewritten at the same path resumed from the old one's parts."""
    from weaksup.bulk import StaleResumeWarning

    root, manifest = videos
    cfg = ExtractConfig(arch="r2plus1d_10", num_clips=2, chunk_videos=2, **TINY)
    table = pq.read_table(manifest)
    edited = tmp_path / "manifest.parquet"  # one path, two contents
    write_table("manifest", table, edited)
    out = tmp_path / "feats.parquet"
    _killed_extract(monkeypatch, edited, out, checkpoint=None, cfg=cfg)

    reordered = table.take(list(reversed(range(table.num_rows))))
    write_table("manifest", reordered, edited)
    clean = tmp_path / "clean.parquet"
    write_table("manifest", reordered, tmp_path / "reordered.parquet")
    extract_features(tmp_path / "reordered.parquet", clean, checkpoint=None, cfg=cfg)
    with pytest.warns(StaleResumeWarning, match=r"1 of 1 chunk of an earlier run was stale .*input rows changed"):
        summary = extract_features(edited, out, checkpoint=None, cfg=cfg)
    assert summary["chunks_resumed"] == 0
    assert pq.read_table(out).column("video_id").to_pylist() == reordered.column("video_id").to_pylist()
    assert pq.read_table(out).equals(pq.read_table(clean))

    # a checkpoint file overwritten with other weights
    weights = tmp_path / "weights.pth"
    torch.manual_seed(1)
    torch.save(build_model("r2plus1d_10", num_classes=2).state_dict(), weights)
    _killed_extract(monkeypatch, manifest, out, checkpoint=weights, cfg=cfg)
    torch.manual_seed(2)
    torch.save(build_model("r2plus1d_10", num_classes=2).state_dict(), weights)
    extract_features(manifest, clean, checkpoint=weights, cfg=cfg)
    with pytest.raises(InputError, match=r"1 of 1 chunk .*does not belong to this job \(settings changed: weights"):
        extract_features(manifest, out, checkpoint=weights, cfg=cfg, resume_strict=True)
    with pytest.warns(StaleResumeWarning, match=r"settings changed: weights"):
        extract_features(manifest, out, checkpoint=weights, cfg=cfg)
    assert pq.read_table(out).equals(pq.read_table(clean))

    # another chunk size: the parts hold other rows
    _killed_extract(monkeypatch, manifest, out, checkpoint=weights, cfg=cfg)
    with pytest.warns(StaleResumeWarning, match=r"settings changed: chunk_videos 2 -> 3"):
        extract_features(manifest, out, checkpoint=weights, cfg=replace(cfg, chunk_videos=3))
    assert pq.read_table(out).equals(pq.read_table(clean))


def test_extract_cli_resume_strict_and_no_resume(videos, tmp_path, monkeypatch, runner):
    from conftest import assert_input_error, stderr_of

    root, manifest = videos
    out = tmp_path / "feats.parquet"
    cfg = ExtractConfig(arch="r2plus1d_10", num_clips=2, chunk_videos=2, **TINY)
    _killed_extract(monkeypatch, manifest, out, checkpoint=None, cfg=cfg)
    args = [
        "extract",
        "--manifest",
        manifest,
        "--out",
        out,
        "--arch",
        "r2plus1d_10",
        "--clips",
        2,
        "--frames",
        4,
        "--crop",
        32,
        "--short-side",
        40,
        "--workers",
        0,
        "--chunk-videos",
        2,
        "--no-progress",
    ]
    invoke = lambda *more: runner.invoke(app, [str(a) for a in [*args, *more]], catch_exceptions=False)  # noqa: E731
    assert_input_error(
        invoke("--seed", 1, "--resume-strict"),
        "1 of 1 chunk",
        "settings changed: weights",
        "--resume-strict",
        "--no-resume",
    )
    result = invoke("--seed", 1)
    assert result.exit_code == 0, result.output
    warned = [line for line in stderr_of(result).splitlines() if line.strip()]
    assert len(warned) == 1 and warned[0].startswith("weaksup: warning: ") and "settings changed: weights" in warned[0]

    _killed_extract(monkeypatch, manifest, out, checkpoint=None, cfg=cfg)
    written = []
    real = extract_mod._write_part
    monkeypatch.setattr(
        extract_mod, "_write_part", lambda parts, chunk, *a: (written.append(chunk), real(parts, chunk, *a))
    )
    result = invoke("--no-resume")
    assert result.exit_code == 0, result.output
    assert sorted(written) == [0, 1, 2] and "warning" not in stderr_of(
        result
    )  # the killed run's chunk 0 was done again


def test_checkpoint_loading_and_mismatches(tmp_path):
    model = build_model("r2plus1d_10", num_classes=3)
    plain = tmp_path / "weights.pth"
    torch.save(model.state_dict(), plain)
    net = load_network(plain, arch="r2plus1d_10")
    assert (net.arch, net.num_classes, net.feature_dim) == ("r2plus1d_10", 3, 512)
    with pytest.raises(InputError, match="pass --arch"):
        load_network(plain)
    with pytest.raises(InputError, match="another architecture"):
        load_network(plain, arch="r2plus1d_18")  # same layers, other widths: the feature size differs
    with pytest.raises(InputError, match="no checkpoints"):
        load_network(tmp_path)
    with pytest.raises(InputError, match="random"):
        load_network(None)


# ----------------------------------------------------------------------------- label maps


def test_label_map_formats(tmp_path):
    (tmp_path / "plain.txt").write_text("Brush hair\ncartwheel\n\n")
    assert read_label_map(tmp_path / "plain.txt").names == ("Brush hair", "cartwheel")
    (tmp_path / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    assert read_label_map(tmp_path / "classInd.txt").names == ("ApplyEyeMakeup", "Archery")
    (tmp_path / "epic.csv").write_text("id,key,instances\n1,put,\"['put']\"\n0,take,\"['take', 'grab']\"\n")
    assert read_label_map(tmp_path / "epic.csv").names == ("take", "put")
    (tmp_path / "dup.txt").write_text("brush_hair\nBrush hair\n")
    with pytest.raises(InputError, match="same name"):
        read_label_map(tmp_path / "dup.txt")
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(InputError, match="UTF-8"):
        read_label_map(tmp_path / "bad.txt")
    assert name_key("ApplyEyeMakeup") == name_key("apply_eye_makeup") == "apply eye makeup"


def test_real_label_maps(shared_data):
    labels = shared_data / "labels"
    sizes = {
        "kinetics400/label_map.txt": 400,
        "ucf101/label_map.txt": 101,
        "hmdb51/label_map.txt": 51,
        "epic_kitchens/EPIC_100_verb_classes.csv": 97,
        "epic_kitchens/EPIC_100_noun_classes.csv": 300,
        "epic_kitchens/EPIC_verb_classes.csv": 125,
        "something_something/sthv2_label_map.txt": 174,
    }
    for name, size in sizes.items():
        lm = read_label_map(labels / name)
        assert len(lm) == size, name
    assert read_label_map(labels / "epic_kitchens/EPIC_100_verb_classes.csv").names[:2] == ("take", "put")


# ----------------------------------------------------------------------------- fc-only on features tables


def features_table(
    path: Path,
    x: np.ndarray,
    labels: np.ndarray,
    names: list[str] | None,
    *,
    clip_x: np.ndarray | None = None,
    rejected: int = 0,
) -> Path:
    rows = []
    for i, (f, y) in enumerate(zip(x, labels)):
        rows.append(
            {
                "video_id": f"{path.stem}{i}",
                "uri": f"/v/{i}.mp4",
                "label_id": int(y),
                "label": names[int(y)] if names else None,
                "label_ids": [int(y)],
                "status": "ok",
                "error": None,
                "clips": 1 if clip_x is None else clip_x.shape[1],
                "features": f.astype(np.float32).tolist(),
                "clip_features": None if clip_x is None else clip_x[i].astype(np.float32).tolist(),
            }
        )
    for j in range(rejected):
        rows.append(
            {
                "video_id": f"bad{j}",
                "uri": "/v/bad.mp4",
                "label_id": 0,
                "label": names[0] if names else None,
                "label_ids": [0],
                "status": "rejected",
                "error": "InvalidDataError: no frames",
                "clips": 0,
                "features": None,
                "clip_features": None,
            }
        )
    write_table("features", pa.Table.from_pylist(rows), path)
    return path


def gaussian_task(rng, n: int, dim: int = 16, classes: int = 4, noise: float = 1.0):
    means = np.random.default_rng(99).normal(0, 1.5, (classes, dim))
    y = rng.integers(0, classes, n)
    clips = means[y][:, None, :] + rng.normal(0, noise * 2, (n, 3, dim))
    return clips.mean(axis=1), y, clips


def test_fc_only_report_and_video_vs_clip_level(tmp_path):
    rng = np.random.default_rng(0)
    names = ["abseiling", "archery", "bowling", "zumba"]
    x_tr, y_tr, _ = gaussian_task(rng, 400)
    x_te, y_te, clips_te = gaussian_task(rng, 200)
    train = features_table(tmp_path / "train.parquet", x_tr, y_tr, names, rejected=2)
    test = features_table(tmp_path / "test.parquet", x_te, y_te, names, clip_x=clips_te, rejected=1)
    m = eval_fc_only(train, test, tmp_path / "report", FcOnlyConfig(penalties=(1e-3, 1e-1)))
    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert saved["top1"] == m["top1"] and 0.5 < m["top1"] <= 1.0 and m["top5"] == 1.0  # 4 classes: top-5 is all
    assert m["clip_top1"] < m["top1"]  # averaging 3 noisy clips per video helps
    assert (m["train_videos"], m["train_rejected"], m["test_videos"], m["test_rejected"]) == (400, 2, 200, 1)
    assert m["protocol"]["penalty"] in (1e-3, 1e-1) and len(m["protocol"]["penalty_search"]) == 2
    per_class = (tmp_path / "report" / "per_class.csv").read_text().splitlines()
    assert per_class[0].startswith("class_id,class,test_videos,correct,accuracy") and len(per_class) == 5
    assert sum(int(line.split(",")[2]) for line in per_class[1:]) == 200
    assert (tmp_path / "report" / "confusion.png").stat().st_size > 1000
    # 400 training videos: 10% would be 40, so the penalty is chosen by 5-fold CV over all of them
    proto = m["protocol"]
    assert proto["penalty_search_scheme"] == "5-fold CV"
    assert proto["penalty_search_rows"]["validation"] == 400
    assert all(len(row["fold_top1"]) == 5 for row in proto["penalty_search"])
    assert "penalty_search_warning" in proto
    # the title names the network (no checkpoint in these tables: random init) and the protocol
    assert m["title"].startswith("random init, fc-only: train.parquet -> test.parquet")
    with Image.open(tmp_path / "report" / "confusion.png") as png:
        assert png.size[0] >= 600 and png.size[1] >= 500


def test_fc_only_large_training_set_holds_out_10_percent(tmp_path):
    rng = np.random.default_rng(4)
    x_tr, y_tr, _ = gaussian_task(rng, 1000)
    x_te, y_te, _ = gaussian_task(rng, 40)
    train = features_table(tmp_path / "train.parquet", x_tr, y_tr, None)
    test = features_table(tmp_path / "test.parquet", x_te, y_te, None)
    m = eval_fc_only(train, test, tmp_path / "r", FcOnlyConfig(penalties=(1e-1, 1e-3)))
    proto = m["protocol"]
    assert proto["penalty_search_scheme"] == "held-out 10%"
    assert proto["penalty_search_rows"] == {"fit": 900, "validation": 100}
    assert all("fold_top1" not in row for row in proto["penalty_search"])


def test_fc_only_records_a_penalty_search_that_cannot_choose(tmp_path):
    rng = np.random.default_rng(5)
    means = np.eye(3, 8) * 12  # far apart: every penalty classifies every fold perfectly
    y_tr, y_te = np.repeat(np.arange(3), 10), np.repeat(np.arange(3), 4)
    train = features_table(tmp_path / "train.parquet", means[y_tr] + rng.normal(size=(30, 8)), y_tr, None)
    test = features_table(tmp_path / "test.parquet", means[y_te] + rng.normal(size=(12, 8)), y_te, None)
    with pytest.warns(RuntimeWarning, match="could not tell the 3 penalties apart"):
        m = eval_fc_only(train, test, tmp_path / "r", FcOnlyConfig(penalties=(1e-1, 1e-2, 1e-3)))
    proto = m["protocol"]
    assert proto["penalty_search_scheme"] == "5-fold CV" and proto["penalty"] == 1e-3  # ties: the weakest
    assert "could not tell" in proto["penalty_search_warning"] and proto["penalty_search_warning"] in proto["warnings"]
    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert saved["protocol"]["penalty_search_warning"] == proto["penalty_search_warning"]
    assert m["top1"] == 1.0


# ----------------------------------------------------------------------------- the report's plot


def test_confusion_figure_is_legible_and_shows_the_counts():
    long = "pretending to put something on a surface"  # 40 characters: once cut at 18
    names = ["abseiling", long, "zumba"]
    counts = np.array([[7, 2, 0], [1, 13, 3], [0, 4, 120]])
    fig = confusion_figure(counts, names, "runs/k400/final.pt, fine-tune: train.parquet -> test.parquet")
    width, height = fig.get_size_inches() * fig.dpi
    assert fig.dpi >= 100 and width >= 600 and height >= 500
    ax = fig.axes[0]
    cells = [t.get_text() for t in ax.texts]
    assert sorted(cells) == sorted(str(v) for v in counts.ravel())
    fig.canvas.draw()  # tick labels are realised on drawing
    for ticks in (ax.get_xticklabels(), ax.get_yticklabels()):
        assert [t.get_text().replace("\n", " ") for t in ticks] == names
        assert all(t.get_fontsize() >= 9 for t in ticks)
    assert all(t.get_rotation() != 0 for t in ax.get_xticklabels())
    assert max(t.get_text().count("\n") for t in ax.get_yticklabels()) == 1  # the long name on two lines
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text().strip()]
    assert all(t.get_fontsize() >= 9 for t in texts)
    assert "runs/k400/final.pt, fine-tune" in fig._suptitle.get_text()
    # the size grows with the classes; past 30 classes, colour only, every name still there
    many = [f"class {i}" for i in range(40)]
    big = confusion_figure(np.eye(40, dtype=int) * 3, many, "t")
    assert big.get_size_inches()[0] > fig.get_size_inches()[0] and not big.axes[0].texts
    big.canvas.draw()
    assert [t.get_text() for t in big.axes[0].get_yticklabels()] == many


def test_report_plot_title_names_the_network(tmp_path, monkeypatch):
    titles = []
    real = report_mod.confusion_figure
    monkeypatch.setattr(report_mod, "confusion_figure", lambda c, n, t: titles.append(t) or real(c, n, t))
    videos = Predictions(np.eye(3, dtype=np.float32)[[0, 1, 2, 2]], labels=np.array([0, 1, 2, 1]))
    for checkpoint in ("random init (seed 0)", "/data/runs/pretrain_ig/checkpoints/final.pt"):
        m = report_mod.write_report(
            tmp_path / checkpoint[-8:],
            videos=videos,
            clips=None,
            class_names=["a", "b", "c"],
            protocol={"checkpoint": checkpoint},
            counts={},
            title="fine-tune: tr -> te",
        )
        assert m["title"] == "fine-tune: tr -> te"
        with Image.open(m["files"]["confusion"]) as png:
            assert png.size[0] >= 600 and png.size[1] >= 500
    assert titles == [
        "fine-tune: tr -> te\nnetwork: random init (seed 0)",
        "fine-tune: tr -> te\nnetwork: .../pretrain_ig/checkpoints/final.pt",
    ]
    assert network_name(None) == "random init" and network_name("a/b.pt") == "a/b.pt"


def test_fc_only_maps_classes_by_name_across_numberings(tmp_path):
    rng = np.random.default_rng(1)
    names = ["abseiling", "archery", "bowling", "zumba"]
    x_tr, y_tr, _ = gaussian_task(rng, 300)
    x_te, y_te, _ = gaussian_task(rng, 120)
    train = features_table(tmp_path / "train.parquet", x_tr, y_tr, names)
    aligned = features_table(tmp_path / "test.parquet", x_te, y_te, names)
    # the same test set, numbered by another label file (reversed order)
    rev = names[::-1]
    rows = pq.read_table(aligned).to_pylist()
    for r in rows:
        r["label_id"] = rev.index(r["label"])
    permuted = tmp_path / "test_permuted.parquet"
    write_table("features", pa.Table.from_pylist(rows), permuted)
    cfg = FcOnlyConfig(penalties=(1e-2,))
    a = eval_fc_only(train, aligned, tmp_path / "a", cfg)
    b = eval_fc_only(train, permuted, tmp_path / "b", cfg)
    assert a["top1"] == b["top1"] and a["top1"] > 0.5
    lm = tmp_path / "map.txt"
    lm.write_text("\n".join(["Zumba", "Bowling", "Archery", "Abseiling", "yoga"]) + "\n")
    c = eval_fc_only(train, permuted, tmp_path / "c", FcOnlyConfig(penalties=(1e-2,), label_map=lm))
    assert c["top1"] == a["top1"] and c["num_classes"] == 5 and c["protocol"]["label_map"] == str(lm)


def test_class_space_refuses_silent_mismatches(tmp_path):
    x = np.zeros((4, 3))
    train = read_features(features_table(tmp_path / "tr.parquet", x, np.array([0, 0, 1, 1]), ["a", "b", "c"]))
    unseen = read_features(features_table(tmp_path / "te.parquet", x, np.array([0, 2, 1, 2]), ["a", "b", "c"]))
    with pytest.raises(InputError, match="'c' has no training example"):
        class_space(train, unseen)
    with pytest.raises(InputError, match="not in the label map"):
        class_space(train, unseen, LabelMap(("a", "b"), "map.txt"))
    nameless_tr = read_features(features_table(tmp_path / "ntr.parquet", x, np.array([0, 0, 1, 1]), None))
    nameless_te = read_features(features_table(tmp_path / "nte.parquet", x, np.array([0, 5, 1, 1]), None))
    with pytest.raises(InputError, match="label_id 5 has no training example"):
        class_space(nameless_tr, nameless_te)
    rows = pq.read_table(tmp_path / "tr.parquet").to_pylist()
    rows[1]["label"] = "b"  # label_id 0 now has two names
    write_table("features", pa.Table.from_pylist(rows), tmp_path / "two.parquet")
    with pytest.raises(InputError, match="two names"):
        class_space(read_features(tmp_path / "two.parquet"), unseen)


def test_fc_only_bad_inputs_exit_2(tmp_path, runner):
    rng = np.random.default_rng(2)
    x, y, _ = gaussian_task(rng, 40)
    good = features_table(tmp_path / "good.parquet", x, y, None)
    x_nan = x.copy()
    x_nan[[3, 7]] = np.nan
    nan = features_table(tmp_path / "nan.parquet", x_nan, y, None)
    small = features_table(tmp_path / "small.parquet", x[:, :8], y, None)
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    cases = {
        nan: "2 row(s) have NaN or infinite features",
        small: "features have 8 dimensions",
        tmp_path / "junk.parquet": "not a readable Parquet file",
        tmp_path / "absent.parquet": "file not found",
    }
    for test, message in cases.items():
        result = runner.invoke(
            app, ["eval", "fc-only", "--train", str(good), "--test", str(test), "--out", str(tmp_path / "r")]
        )
        assert result.exit_code == 2, (test, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_fc_only_multilabel_reports_map(tmp_path):
    rng = np.random.default_rng(3)
    n, dim, classes = 300, 12, 4
    w = np.random.default_rng(5).normal(0, 1, (classes, dim))

    def make(path, n):
        x = rng.normal(0, 1, (n, dim))
        hot = (x @ w.T + rng.normal(0, 0.5, (n, classes))) > 0.8
        rows = [
            {
                "video_id": f"{path.stem}{i}",
                "uri": "/v.mp4",
                "label_id": int(np.argmax(hot[i])),
                "label": None,
                "label_ids": np.flatnonzero(hot[i]).tolist(),
                "status": "ok",
                "error": None,
                "clips": 1,
                "features": x[i].astype(np.float32).tolist(),
                "clip_features": None,
            }
            for i in range(n)
        ]
        write_table("features", pa.Table.from_pylist(rows), path)
        return path

    m = eval_fc_only(
        make(tmp_path / "tr.parquet", n),
        make(tmp_path / "te.parquet", 150),
        tmp_path / "r",
        FcOnlyConfig(multilabel=True, penalties=(1e-3,)),
    )
    assert 0.6 < m["mAP"] <= 1.0 and "top1" not in m
    assert "AP" in (tmp_path / "r" / "per_class.csv").read_text().splitlines()[0]


# ----------------------------------------------------------------------------- the real pipeline on videos


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("task")
    return root, motion_task(root, 40, offset=0), motion_task(root, 12, offset=500)


def test_finetune_beats_the_frozen_network_and_cli_end_to_end(task, runner):
    """Rising vs falling: one frame cannot tell, so frozen random features barely can; fine-tuning learns it."""
    root, train, test = task
    for split, manifest in (("train", train), ("test", test)):
        result = runner.invoke(
            app,
            [
                "extract",
                "--manifest",
                str(manifest),
                "--out",
                str(root / f"f_{split}.parquet"),
                "--arch",
                "r2plus1d_10",
                "--frames",
                "4",
                "--crop",
                "32",
                "--short-side",
                "40",
                "--clips",
                "4",
                "--workers",
                "0",
                "--no-progress",
            ],
        )
        assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        [
            "eval",
            "fc-only",
            "--train",
            str(root / "f_train.parquet"),
            "--test",
            str(root / "f_test.parquet"),
            "--out",
            str(root / "fc"),
        ],
    )
    assert result.exit_code == 0, result.output
    frozen = json.loads((root / "fc" / "metrics.json").read_text())
    result = runner.invoke(
        app,
        [
            "eval",
            "finetune",
            "--train-manifest",
            str(train),
            "--test-manifest",
            str(test),
            "--arch",
            "r2plus1d_10",
            "--preset",
            "finetune-tiny",
            "--epochs",
            "6",
            "--clips",
            "4",
            "--out",
            str(root / "ft"),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    tuned = json.loads((root / "ft" / "metrics.json").read_text())
    assert tuned["top1"] >= 0.9 and tuned["top1"] > frozen["top1"] + 0.1, (tuned["top1"], frozen["top1"])
    assert tuned["protocol"]["clips"] == 4 and "clip_top1" in tuned
    assert (root / "ft" / "checkpoints").is_dir() and (root / "ft" / "confusion.png").exists()
