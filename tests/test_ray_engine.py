"""The Ray engine gives the same tables as the local engine (probe, fingerprint, materialize, dedupe).

One local Ray instance (2 CPUs) serves the whole module; each job joins it instead of
starting its own. Skipped when Ray Data is not installed (``pip install "weaksup[ray]"``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from weaksup.assembly.probe import ProbeConfig, probe_videos
from weaksup.assembly.splits import materialize_clips, materialized_paths
from weaksup.bulk import BulkConfig, parts_dir, run_bulk
from weaksup.dedupe.dedupe import DedupeConfig, dedupe_manifest
from weaksup.dedupe.fingerprint import FingerprintConfig, fingerprint_videos
from weaksup.errors import InputError
from weaksup.ray_engine import check_engine
from weaksup.synth.video import write_test_video
from weaksup.tables import read_table, write_table

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytestmark = pytest.mark.usefixtures("local_ray")


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Six tiny videos of different lengths and content, a corrupt file and a missing one."""
    d = tmp_path_factory.mktemp("ray_videos")
    ids, uris = [], []
    for i in range(6):
        ids.append(f"v{i}")
        uris.append(str(write_test_video(d / f"v{i}.mp4", seconds=2.0 + 0.5 * i, seed=i)))
    (d / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    ids += ["corrupt", "missing"]
    uris += [str(d / "corrupt.mp4"), str(d / "missing.mp4")]
    table = d / "videos.parquet"
    import pyarrow as pa

    pq.write_table(pa.table({"video_id": ids, "uri": uris}), table)
    return {"dir": d, "table": table, "ids": ids, "uris": uris}


def test_probe_is_identical_on_both_engines(videos: dict, tmp_path: Path) -> None:
    local, s_local = probe_videos(
        ProbeConfig(videos=videos["table"], out=tmp_path / "l.parquet", workers=2, chunk_size=3, progress=False)
    )
    local = local.read()
    on_ray, s_ray = probe_videos(
        ProbeConfig(
            videos=videos["table"], out=tmp_path / "r.parquet", workers=2, chunk_size=3, progress=False, engine="ray"
        )
    )
    on_ray = on_ray.read()
    assert on_ray.equals(local)
    assert on_ray.column("video_id").to_pylist() == videos["ids"]  # input order, whatever finished first
    assert s_ray == s_local and s_ray["rejected"] == 2
    assert not parts_dir(tmp_path / "r.parquet").exists()


def test_fingerprint_is_identical_on_both_engines(videos: dict, tmp_path: Path) -> None:
    cfg = dict(videos=videos["table"], workers=2, chunk_size=2, progress=False)
    local, _ = fingerprint_videos(FingerprintConfig(out=tmp_path / "l.parquet", **cfg))
    local = local.read()
    on_ray, _ = fingerprint_videos(FingerprintConfig(out=tmp_path / "r.parquet", engine="ray", **cfg))
    on_ray = on_ray.read()
    assert on_ray.equals(local)
    ok = [s == "ok" for s in on_ray.column("status").to_pylist()]
    assert sum(ok) == 6 and len(on_ray.column("codes")[0].as_py()) == 32  # 2 s at 16 fps


def test_ray_run_resumes_the_parts_a_local_run_left(videos: dict, tmp_path: Path) -> None:
    """Parts are engine-neutral: a killed local run is finished by Ray with the same result."""
    from weaksup.assembly.probe import _probe_item

    items = [{"video_id": v, "uri": u, "count_frames": False} for v, u in zip(videos["ids"], videos["uris"])]
    whole = run_bulk(
        items,
        _probe_item,
        schema_name="probe",
        out=tmp_path / "whole.parquet",
        config=BulkConfig(workers=0, chunk_size=2, progress=False),
    )
    whole = whole.read()
    calls = {"n": 0}

    def dies_after_two(item: dict) -> dict:
        calls["n"] += 1
        if calls["n"] > 4:
            raise KeyboardInterrupt  # not an Exception: the job stops like a kill
        return _probe_item(item)

    out = tmp_path / "resumed.parquet"
    with pytest.raises(KeyboardInterrupt):
        run_bulk(
            items,
            dies_after_two,
            schema_name="probe",
            out=out,
            config=BulkConfig(workers=0, chunk_size=2, progress=False),
        )
    assert len(list(parts_dir(out).glob("*/part-*.parquet"))) == 2
    resumed = run_bulk(
        items,
        _probe_item,
        schema_name="probe",
        out=out,
        config=BulkConfig(workers=2, chunk_size=2, progress=False, engine="ray"),
    )
    resumed = resumed.read()
    assert resumed.equals(whole)


def test_materialize_is_identical_on_both_engines(videos: dict, tmp_path: Path) -> None:
    n = 4
    clips = tmp_path / "clips.parquet"
    write_table(
        "clips",
        {
            "video_id": videos["ids"][:n] + ["missing"],
            "uri": videos["uris"][:n] + [videos["uris"][-1]],
            "label_id": [0, 1, 0, 1, 0],
            "label": ["a", "b", "a", "b", "a"],
            "split": ["short"] * (n + 1),
            "clip_start_s": [0.5, 0.0, 1.0, 0.25, 0.0],
            "clip_end_s": [1.5, 1.0, 2.0, 1.25, 1.0],
            "duration_s": [2.0 + 0.5 * i for i in range(n)] + [2.0],
        },
        clips,
    )
    kw = dict(short_side=32, crf=18, progress=False, workers=2, chunk_size=2)
    s_local = materialize_clips(clips, tmp_path / "local", **kw)
    s_ray = materialize_clips(clips, tmp_path / "ray", engine="ray", **kw)
    mat_l, mat_r = (
        pq.read_table(materialized_paths(tmp_path / "local")[0]),
        pq.read_table(materialized_paths(tmp_path / "ray")[0]),
    )
    assert mat_l.drop_columns(["uri"]).equals(mat_r.drop_columns(["uri"]))
    assert mat_r.column("status").to_pylist() == ["ok"] * n + ["rejected"]
    for vid in videos["ids"][:n]:  # the same encoder settings cut the same bytes
        assert (tmp_path / "local" / f"{vid}.mp4").read_bytes() == (tmp_path / "ray" / f"{vid}.mp4").read_bytes()
    assert s_ray["ok"] == s_local["ok"] == n
    twice = read_table("clips", clips)
    twice = pa.concat_tables([twice, twice.slice(1, 1)])  # a repeated video_id: cut files are named by it
    pq.write_table(twice, tmp_path / "twice.parquet", row_group_size=2)
    for engine in ("local", "ray"):
        with pytest.raises(InputError, match="1 duplicate video_id"):
            materialize_clips(tmp_path / "twice.parquet", tmp_path / f"twice-{engine}", engine=engine, **kw)


def test_dedupe_fingerprints_through_ray_and_removes_the_same_copies(videos: dict, tmp_path: Path) -> None:
    d = videos["dir"]
    copy = d / "copy_of_v3.mp4"
    shutil.copyfile(videos["uris"][3], copy)
    ids = videos["ids"][:3] + ["copy"]
    uris = videos["uris"][:3] + [str(copy)]
    manifest = tmp_path / "manifest.parquet"
    write_table(
        "manifest",
        {
            "video_id": ids,
            "uri": uris,
            "label_id": [0] * 4,
            "label": ["a"] * 4,
            "matched_label_ids": [[0]] * 4,
            "duration_s": [2.0] * 4,
        },
        manifest,
    )
    import pyarrow as pa

    targets = tmp_path / "targets.parquet"
    pq.write_table(pa.table({"video_id": ["t3", "t5"], "uri": [videos["uris"][3], videos["uris"][5]]}), targets)
    results = {}
    for engine in ("local", "ray"):
        cfg = DedupeConfig(
            manifest=manifest,
            targets=targets,
            out=tmp_path / engine / "clean.parquet",
            report=tmp_path / engine / "overlaps.parquet",
            progress=False,
            engine=engine,
        )
        results[engine] = dedupe_manifest(cfg), pq.read_table(cfg.out), pq.read_table(cfg.report)
    (_, clean_l, rep_l), (_, clean_r, rep_r) = results["local"], results["ray"]
    assert clean_r.equals(clean_l) and rep_r.equals(rep_l)
    assert clean_r.column("video_id").to_pylist() == ["v0", "v1", "v2"]  # the copy of a target is gone


def test_engine_errors_are_one_line_input_errors() -> None:
    with pytest.raises(InputError, match="unknown engine 'spark'"):
        check_engine("spark")
    with pytest.raises(InputError, match="--ray-address needs --engine ray"):
        check_engine("local", "auto")
    check_engine("ray")


def test_cli_engine_option(videos: dict, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from weaksup.cli.main import app

    out = tmp_path / "cli.parquet"
    result = CliRunner().invoke(
        app, ["fingerprint", "--videos", str(videos["table"]), "--out", str(out), "--engine", "ray", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).num_rows == len(videos["ids"])
    bad = CliRunner().invoke(app, ["probe", "--videos", str(videos["table"]), "--out", str(out), "--engine", "dask"])
    assert bad.exit_code == 2


def test_extract_is_the_same_on_ray_actors(videos: dict, tmp_path: Path) -> None:
    """Chunks extracted by Ray actors (network loaded once per actor) equal the local run's."""
    import numpy as np

    from weaksup.eval.extract import ExtractConfig, extract_features

    n = 5
    manifest = tmp_path / "manifest.parquet"
    write_table(
        "manifest",
        {
            "video_id": videos["ids"][:n] + ["corrupt"],
            "uri": videos["uris"][:n] + [videos["uris"][6]],
            "label_id": [i % 2 for i in range(n + 1)],
            "label": ["ab"[i % 2] for i in range(n + 1)],
            "matched_label_ids": [[i % 2] for i in range(n + 1)],
            "duration_s": [2.0] * (n + 1),
        },
        manifest,
    )
    tiny = dict(arch="r2plus1d_10", num_clips=2, chunk_videos=2, frames=4, crop=32, short_side=40, progress=False)
    s_local = extract_features(manifest, tmp_path / "l.parquet", checkpoint=None, cfg=ExtractConfig(workers=0, **tiny))
    s_ray = extract_features(
        manifest, tmp_path / "r.parquet", checkpoint=None, cfg=ExtractConfig(workers=2, engine="ray", **tiny)
    )
    local, on_ray = pq.read_table(tmp_path / "l.parquet"), pq.read_table(tmp_path / "r.parquet")
    vectors = ["features", "clip_features", "scores", "clip_scores"]
    assert on_ray.drop_columns(vectors).equals(local.drop_columns(vectors))
    assert on_ray.column("status").to_pylist() == ["ok"] * n + ["rejected"]
    for col in ("features", "clip_features"):
        a, b = local.column(col).to_pylist()[:n], on_ray.column(col).to_pylist()[:n]
        np.testing.assert_allclose(np.array(b, np.float64), np.array(a, np.float64), rtol=1e-4, atol=1e-6)
    assert s_ray["clips_this_run"] == s_local["clips_this_run"] == 2 * n
    assert s_ray["clips_failed"] == s_local["clips_failed"] == 2
    assert pq.read_schema(tmp_path / "r.parquet").metadata == pq.read_schema(tmp_path / "l.parquet").metadata


def test_fetch_is_identical_on_both_engines(videos: dict, tmp_path: Path) -> None:
    import pyarrow as pa

    from weaksup.fetch.config import FetchConfig
    from weaksup.fetch.fetch import fetch_videos
    from weaksup.fetch.serve import serve_folder

    names = [Path(u).name for u in videos["uris"]]
    with serve_folder(videos["dir"]) as base:
        urls = tmp_path / "urls.parquet"
        ids = videos["ids"] + [videos["ids"][0], videos["ids"][1]]  # repeated ids: rejected, naming the first row
        links = [f"{base}/{n}" for n in names] + [f"{base}/{names[0]}", None]
        pq.write_table(pa.table({"video_id": ids, "url": links}), urls, row_group_size=3)
        common = dict(videos=urls, allow_private_hosts=True, chunk_size=3, progress=False, max_attempts=1)
        local, _ = fetch_videos(FetchConfig(out=tmp_path / "local", **common))
        local = local.read()
        on_ray, _ = fetch_videos(FetchConfig(out=tmp_path / "ray", engine="ray", workers=2, **common))
        on_ray = on_ray.read()
    same = ["video_id", "url", "status", "error", "http_status", "bytes", "sha256"]
    assert on_ray.select(same).to_pylist() == local.select(same).to_pylist()
    assert local.column("status").to_pylist() == ["ok"] * 6 + ["rejected"] * 4
    assert "duplicate" in local.column("error")[8].as_py()


def test_the_ray_driver_never_reads_the_rows(videos: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """probe on Ray with the row readers broken in this (driver) process: the workers read
    their own blocks, so the job still gives the local engine's table."""
    from weaksup.blocks import TableInput

    local, _ = probe_videos(ProbeConfig(videos=videos["table"], out=tmp_path / "l.parquet", workers=0, progress=False))

    def no_rows_here(*args, **kwargs):
        raise AssertionError("the driver read input rows")

    monkeypatch.setattr(TableInput, "read", no_rows_here)
    monkeypatch.setattr(TableInput, "read_table", no_rows_here)
    on_ray, _ = probe_videos(
        ProbeConfig(
            videos=videos["table"], out=tmp_path / "r.parquet", workers=2, chunk_size=2, progress=False, engine="ray"
        )
    )
    assert on_ray.read().equals(local.read())
