"""weaksup stats: label counts, the plots, and summary numbers checked by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from weaksup.assembly.stats import StatsConfig, gini, manifest_stats
from weaksup.cli import sample as sample_cli
from weaksup.tables import validate_file, write_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_manifest(path: Path, durations: list[float | None]) -> Path:
    """6 videos: label 0 has 3, label 1 has 2, label 2 has 1; label 3 is only ever matched."""
    write_table(
        "manifest",
        {
            "video_id": pa.array([f"v{i}" for i in range(6)]),
            "uri": pa.array([f"file:///v{i}.mp4" for i in range(6)]),
            "label_id": pa.array([0, 0, 0, 1, 1, 2], pa.int32()),
            "label": pa.array(["swim", "swim", "swim", "run", "run", "dive"]),
            "matched_label_ids": pa.array([[0, 1], [0], [0, 2], [1], [1, 2], [2, 3]], pa.list_(pa.int32())),
            "duration_s": pa.array(durations, pa.float64()),
        },
        path,
    )
    return path


def write_probe(path: Path, rows: list[tuple[str, str, float | None]]) -> Path:
    write_table(
        "probe",
        {
            "video_id": pa.array([r[0] for r in rows]),
            "uri": pa.array([f"file:///{r[0]}.mp4" for r in rows]),
            "status": pa.array([r[1] for r in rows]),
            "duration_s": pa.array([r[2] for r in rows], pa.float64()),
        },
        path,
    )
    return path


def invoke(*args: str | Path):
    app = typer.Typer()
    sample_cli.register(app)
    return CliRunner().invoke(app, [str(a) for a in args])


def test_summary_matches_hand_counts(tmp_path: Path) -> None:
    manifest = tiny_manifest(tmp_path / "m.parquet", [10.0, 20.0, 30.0, None, 40.0, 50.0])
    summary = manifest_stats(StatsConfig(manifest=manifest, out=tmp_path / "stats"))
    assert summary["videos"] == 6
    assert summary["labels"] == 3
    assert summary["matched_labels"] == 4
    assert (summary["min_videos_per_label"], summary["median_videos_per_label"], summary["max_videos_per_label"]) == (
        1,
        2.0,
        3,
    )
    assert summary["gini"] == pytest.approx(2 * (1 * 1 + 2 * 2 + 3 * 3) / (3 * 6) - 4 / 3)  # = 2/9
    assert summary["head_labels"] == 1 and summary["head_share"] == pytest.approx(0.5)
    assert summary["labels_for_half_of_videos"] == 1
    assert summary["mean_matched_labels_per_video"] == pytest.approx(10 / 6)
    assert summary["duration_source"] == "manifest"
    assert summary["videos_with_duration"] == 5
    assert summary["total_duration_hours"] == pytest.approx(150 / 3600)
    assert json.loads((tmp_path / "stats" / "summary.json").read_text())["gini"] == pytest.approx(summary["gini"])


def test_label_counts_table(tmp_path: Path) -> None:
    manifest = tiny_manifest(tmp_path / "m.parquet", [1.0] * 6)
    manifest_stats(StatsConfig(manifest=manifest, out=tmp_path / "stats"))
    path = tmp_path / "stats" / "label_counts.parquet"
    assert validate_file("label_counts", path) == 4
    rows = pq.read_table(path).to_pylist()
    assert [(r["label_id"], r["label"], r["matched_videos"], r["assigned_videos"], r["kept"]) for r in rows] == [
        (0, "swim", 3, 3, True),
        (1, "run", 3, 2, True),
        (2, "dive", 3, 1, True),
        (3, "", 1, 0, True),  # matched only: the manifest has no name for it
    ]


def test_pngs_written_and_duration_hist_only_with_durations(tmp_path: Path) -> None:
    with_durations = tiny_manifest(tmp_path / "d.parquet", [5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    without = tiny_manifest(tmp_path / "n.parquet", [None] * 6)
    a = manifest_stats(StatsConfig(manifest=with_durations, out=tmp_path / "a"))
    b = manifest_stats(StatsConfig(manifest=without, out=tmp_path / "b"))
    for name in ("label_distribution.png", "videos_per_label_hist.png", "duration_hist.png"):
        data = (tmp_path / "a" / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
    assert (tmp_path / "b" / "label_distribution.png").stat().st_size > 1000
    assert not (tmp_path / "b" / "duration_hist.png").exists()
    assert "duration_hist" in a["files"] and "duration_hist" not in b["files"]
    assert b["duration_source"] is None and b["total_duration_hours"] is None and b["videos_with_duration"] == 0


def test_probe_durations_join_ok_rows_of_manifest_videos(tmp_path: Path) -> None:
    manifest = tiny_manifest(tmp_path / "m.parquet", [None] * 6)
    probe = write_probe(
        tmp_path / "probe.parquet",
        [
            ("v0", "ok", 30.0),
            ("v1", "ok", 60.0),
            ("v2", "rejected", None),
            ("v3", "rejected", 99.0),
            ("other", "ok", 1000.0),
        ],
    )
    summary = manifest_stats(StatsConfig(manifest=manifest, out=tmp_path / "s", probe=probe))
    assert summary["duration_source"] == "probe"
    assert summary["videos_with_duration"] == 2
    assert summary["total_duration_hours"] == pytest.approx(90 / 3600)
    assert (tmp_path / "s" / "duration_hist.png").stat().st_size > 1000


def test_long_tail_counts_add_up(tmp_path: Path) -> None:
    counts = np.maximum((20_000 / np.arange(1, 301) ** 1.2).astype(np.int64), 1)
    label_id = np.repeat(np.arange(counts.size, dtype=np.int32), counts)
    n = label_id.size
    ids = [f"x{i}" for i in range(n)]
    write_table(
        "manifest",
        {
            "video_id": pa.array(ids),
            "uri": pa.array(ids),
            "label_id": pa.array(label_id),
            "label": pa.array([f"l{j}" for j in label_id]),
            "matched_label_ids": pa.array([[int(j)] for j in label_id], pa.list_(pa.int32())),
            "duration_s": pa.nulls(n, pa.float64()),
        },
        tmp_path / "m.parquet",
    )
    summary = manifest_stats(StatsConfig(manifest=tmp_path / "m.parquet", out=tmp_path / "s"))
    table = pq.read_table(tmp_path / "s" / "label_counts.parquet")
    assert np.array_equal(table.column("assigned_videos").to_numpy(), counts)
    assert np.array_equal(table.column("matched_videos").to_numpy(), counts)
    assert summary["gini"] == pytest.approx(gini(counts)) and 0.5 < summary["gini"] < 1
    assert summary["head_share"] == pytest.approx(np.sort(counts)[::-1][:60].sum() / n)


def test_cli_stats_and_bad_input(tmp_path: Path) -> None:
    manifest = tiny_manifest(tmp_path / "m.parquet", [1.0] * 6)
    ok = invoke("stats", "--manifest", manifest, "--out", tmp_path / "out")
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "out" / "summary.json").exists()
    missing = invoke("stats", "--manifest", tmp_path / "nope.parquet", "--out", tmp_path / "out2")
    assert missing.exit_code == 2 and "file not found" in missing.stderr
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"video_id": ["a"], "label_id": pa.array([0], pa.int32())}), bad)
    no_column = invoke("stats", "--manifest", bad, "--out", tmp_path / "out3")
    assert no_column.exit_code == 2 and "missing column" in no_column.stderr
    bad_probe = invoke(
        "stats", "--manifest", manifest, "--out", tmp_path / "out4", "--probe", tmp_path / "none.parquet"
    )
    assert bad_probe.exit_code == 2 and "file not found" in bad_probe.stderr
