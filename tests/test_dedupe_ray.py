"""dedupe's source search on Ray gives the local engine's outputs, file for file, and resumes by blocks.

The search runs as one Ray task per block of the source codes table (row groups merged,
a large row group sliced), against one target index in the object store; each task
writes a stamped part beside the output, and a rerun redoes only the blocks without a
matching part. One local Ray instance (2 CPUs) serves the module; every job joins it.
Inputs are codes tables written directly (test_dedupe's helpers), in small row groups so
that there are several blocks. Skipped when Ray Data is not installed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_dedupe import code_row, noisy, rand_codes, walk, write_codes, write_manifest

from weaksup.bulk import StaleResumeWarning, parts_dir
from weaksup.dedupe import dedupe as dedupe_mod
from weaksup.dedupe.census import mirror_codes
from weaksup.dedupe.dedupe import DedupeConfig, dedupe_manifest, output_paths, plan_search_blocks
from weaksup.errors import InputError

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("local_ray")]

#: summary keys that name this run's files, its wall time or its Ray blocks (not results)
RUN_KEYS = {"report", "removed_table", "wall_s", "search"}


def regroup(path: Path, sizes: list[int]) -> Path:
    """Rewrite a table in row groups of ``sizes`` rows (the last one repeated), schema metadata kept."""
    table = pq.read_table(path)
    with pq.ParquetWriter(path.with_name(".regroup.parquet"), table.schema) as writer:
        start, i = 0, 0
        while start < table.num_rows:
            n = sizes[min(i, len(sizes) - 1)]
            writer.write_table(table.slice(start, n), row_group_size=n)
            start, i = start + n, i + 1
    os.replace(path.with_name(".regroup.parquet"), path)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Targets with every copy kind among 17 source rows in row groups of 2, 2, 9, 3 and 1 rows.

    The codes table also holds rows the manifest does not name (an extra video, a second
    row of a video), so tasks search only the manifest's rows of their block.
    """
    d = tmp_path_factory.mktemp("dedupe_ray")
    rng = np.random.default_rng(3)
    t_clip, t_embed, t_mirror, t_speed = walk(rng, 64), walk(rng, 80), walk(rng, 64), walk(rng, 160)
    t_crop_full, t_crop10 = walk(rng, 96), walk(rng, 96)
    targets = [
        code_row(rng, "t_clip", t_clip),
        code_row(rng, "t_embed", t_embed),
        code_row(rng, "t_crop", t_crop_full, crop10=t_crop10),
        code_row(rng, "t_mirror", t_mirror),
        code_row(rng, "t_speed", t_speed),
        code_row(rng, "t_clip_again", noisy(rng, t_clip)),  # a source copying t_clip meets two targets
        code_row(rng, "t_rejected", None, status="rejected"),
    ]
    host = walk(rng, 480)
    host[160:240] = noisy(rng, t_embed)
    speed_idx = np.round(np.arange(145) * 1.1).astype(int).clip(0, 159)
    sources = {
        "copy": noisy(rng, t_clip),
        "unrelated1": walk(rng, 200),
        "cut": noisy(rng, t_clip[16:32]),
        "embed": host,  # 5 s of 30 s: 16.7%
        "cropped": noisy(rng, t_crop10),
        "unrelated2": rand_codes(rng, 100),
        "mirrored": noisy(rng, mirror_codes(t_mirror)),
        "speedup": noisy(rng, t_speed[speed_idx]),
        "short": noisy(rng, t_clip[:6]),
        "flat": noisy(rng, t_clip),
        "copy2": noisy(rng, t_clip, bits=1),
        "unrelated3": walk(rng, 120),
    }
    rows = [code_row(rng, k, v) for k, v in sources.items()]
    rows[list(sources).index("flat")]["informative"] = np.zeros(64, bool)
    rows.insert(3, code_row(rng, "not_in_manifest", noisy(rng, t_clip)))
    rows.insert(9, code_row(rng, "copy", walk(rng, 50)))  # a second row of "copy": only the first is searched
    rows += [
        code_row(rng, "rejected", None, status="rejected"),
        code_row(rng, "unfp", None, status="unfingerprintable"),
    ]
    rows.append(code_row(rng, "copy3", noisy(rng, t_clip)))
    ids = list(dict.fromkeys(r["video_id"] for r in rows if r["video_id"] != "not_in_manifest"))
    source_codes = regroup(write_codes(d / "sources.parquet", rows), [2, 2, 9, 3])
    return {
        "dir": d,
        "targets": write_codes(d / "targets.parquet", targets),
        "source_codes": source_codes,
        "manifest": write_manifest(d / "manifest.parquet", ids),
        "rows": len(rows),
    }


def run(corpus: dict, name: str, engine: str, **kw) -> tuple[dict, DedupeConfig]:
    d = corpus["dir"]
    cfg = DedupeConfig(
        manifest=corpus["manifest"],
        targets=kw.pop("targets", corpus["targets"]),
        source_codes=corpus["source_codes"],
        out=d / name / "clean.parquet",
        report=d / name / "overlaps.parquet",
        progress=False,
        engine=engine,
        **{"block_rows": 4, "chunk_size": 3, **kw},
    )
    return dedupe_manifest(cfg), cfg


def assert_same_outputs(a: tuple[dict, DedupeConfig], b: tuple[dict, DedupeConfig]) -> None:
    (s_a, cfg_a), (s_b, cfg_b) = a, b
    removed_a, removed_b = output_paths(cfg_a.out)[0], output_paths(cfg_b.out)[0]
    for path_a, path_b in [(cfg_a.out, cfg_b.out), (cfg_a.report, cfg_b.report), (removed_a, removed_b)]:
        t_a, t_b = pq.read_table(path_a), pq.read_table(path_b)
        assert t_b.equals(t_a), path_b
        assert t_b.schema.metadata == t_a.schema.metadata
    drop = lambda s: {k: v for k, v in s.items() if k not in RUN_KEYS}  # noqa: E731
    assert drop(s_b) == drop(s_a)
    written = json.loads(output_paths(cfg_b.out)[1].read_text())
    assert drop(written) == drop(s_a)


@pytest.fixture(scope="module")
def local_run(corpus: dict) -> tuple[dict, DedupeConfig]:
    return run(corpus, "local", "local")


def test_blocks_are_planned_from_the_footer(corpus: dict) -> None:
    metadata = pq.ParquetFile(corpus["source_codes"]).metadata
    assert [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)] == [2, 2, 9, 3, 1]
    blocks = plan_search_blocks(metadata, 4)
    # 2+2 merged; 9 rows sliced in ceil(9/4) = 3 ranges; 3+1 merged
    assert [(a, b, g) for a, b, g, _ in blocks] == [
        (0, 4, (0, 1)),
        (4, 7, (2,)),
        (7, 10, (2,)),
        (10, 13, (2,)),
        (13, 17, (3, 4)),
    ]
    assert [first for *_, first in blocks] == [0, 4, 4, 4, 13]
    assert plan_search_blocks(metadata, 100) == [(0, 17, (0, 1, 2, 3, 4), 0)]
    assert [(a, b) for a, b, *_ in plan_search_blocks(metadata, 3)] == [
        (0, 2),
        (2, 4),
        (4, 7),
        (7, 10),
        (10, 13),
        (13, 16),
        (16, 17),
    ]
    sliced = plan_search_blocks(metadata, 1)  # at most MAX_SLICES per row group, contiguous cover
    assert sliced[0][0] == 0 and sliced[-1][1] == corpus["rows"]
    assert all(a[1] == b[0] for a, b in zip(sliced, sliced[1:]))


def test_target_search_on_ray_equals_local(
    corpus: dict, local_run: tuple[dict, DedupeConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_here(*args, **kwargs):
        raise AssertionError("the driver searched")

    monkeypatch.setattr(dedupe_mod, "match_chunk", not_here)  # the Ray workers' modules are their own
    on_ray = run(corpus, "ray", "ray")
    assert_same_outputs(local_run, on_ray)
    summary = on_ray[0]
    assert summary["search"] == {"engine": "ray", "blocks": 5, "blocks_searched": 5}
    assert summary["removed"] >= 8 and summary["sources_unfingerprintable"] == 2  # flat and unfp
    gone = set(pq.read_table(output_paths(on_ray[1].out)[0]).column("video_id").to_pylist())
    assert {"copy", "copy2", "copy3", "cut", "embed", "cropped", "mirrored", "speedup"} <= gone
    assert not parts_dir(on_ray[1].out).exists()  # the parts go once the outputs are written


def test_self_search_on_ray_equals_local(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    a = walk(rng, 320)
    x_full, x_crop10 = walk(rng, 96), walk(rng, 96)
    rows = [
        code_row(rng, "y_crop_of_x", noisy(rng, x_crop10)),
        code_row(rng, "a_long", a),
        code_row(rng, "b_part_of_a", noisy(rng, a[80:160])),
        code_row(rng, "e_unrelated", walk(rng, 80)),
        code_row(rng, "c_copy_of_b", noisy(rng, a[80:160])),
        code_row(rng, "x", x_full, crop10=x_crop10),
        code_row(rng, "d_unrelated", walk(rng, 100)),
        code_row(rng, "f_mirror_of_a", noisy(rng, mirror_codes(a[:120]))),
        code_row(rng, "g_flat", walk(rng, 40), informative=np.zeros(40, bool)),
    ]
    ids = [r["video_id"] for r in rows]
    codes = regroup(write_codes(tmp_path / "codes.parquet", rows), [2])
    manifest = write_manifest(tmp_path / "manifest.parquet", ids)
    results = []
    for engine in ("local", "ray"):
        cfg = DedupeConfig(
            manifest=manifest,
            source_codes=codes,
            self_dedupe=True,
            out=tmp_path / engine / "clean.parquet",
            report=tmp_path / engine / "overlaps.parquet",
            progress=False,
            engine=engine,
            block_rows=3,
            chunk_size=2,
        )
        results.append((dedupe_manifest(cfg), cfg))
    assert_same_outputs(*results)
    summary = results[1][0]
    assert summary["self_dedupe"] and summary["search"]["blocks"] == 4
    kept = pq.read_table(results[1][1].out).column("video_id").to_pylist()
    assert kept == ["y_crop_of_x", "a_long", "e_unrelated", "d_unrelated", "g_flat"]


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("part-*.parquet")}


def test_rerun_searches_only_missing_blocks_and_a_new_radius_searches_all(
    corpus: dict, local_run: tuple[dict, DedupeConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_report = dedupe_mod._write_report

    def dies(*args, **kwargs):
        raise KeyboardInterrupt  # the run stops after the search, before any output

    monkeypatch.setattr(dedupe_mod, "_write_report", dies)
    with pytest.raises(KeyboardInterrupt):
        run(corpus, "resume", "ray")
    parts = parts_dir(corpus["dir"] / "resume" / "clean.parquet")
    first = mtimes(parts)
    assert len(first) == 5
    lost = sorted(first)[2]
    (parts / lost).unlink()
    with pytest.raises(KeyboardInterrupt):
        run(corpus, "resume", "ray")
    second = mtimes(parts)
    assert set(second) == set(first)
    assert {k for k in first if second[k] != first[k]} == {lost}  # only the missing block was searched again

    monkeypatch.setattr(dedupe_mod, "_write_report", real_report)
    resumed = run(corpus, "resume", "ray")
    assert resumed[0]["search"] == {"engine": "ray", "blocks": 5, "blocks_searched": 0}
    assert_same_outputs(local_run, resumed)

    monkeypatch.setattr(dedupe_mod, "_write_report", dies)
    with pytest.raises(KeyboardInterrupt):
        run(corpus, "resume", "ray")  # parts at radius 7 again
    monkeypatch.setattr(dedupe_mod, "_write_report", real_report)
    with pytest.warns(StaleResumeWarning, match="5 of 5 search parts .*settings changed: radius 7 -> 6"):
        narrower = run(corpus, "resume", "ray", radius=6)
    assert narrower[0]["search"]["blocks_searched"] == 5
    assert_same_outputs(run(corpus, "local6", "local", radius=6), narrower)


def test_changed_targets_do_not_reuse_parts(corpus: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dedupe_mod, "_write_report", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        run(corpus, "targets", "ray")
    monkeypatch.undo()
    rng = np.random.default_rng(0)
    fewer = write_codes(corpus["dir"] / "fewer_targets.parquet", [code_row(rng, "t_other", walk(rng, 64))])
    with pytest.warns(StaleResumeWarning, match="settings changed: targets"):
        summary, _ = run(corpus, "targets", "ray", targets=fewer)
    assert summary["search"]["blocks_searched"] == 5 and summary["reported_pairs"] == 0


def test_bad_codes_in_a_task_are_one_line_input_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rows = [code_row(rng, f"v{i}", walk(rng, 20)) for i in range(4)]
    rows[3]["informative"] = np.ones(19, bool)  # one flag short
    codes = regroup(write_codes(tmp_path / "codes.parquet", rows), [2])
    cfg = DedupeConfig(
        manifest=write_manifest(tmp_path / "manifest.parquet", [r["video_id"] for r in rows]),
        source_codes=codes,
        self_dedupe=False,
        targets=write_codes(tmp_path / "targets.parquet", [code_row(rng, "t", walk(rng, 20))]),
        out=tmp_path / "clean.parquet",
        report=tmp_path / "overlaps.parquet",
        progress=False,
        engine="ray",
        block_rows=2,
    )
    with pytest.raises(InputError, match=r"row 1 \('v3'\) has 20 codes but 19 informative flags") as err:
        dedupe_manifest(cfg)
    assert "\n" not in str(err.value)
