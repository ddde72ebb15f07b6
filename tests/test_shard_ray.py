"""``weaksup shard --engine ray`` (weaksup/data/shard_ray.py): the same shards as the local engine.

Tiny videos made here; buckets and blocks made small so that a 9-row table is cut into
several blocks and buckets, and shards straddle buckets.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from weaksup.data import shard_format, shard_ray
from weaksup.data.shard_writer import ShardConfig, write_shards
from weaksup.errors import InputError
from weaksup.synth.video import write_test_video
from weaksup.tables import write_table

N = 9


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("shard_ray")
    uris = [str(write_test_video(root / "v" / f"v{i}.mp4", seconds=0.5 + 0.25 * i, fps=8, seed=i)) for i in range(N)]
    uris.append(str(root / "v" / "gone.mp4"))  # never written: a reject
    labels = [i % 3 for i in range(N + 1)]
    write_table(
        "manifest",
        {
            "video_id": [f"vid{i}" for i in range(N + 1)],
            "uri": uris,
            "label_id": pa.array(labels, pa.int32()),
            "label": [f"class{k}" for k in labels],
            "matched_label_ids": [[k] for k in labels],
            "duration_s": [0.5 + 0.25 * i for i in range(N + 1)],
        },
        root / "manifest.parquet",
    )
    write_table(
        "clips",
        {
            "video_id": [f"c{i}" for i in range(N)],
            "uri": uris[:N],
            "label_id": pa.array(labels[:N], pa.int32()),
            "label": [f"class{k}" for k in labels[:N]],
            "split": ["short"] * N,
            "clip_start_s": [0.1] * N,
            "clip_end_s": [0.4] * N,
            "duration_s": [0.5 + 0.25 * i for i in range(N)],
        },
        root / "clips.parquet",
    )
    return {"root": root, "manifest": root / "manifest.parquet", "clips": root / "clips.parquet", "uris": uris}


@pytest.fixture
def small_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 2 rows and buckets of about 2 rows (planned on the driver; the tasks follow the plan)."""
    monkeypatch.setattr(shard_ray, "BUCKET_ROWS", 2)
    monkeypatch.setattr(shard_ray, "BLOCK_CHUNK", 2)


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch, small_buckets: None) -> None:
    """The Ray steps run in this process (each task a plain call), so tests can reach into them."""
    from weaksup import ray_engine

    monkeypatch.setattr(ray_engine, "ray_session", lambda **_: contextlib.nullcontext())
    monkeypatch.setattr(
        ray_engine, "ray_tasks", lambda fn, args, shared=None, **_: (fn(shared, a) for a in list(args)[::-1])
    )


def outputs(out: Path) -> dict:
    """Everything a shard job leaves: each shard's bytes, the index and rejects, the summary."""
    summary = json.loads((out / "summary.json").read_text())
    return {
        "shards": {p.name: p.read_bytes() for p in sorted(out.glob("shard-*.tar"))},
        "index": pq.read_table(out / "index.parquet"),
        "rejects": pq.read_table(out / "rejects.parquet"),
        "summary": {
            k: v for k, v in summary.items() if k not in ("index", "rejects", "shards_written", "shards_skipped")
        },
    }


def assert_same(a: dict, b: dict) -> None:
    assert a["shards"].keys() == b["shards"].keys() and a["shards"] == b["shards"]
    assert a["index"].equals(b["index"]) and a["index"].schema.metadata == b["index"].schema.metadata
    assert a["rejects"].equals(b["rejects"])
    assert a["summary"] == b["summary"]


def test_bucket_bits_and_write_plan_cover_every_position() -> None:
    assert shard_ray.bucket_bits(0) == 0 and shard_ray.bucket_bits(shard_ray.BUCKET_ROWS) == 0
    assert shard_ray.bucket_bits(shard_ray.BUCKET_ROWS + 1) == 1
    rng = np.random.default_rng(0)
    for _ in range(200):
        counts = rng.integers(0, 4, size=int(rng.integers(1, 9))) * rng.integers(0, 2, size=1)
        total = int(counts.sum())
        cuts = sorted(set(rng.integers(1, total, size=int(rng.integers(0, 5))).tolist())) if total > 1 else []
        starts = [0, *cuts, total] if total else [0]
        tasks = shard_ray.plan_writes(starts, counts)
        firsts = np.concatenate([[0], np.cumsum(counts)])
        covered: list[int] = []
        for t in tasks:
            assert t.starts[0] >= firsts[t.bucket] and t.starts[0] < firsts[t.bucket + 1]  # it starts in its bucket
            held = [p for b, at in t.buckets for p in range(at, at + int(counts[b]))]
            assert set(range(t.starts[0], t.starts[-1])) <= set(held)
            assert t.first_shard == starts.index(t.starts[0])
            covered += list(range(t.starts[0], t.starts[-1]))
        assert covered == list(range(total))  # every position once, in order


@pytest.mark.slow
def test_ray_shards_equal_the_local_engine(corpus: dict, tmp_path: Path, small_buckets: None, local_ray) -> None:
    for table, kw in [
        ("manifest", dict(shard_size=2)),
        ("manifest", dict(shard_size=4, seed=3)),
        ("clips", dict(shard_bytes=3 * max(Path(u).stat().st_size for u in corpus["uris"][:N]))),
        ("manifest", dict(shard_bytes=1)),  # every clip a shard of its own
    ]:
        runs = {}
        for engine in ("local", "ray"):
            out = tmp_path / f"{table}-{len(runs)}-{engine}-{kw}"
            write_shards(ShardConfig(manifest=corpus[table], out=out, engine=engine, progress=False, **kw))
            runs[engine] = outputs(out)
            assert not (out / ".ray-parts").exists()
        assert_same(runs["ray"], runs["local"])
        assert len(runs["ray"]["shards"]) >= 2
    assert runs["ray"]["summary"]["rejected_by_reason"] == {"file not found": 1}


@pytest.mark.slow
def test_ray_resumes_from_local_shards_and_judges_stale_ones(
    corpus: dict, tmp_path: Path, small_buckets: None, local_ray
) -> None:
    from weaksup.bulk import StaleResumeWarning

    out = tmp_path / "sh"
    cfg = ShardConfig(manifest=corpus["manifest"], out=out, shard_size=2, progress=False)
    write_shards(cfg)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.tar")}
    on_ray = ShardConfig(manifest=corpus["manifest"], out=out, shard_size=2, progress=False, engine="ray")
    assert write_shards(on_ray)["shards_written"] == 0  # the local engine's shards are this job's
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.tar")} == before
    (out / "shard-000001.tar").unlink()
    assert write_shards(on_ray)["shards_written"] == 1
    reseeded = ShardConfig(manifest=corpus["manifest"], out=out, shard_size=2, seed=5, progress=False, engine="ray")
    strict = ShardConfig(**{**reseeded.__dict__, "resume_strict": True})
    with pytest.raises(InputError, match="shard"):
        write_shards(strict)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.tar")}.keys() == before.keys()
    with pytest.warns(StaleResumeWarning, match="seed"):
        summary = write_shards(reseeded)
    assert summary["shards_written"] == summary["shards"] == 5


def test_files_that_fail_while_written_are_rejects_in_row_order(
    corpus: dict, tmp_path: Path, in_process: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = shard_format.write_shard
    gone = {2, 7}

    def flaky(path, clips, stamp=None):  # rows 2 and 7 vanish between their stat and their copy
        failed = real(path, [c for c in clips if c.row not in gone], stamp)
        return {**failed, **{c.row: f"unreadable: {c.path} (vanished)" for c in clips if c.row in gone}}

    monkeypatch.setattr(shard_format, "write_shard", flaky)
    out = tmp_path / "sh"
    summary = write_shards(ShardConfig(manifest=corpus["manifest"], out=out, shard_size=3, engine="ray"))
    rejects = pq.read_table(out / "rejects.parquet").to_pylist()
    assert [r["row"] for r in rejects] == [2, 7, N]
    assert rejects[0]["video_id"] == "vid2" and rejects[0]["uri"] == corpus["uris"][2]
    assert summary["rejected"] == 3 and summary["clips"] == N - 2
    assert summary["rejected_by_reason"] == {"unreadable": 2, "file not found": 1}
    assert sorted(pq.read_table(out / "index.parquet").column("row").to_pylist()) == sorted(set(range(N)) - gone)


def test_bad_tables_are_one_line_errors(corpus: dict, tmp_path: Path, in_process: None) -> None:
    def table(name: str, **cols) -> Path:
        pq.write_table(pa.table(cols), tmp_path / name)
        return tmp_path / name

    good = dict(video_id=["a", "b"], uri=corpus["uris"][:2], label_id=[0, 1], label=["x", "y"])
    cases = [
        (table("negative.parquet", **{**good, "label_id": [0, -1]}, matched_label_ids=[[0], [1]]), "negative"),
        (table("nolabel.parquet", video_id=["a"], uri=["x"]), "missing column 'label"),
        (table("floats.parquet", **{**good, "label_id": [0.5, 1.0]}, matched_label_ids=[[0], [1]]), "label_id"),
        (table("nulls.parquet", **{**good, "video_id": ["a", None]}, matched_label_ids=[[0], [1]]), "video_id"),
        (tmp_path / "absent.parquet", "absent.parquet"),
        (
            table(
                "empty.parquet",
                **{k: v[:0] for k, v in good.items()},
                matched_label_ids=pa.array([], pa.list_(pa.int32())),
            ),
            "no rows",
        ),
    ]
    for path, match in cases:
        for engine in ("local", "ray"):
            with pytest.raises(InputError, match=match):
                write_shards(ShardConfig(manifest=path, out=tmp_path / f"out-{engine}", engine=engine))


@pytest.mark.slow
def test_cli_engine_ray(corpus: dict, tmp_path: Path, small_buckets: None, local_ray) -> None:
    from weaksup.cli.main import app

    args = ["shard", "--manifest", str(corpus["manifest"]), "--shard-size", "3", "--no-progress"]
    for engine in ("local", "ray"):
        result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / engine), "--engine", engine])
        assert result.exit_code == 0, result.output
    assert_same(outputs(tmp_path / "ray"), outputs(tmp_path / "local"))
