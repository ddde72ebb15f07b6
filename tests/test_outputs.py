"""weaksup.outputs: a command's outputs appear whole or not at all, temporaries of killed runs
are cleaned, and nothing of a failed write stays behind (issue 15, item 3)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import assert_input_error, write_lines

from weaksup import outputs, tables

REAL_WRITE_TABLE = pq.write_table


def dead_pid() -> int:
    """A pid that no process has (a child that has exited and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*tmp-*"))


class FullDiskAt:
    """``pq.write_table`` raising ENOSPC when it writes a file whose name contains ``needle``."""

    def __init__(self, needle: str) -> None:
        self.needle, self.real = needle, REAL_WRITE_TABLE

    def __call__(self, table, where, *args, **kwargs):
        if self.needle in Path(str(where)).name:
            Path(str(where)).write_bytes(b"partial")  # the disk filled part-way through
            raise OSError(errno.ENOSPC, "No space left on device", str(where))
        return self.real(table, where, *args, **kwargs)


# ----------------------------------------------------------------------------- output_set


def test_output_set_renames_all_at_the_end_in_write_order(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    with outputs.output_set():
        tables.write_json({"x": 1}, a)
        assert not a.exists() and len(leftovers(tmp_path)) == 1  # waits for the end of the set
        tables.write_json({"x": 2}, b)
    assert a.exists() and b.exists() and leftovers(tmp_path) == []
    assert a.stat().st_mtime_ns <= b.stat().st_mtime_ns


def test_output_set_error_leaves_earlier_outputs_as_they_were(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    tables.write_json({"old": True}, a)
    with pytest.raises(RuntimeError):
        with outputs.output_set():
            tables.write_json({"new": True}, a)
            tables.write_json({"new": True}, b)
            raise RuntimeError("the third output failed")
    assert a.read_text().strip().endswith("}") and '"old": true' in a.read_text()
    assert not b.exists() and leftovers(tmp_path) == []


def test_output_set_defers_uploads_to_an_object_store():
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    uri = "memory://weaksup-output-set/one.json"
    with pytest.raises(RuntimeError):
        with outputs.output_set():
            tables.write_json({"x": 1}, uri)
            raise RuntimeError("later output failed")
    assert not fs.exists("/weaksup-output-set/one.json")
    with outputs.output_set():
        tables.write_json({"x": 1}, uri)
        assert not fs.exists("/weaksup-output-set/one.json")
    assert fs.exists("/weaksup-output-set/one.json")


def test_build_labels_on_a_full_disk_leaves_no_side_table(tmp_path, runner, monkeypatch):
    """Issue 15: build-labels on a full disk left the collisions and hashtag-index tables without
    the labels table. Now the set is whole or absent, and the error is one line, exit 2."""
    from weaksup.cli.main import app

    labels = write_lines(tmp_path / "labels.txt", ["dog", "cat"])
    out = tmp_path / "out" / "labels.parquet"
    monkeypatch.setattr(tables.pq, "write_table", FullDiskAt(".labels.parquet.tmp"))
    result = runner.invoke(app, ["build-labels", "--source", "file", "--labels-file", str(labels), "--out", str(out)])
    assert_input_error(result, "no space left on the device")
    assert sorted(p.name for p in out.parent.iterdir()) == []  # no collisions, no hashtag index, no temp file

    monkeypatch.setattr(tables.pq, "write_table", REAL_WRITE_TABLE)
    result = runner.invoke(app, ["build-labels", "--source", "file", "--labels-file", str(labels), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.parent.iterdir()} == {
        "labels.parquet",
        "labels.collisions.parquet",
        "labels.hashtag_index.parquet",
        "labels.pruned_tags.parquet",
        "labels.summary.json",
    }


def test_match_on_a_full_disk_keeps_the_previous_manifest(tmp_path, runner, cli, monkeypatch):
    from weaksup.cli.main import app

    labels = write_lines(tmp_path / "labels.txt", ["dog", "cat"])
    assert (
        cli("build-labels", "--source", "file", "--labels-file", labels, "--out", tmp_path / "labels.parquet").exit_code
        == 0
    )
    videos = tmp_path / "videos.csv"
    videos.write_text("video_id,uri,hashtags,duration_s\nv1,/x/1.mp4,#dog,3\nv2,/x/2.mp4,#cat,4\nv3,/x/3.mp4,#cow,5\n")
    out = tmp_path / "m" / "manifest.parquet"
    args = [
        "match",
        "--videos",
        str(videos),
        "--labels",
        str(tmp_path / "labels.parquet"),
        "--out",
        str(out),
        "--min-videos",
        "1",
    ]
    assert runner.invoke(app, args).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    videos.write_text("video_id,uri,hashtags,duration_s\nw1,/x/1.mp4,#dog,3\n")
    monkeypatch.setattr(tables.pq, "write_table", FullDiskAt("label_counts"))  # the third of four outputs
    assert_input_error(runner.invoke(app, args), "no space left on the device")
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before  # the earlier run's set, untouched


# ----------------------------------------------------------------------------- stale temporaries


def test_temporaries_of_dead_processes_are_removed_by_the_next_writer(tmp_path):
    out = tmp_path / "t.parquet"
    dead = tmp_path / f".t.parquet.tmp-{dead_pid()}"
    dead_part = tmp_path / f".t.parquet.tmp-{dead_pid()}-ab12"
    alive = tmp_path / f".t.parquet.tmp-{os.getppid()}"  # a live process's write in progress
    other = tmp_path / f".u.parquet.tmp-{dead_pid()}"  # another output's: not ours to judge
    for p in (dead, dead_part, alive, other):
        p.write_bytes(b"x")
    tables.write_table("hashtag_index", pa.table({"hashtag": ["dog"], "label_id": pa.array([0], pa.int32())}), out)
    assert out.exists()
    assert not dead.exists() and not dead_part.exists()
    assert alive.exists() and other.exists()


def test_a_killed_checkpoint_write_is_cleaned_at_the_next_save(tmp_path):
    from weaksup.train.checkpoint import save_checkpoint

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    stale = folder / f".step_000000002.pt.tmp-{dead_pid()}"
    stale.write_bytes(b"\x00" * 10)
    save_checkpoint(folder, {"model": {}}, step=2, keep=2)
    assert not stale.exists() and (folder / "step_000000002.pt").exists()


def test_remove_stale_temps_ignores_names_that_only_look_alike(tmp_path):
    keep = [tmp_path / ".t.parquet.tmp-notapid", tmp_path / "t.parquet.tmp-1", tmp_path / ".t.parquet.tmpx-1"]
    for p in keep:
        p.write_bytes(b"x")
    assert outputs.remove_stale_temps(tmp_path / "t.parquet") == []
    assert all(p.exists() for p in keep)
