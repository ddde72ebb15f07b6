"""weaksup.bulk. Resume only what provably belongs to the job (issue 15): bulk parts carry a
stamp of their settings and input rows; a rerun recomputes stale parts (one warning), stops on
them with --resume-strict, and starts over with --no-resume. Nothing done is not success (issue
15, item 8): the rule of weaksup.bulk and the CLI's exit 3.

Kills are simulated by a worker function that raises KeyboardInterrupt (not an Exception, so
not a rejected row) after a few videos, with one video per part.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from conftest import assert_input_error, stderr_of, write_clip

from weaksup.assembly import probe as probe_mod
from weaksup.assembly.probe import ProbeConfig, probe_videos
from weaksup.bulk import (
    STAMP_KEY,
    BulkConfig,
    StaleResumeWarning,
    nothing_done,
    nothing_done_message,
    parts_dir,
    read_stamp,
    run_bulk,
)
from weaksup.cli.common import NOTHING_DONE_EXIT
from weaksup.cli.common import nothing_done as exit_if_nothing_done
from weaksup.dedupe import fingerprint as fingerprint_mod
from weaksup.dedupe.fingerprint import FingerprintConfig, fingerprint_videos
from weaksup.errors import InputError
from weaksup.synth.video import write_test_video

N = 6


@pytest.fixture(scope="module")
def vids(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Two sets of videos whose metadata differ (length, rate, size), so a stale row shows."""
    d = tmp_path_factory.mktemp("bulk-videos")
    first = [write_test_video(d / f"a{i}.mp4", seconds=1.0 + 0.25 * i, fps=16, seed=i) for i in range(N)]
    second = [
        write_test_video(d / f"b{i}.mp4", seconds=0.5 + 0.5 * i, fps=10, width=80, height=48, seed=10 + i)
        for i in range(N)
    ]
    second[2] = write_clip(d / "b2.mp4")  # the conftest clip: 5 frames, 64x48
    return {"a": first, "b": second}


def videos_table(path: Path, uris: list[Path], ids: list[str]) -> Path:
    pq.write_table(pa.table({"video_id": ids, "uri": [str(u) for u in uris]}), path)
    return path


@pytest.fixture
def tables(vids: dict[str, list[Path]], tmp_path: Path) -> dict[str, Path]:
    a_ids, b_ids = [f"a{i}" for i in range(N)], [f"b{i}" for i in range(N)]
    return {
        "a": videos_table(tmp_path / "a.parquet", vids["a"], a_ids),
        "b": videos_table(tmp_path / "b.parquet", vids["b"], b_ids),
        "a_reversed": videos_table(tmp_path / "a_rev.parquet", vids["a"][::-1], a_ids[::-1]),
    }


class Killed:
    """Replaces a module's per-video function: counts calls and raises a kill on call ``kill_at``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module, name: str, kill_at: int | None = None) -> None:
        self.real = getattr(module, name)
        self.calls: list[str] = []
        self.kill_at = kill_at
        monkeypatch.setattr(module, name, self)

    def __call__(self, uri: str, **kw):
        self.calls.append(uri)
        if self.kill_at is not None and len(self.calls) == self.kill_at:
            raise KeyboardInterrupt
        return self.real(uri, **kw)


def probe_cfg(videos: Path, out: Path, **kw) -> ProbeConfig:
    return ProbeConfig(videos=videos, out=out, workers=0, chunk_size=1, progress=False, **kw)


def killed_probe(monkeypatch: pytest.MonkeyPatch, videos: Path, out: Path, after: int = 4) -> None:
    """A probe run of ``videos`` killed after ``after`` videos (so ``after`` parts exist)."""
    with monkeypatch.context() as patch:
        Killed(patch, probe_mod, "probe_video", kill_at=after + 1)
        with pytest.raises(KeyboardInterrupt):
            probe_videos(probe_cfg(videos, out))
    assert len(list(parts_dir(out).glob("*/part-*.parquet"))) == after


# ----------------------------------------------------------------------------- probe


def test_probe_on_another_table_with_the_same_out_recomputes_every_stale_part(tables, tmp_path, monkeypatch):
    """The issue's case: killed, then rerun on a DIFFERENT table, same --out: 656 of 768 rows
    carried the first table's ids and metadata, exit 0."""
    fresh, _ = probe_videos(probe_cfg(tables["b"], tmp_path / "fresh.parquet"))
    fresh = fresh.read()
    out = tmp_path / "probe.parquet"
    killed_probe(monkeypatch, tables["a"], out)

    counter = Killed(monkeypatch, probe_mod, "probe_video")
    with pytest.warns(StaleResumeWarning, match=r"4 of 4 parts of an earlier run were stale .*\(input rows changed\)"):
        table, _ = probe_videos(probe_cfg(tables["b"], out))
        table = table.read()
    assert table.column("video_id").to_pylist() == [f"b{i}" for i in range(N)]
    assert table.to_pylist() == fresh.to_pylist() == pq.read_table(out).to_pylist()
    assert len(counter.calls) == N  # every row probed again
    assert not parts_dir(out).exists()


def test_probe_on_a_reordered_table_recomputes(tables, tmp_path, monkeypatch):
    fresh, _ = probe_videos(probe_cfg(tables["a_reversed"], tmp_path / "fresh.parquet"))
    fresh = fresh.read()
    out = tmp_path / "probe.parquet"
    killed_probe(monkeypatch, tables["a"], out)
    with pytest.warns(StaleResumeWarning, match="input rows changed"):
        table, _ = probe_videos(probe_cfg(tables["a_reversed"], out))
        table = table.read()
    assert table.to_pylist() == fresh.to_pylist()
    assert table.column("video_id").to_pylist() == [f"a{i}" for i in reversed(range(N))]


def test_probe_keeps_the_parts_of_rows_that_did_not_change(tables, vids, tmp_path, monkeypatch):
    """Only the parts whose rows changed are redone: here the last two rows of the table."""
    out = tmp_path / "probe.parquet"
    killed_probe(monkeypatch, tables["a"], out)
    edited = videos_table(
        tmp_path / "edited.parquet",
        [*vids["a"][:2], vids["b"][2], vids["b"][3], *vids["a"][4:]],
        ["a0", "a1", "x2", "x3", "a4", "a5"],
    )
    fresh, _ = probe_videos(probe_cfg(edited, tmp_path / "fresh.parquet"))
    fresh = fresh.read()
    counter = Killed(monkeypatch, probe_mod, "probe_video")
    with pytest.warns(StaleResumeWarning, match=r"2 of 4 parts .*input rows changed"):
        table, _ = probe_videos(probe_cfg(edited, out))
        table = table.read()
    assert counter.calls == [str(u) for u in (vids["b"][2], vids["b"][3], *vids["a"][4:])]
    assert table.to_pylist() == fresh.to_pylist()


def test_identical_rerun_resumes_exactly_without_a_warning(tables, tmp_path, monkeypatch):
    whole, _ = probe_videos(probe_cfg(tables["a"], tmp_path / "whole.parquet"))
    whole = whole.read()
    out = tmp_path / "probe.parquet"
    killed_probe(monkeypatch, tables["a"], out, after=3)
    counter = Killed(monkeypatch, probe_mod, "probe_video")
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleResumeWarning)
        table, _ = probe_videos(probe_cfg(tables["a"], out, resume_strict=True))
        table = table.read()
    assert len(counter.calls) == N - 3
    assert table.to_pylist() == whole.to_pylist()


def test_probe_settings_change_recomputes_and_names_the_setting(tables, tmp_path, monkeypatch):
    out = tmp_path / "probe.parquet"
    killed_probe(monkeypatch, tables["a"], out, after=2)
    counter = Killed(monkeypatch, probe_mod, "probe_video")
    with pytest.warns(StaleResumeWarning, match=r"settings changed: count_frames False -> True"):
        probe_videos(probe_cfg(tables["a"], out, count_frames=True))
    assert len(counter.calls) == N


def test_resume_strict_stops_with_one_line_and_leaves_the_parts(tables, tmp_path, monkeypatch, cli):
    out = tmp_path / "probe.parquet"
    killed_probe(monkeypatch, tables["a"], out)
    before = sorted(p.name for p in parts_dir(out).iterdir())
    with pytest.raises(InputError, match=r"4 of 4 parts .* do not belong to this job \(input rows changed\)"):
        probe_videos(probe_cfg(tables["b"], out, resume_strict=True))
    result = cli(
        "probe",
        "--videos",
        tables["b"],
        "--out",
        out,
        "--workers",
        0,
        "--chunk-size",
        1,
        "--no-progress",
        "--resume-strict",
    )
    assert_input_error(result, str(parts_dir(out)), "input rows changed", "--resume-strict", "--no-resume")
    assert sorted(p.name for p in parts_dir(out).iterdir()) == before and not out.exists()


def test_cli_warns_in_one_line_and_no_resume_redoes_everything(tables, tmp_path, monkeypatch, cli):
    out = tmp_path / "probe.parquet"
    killed_probe(monkeypatch, tables["a"], out)
    counter = Killed(monkeypatch, probe_mod, "probe_video")
    result = cli("probe", "--videos", tables["b"], "--out", out, "--workers", 0, "--chunk-size", 1, "--no-progress")
    assert result.exit_code == 0, result.output
    warned = [line for line in stderr_of(result).splitlines() if line.strip()]
    assert len(warned) == 1 and warned[0].startswith("weaksup: warning: ") and "input rows changed" in warned[0]
    assert pq.read_table(out).column("video_id").to_pylist() == [f"b{i}" for i in range(N)]

    # --no-resume: the same table, but every row is probed again (the old parts are deleted first)
    killed_probe(monkeypatch, tables["b"], out, after=3)
    counter = Killed(monkeypatch, probe_mod, "probe_video")
    result = cli(
        "probe",
        "--videos",
        tables["b"],
        "--out",
        out,
        "--workers",
        0,
        "--chunk-size",
        1,
        "--no-progress",
        "--no-resume",
    )
    assert result.exit_code == 0, result.output
    assert len(counter.calls) == N and "warning" not in stderr_of(result)


def test_unstamped_parts_of_an_older_weaksup_are_stale(tables, tmp_path, monkeypatch):
    out = tmp_path / "probe.parquet"
    killed_probe(monkeypatch, tables["a"], out, after=2)
    for part in parts_dir(out).glob("*/part-*.parquet"):  # as an earlier weaksup wrote them: no stamp
        table = pq.read_table(part)
        assert read_stamp(table.schema.metadata[STAMP_KEY])["settings"] == {"table": "probe", "count_frames": False}
        pq.write_table(table.replace_schema_metadata(None), part)
    with pytest.warns(StaleResumeWarning, match=r"2 of 2 parts .*no stamp"):
        probe_videos(probe_cfg(tables["a"], out))


def test_parts_of_a_longer_table_are_stale_for_a_shorter_one(tables, vids, tmp_path, monkeypatch):
    out = tmp_path / "probe.parquet"
    killed_probe(monkeypatch, tables["a"], out)  # parts for rows 0..3
    short = videos_table(tmp_path / "short.parquet", vids["a"][:2], ["a0", "a1"])
    counter = Killed(monkeypatch, probe_mod, "probe_video")
    with pytest.warns(StaleResumeWarning, match=r"2 of 4 parts .*input rows changed"):
        table, _ = probe_videos(probe_cfg(short, out))
        table = table.read()
    assert table.column("video_id").to_pylist() == ["a0", "a1"] and counter.calls == []


# ----------------------------------------------------------------------------- run_bulk itself


def _echo(item: dict) -> dict:
    return {"status": "ok", "error": None, "duration_s": float(item["n"])}


def test_run_bulk_key_fields_and_settings_are_stamped(tmp_path, monkeypatch):
    """A key beyond video_id and uri (materialize's windows) and any setting are compared."""
    from weaksup import bulk as bulk_mod

    items = [{"video_id": f"v{i}", "uri": f"u{i}", "n": i} for i in range(4)]
    out = tmp_path / "t.parquet"
    key = ("video_id", "uri", "n")

    def run(items, settings):
        return run_bulk(
            items,
            _echo,
            schema_name="probe",
            out=out,
            settings=settings,
            key=key,
            config=BulkConfig(workers=0, chunk_size=2, progress=False),
        )

    def killed_at_the_end(*args, **kwargs):  # the parts are all written, the final table is not
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(bulk_mod, "commit_parts", killed_at_the_end)
        with pytest.raises(KeyboardInterrupt):
            run(items, {"x": 1})
    assert len(list(parts_dir(out).glob("*/part-*.parquet"))) == 2
    changed = [dict(it, n=it["n"] + 10) if it["video_id"] == "v3" else it for it in items]
    with pytest.warns(StaleResumeWarning, match=r"1 of 2 parts .*\(input rows changed\)"):
        table = run(changed, {"x": 1}).read()
    assert table.column("duration_s").to_pylist() == [0.0, 1.0, 2.0, 13.0]

    with monkeypatch.context() as patch:
        patch.setattr(bulk_mod, "commit_parts", killed_at_the_end)
        with pytest.raises(KeyboardInterrupt):
            run(items, {"x": 1})
    with pytest.raises(InputError, match=r"2 of 2 parts .*\(settings changed: x 1 -> 2\)"):
        run_bulk(
            items,
            _echo,
            schema_name="probe",
            out=out,
            settings={"x": 2},
            key=key,
            config=BulkConfig(workers=0, chunk_size=2, progress=False, resume_strict=True),
        )
    with pytest.warns(StaleResumeWarning, match=r"settings changed: x 1 -> 2"):
        assert run(items, {"x": 2}).read().column("duration_s").to_pylist() == [0.0, 1.0, 2.0, 3.0]


def test_a_part_of_an_older_weaksup_without_a_new_column_is_committed_with_nulls(tmp_path, monkeypatch):
    """A schema gains a nullable column (materialized.cut_s did): the parts an older weaksup
    left, stamped for the same rows and settings, are reused, the column null in their rows."""
    from weaksup import bulk as bulk_mod

    items = [{"video_id": f"v{i}", "uri": f"u{i}", "n": i} for i in range(130)]  # blocks of 3 one-row parts
    out = tmp_path / "t.parquet"

    def run():
        config = BulkConfig(workers=0, chunk_size=1, progress=False)
        return run_bulk(items, _echo, schema_name="probe", out=out, config=config)

    with monkeypatch.context() as patch:
        patch.setattr(bulk_mod, "commit_parts", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            run()
    older = sorted(parts_dir(out).glob("*/part-*.parquet"))[0]
    part = pq.read_table(older)
    pq.write_table(part.drop_columns(["duration_s"]).replace_schema_metadata(part.schema.metadata), older)
    table = run().read()
    assert table.column("duration_s").to_pylist()[:4] == [None, 1.0, 2.0, 3.0] and table.num_rows == 130


# ----------------------------------------------------------------------------- fingerprint


def test_fingerprint_on_another_table_recomputes(tables, tmp_path, monkeypatch):
    cfg = dict(workers=0, chunk_size=1, progress=False)
    fresh, _ = fingerprint_videos(FingerprintConfig(videos=tables["b"], out=tmp_path / "fresh.parquet", **cfg))
    fresh = fresh.read()
    out = tmp_path / "codes.parquet"
    with monkeypatch.context() as patch:
        Killed(patch, fingerprint_mod, "fingerprint_video", kill_at=4)
        with pytest.raises(KeyboardInterrupt):
            fingerprint_videos(FingerprintConfig(videos=tables["a"], out=out, **cfg))
    with pytest.warns(StaleResumeWarning, match=r"3 of 3 parts .*input rows changed"):
        table, _ = fingerprint_videos(FingerprintConfig(videos=tables["b"], out=out, **cfg))
        table = table.read()
    assert table.to_pylist() == fresh.to_pylist()
    # an interrupted run at another fps still stops the job (resume it at that fps), unless --no-resume
    with monkeypatch.context() as patch:
        Killed(patch, fingerprint_mod, "fingerprint_video", kill_at=2)
        with pytest.raises(KeyboardInterrupt):
            fingerprint_videos(FingerprintConfig(videos=tables["b"], out=out, **cfg))
    with pytest.raises(InputError, match="--fps 16, or start over with --no-resume"):
        fingerprint_videos(FingerprintConfig(videos=tables["b"], out=out, fps=8.0, **cfg))
    slow, _ = fingerprint_videos(FingerprintConfig(videos=tables["b"], out=out, fps=8.0, resume=False, **cfg))
    slow = slow.read()
    assert set(slow.column("fps").to_pylist()) == {8.0}


def test_fingerprint_cli_flags(tables, tmp_path, monkeypatch, cli):
    out = tmp_path / "codes.parquet"
    with monkeypatch.context() as patch:
        Killed(patch, fingerprint_mod, "fingerprint_video", kill_at=3)
        with pytest.raises(KeyboardInterrupt):
            fingerprint_videos(FingerprintConfig(videos=tables["a"], out=out, workers=0, chunk_size=1, progress=False))
    args = ("fingerprint", "--videos", tables["b"], "--out", out, "--workers", 0, "--chunk-size", 1, "--no-progress")
    assert_input_error(cli(*args, "--resume-strict"), "2 of 2 parts", "input rows changed")
    counter = Killed(monkeypatch, fingerprint_mod, "fingerprint_video")
    result = cli(*args, "--no-resume")
    assert result.exit_code == 0, result.output
    assert len(counter.calls) == N and "warning" not in stderr_of(result)
    assert json.loads(out.with_name("codes.summary.json").read_text())["videos"] == N


# ---- nothing done is not success


def test_every_row_rejected_or_no_row_is_nothing_done() -> None:
    rejected = pa.table(
        {"status": ["rejected", "rejected", "rejected"], "error": ["not found: a", "not found: b", "not a video: c"]}
    )
    assert (
        nothing_done(rejected, "video") == "nothing done: all 3 videos were rejected (not found (2), not a video (1))"
    )
    assert (
        nothing_done(pa.table({"status": pa.array([], pa.string()), "error": pa.array([], pa.string())}), "video")
        == "nothing done: the input has no videos"
    )
    # any result that is not a rejection is work done (fingerprint's flat videos included)
    assert nothing_done(pa.table({"status": ["rejected", "ok"], "error": ["x", None]})) is None
    assert nothing_done(pa.table({"status": ["unfingerprintable"], "error": ["flat"]})) is None
    assert nothing_done_message(4, 3, "clip") is None
    assert nothing_done_message(2, 2, "clip", {"decode": 2}) == "nothing done: all 2 clips were rejected (decode (2))"


def test_cli_helper_exits_3_unless_allowed() -> None:
    exit_if_nothing_done(None, allow_empty=False)  # something was done: no exit
    with pytest.raises(typer.Exit) as exc:
        exit_if_nothing_done("nothing done: all 2 videos were rejected", allow_empty=False)
    assert exc.value.exit_code == NOTHING_DONE_EXIT == 3
    exit_if_nothing_done("nothing done: all 2 videos were rejected", allow_empty=True)  # a warning only


# ----------------------------------------------------------------------------- blocks and part stores


def test_blocks_tile_the_input_whatever_its_row_groups(tmp_path):
    from weaksup.blocks import TableInput, block_rows, plan_blocks

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"video_id": [f"v{i}" for i in range(1000)]}), path, row_group_size=300)
    source = TableInput(str(path), (str(path),), ("video_id",), lambda t, first: [{"i": first}] * t.num_rows)
    blocks = list(plan_blocks(source, chunk_size=8))
    assert [b.first for b in blocks] == sorted(b.first for b in blocks)
    assert sum(b.rows for b in blocks) == 1000 and all(b.rows <= block_rows(1000, 8) for b in blocks)
    assert all(a.end == b.first for a, b in zip(blocks, blocks[1:]))  # contiguous, no row twice
    read = [it for b in blocks for it in source.read(b)]
    assert len(read) == 1000
    assert block_rows(10_000_000, 64) == 64 * 64 and block_rows(100, 64) == 64  # size from rows and chunk only


def test_part_store_in_an_object_store_is_whole_or_nothing():
    from weaksup.blocks import PartStore, part_name

    store = PartStore("memory://bulk-test/out.parquet.parts")
    table = pa.table({"x": [1, 2, 3]})
    store.write(part_name(0, 2, 3), table)
    store.write(part_name(3, 3, 1), table.slice(0, 1))
    assert store.names() == [part_name(0, 2, 3), part_name(3, 3, 1)]
    assert store.read(part_name(0, 2, 3)).equals(table)
    store.remove(part_name(3, 3, 1))
    assert store.names() == [part_name(0, 2, 3)]
    store.remove_all()
    assert store.names() == []


def test_a_ray_job_with_an_object_store_output_keeps_its_parts_there(monkeypatch):
    """Ray workers on other nodes cannot reach this machine's staging folder: with Ray and an
    object-store output, parts go to OUT.parts/ in the store itself."""
    from weaksup.bulk import part_store

    assert part_store("s3://bucket/probe.parquet", "ray").root == "s3://bucket/probe.parquet.parts"
    assert part_store("s3://bucket/probe.parquet", "local").local  # staged on this machine
    assert part_store(Path("/data/probe.parquet"), "ray").root == Path("/data/probe.parquet.parts")


def test_run_bulk_from_a_table_input_never_builds_the_item_list(tmp_path):
    """With a TableInput each block reads its own rows: the same table as from a list of items."""
    from weaksup.blocks import TableInput

    n = 37
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"video_id": [f"v{i}" for i in range(n)], "n": list(range(n))}), path, row_group_size=10)

    def rows(t, first):
        return [
            {"video_id": v, "uri": v, "n": k}
            for v, k in zip(t.column("video_id").to_pylist(), t.column("n").to_pylist())
        ]

    items = rows(pq.read_table(path), 0)
    cfg = BulkConfig(workers=0, chunk_size=4, progress=False)
    from_items = run_bulk(
        items, _echo, schema_name="probe", out=tmp_path / "a.parquet", config=cfg, key=("video_id", "n")
    )
    source = TableInput(str(path), (str(path),), ("video_id", "n"), rows)
    from_table = run_bulk(
        source, _echo, schema_name="probe", out=tmp_path / "b.parquet", config=cfg, key=("video_id", "n")
    )
    assert from_table.read().equals(from_items.read()) and from_table.rows == n
    assert from_table.status("ok") == n and from_table.counts == from_items.counts
