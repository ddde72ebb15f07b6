"""Bulk jobs on a two-node Ray cluster on one box: the same tables as the local engine, and
a worker node killed mid-job costs nothing but time.

Ray's ``cluster_utils.Cluster`` starts a head node and a second node, each with its own
raylet and one CPU, as two machines would; the driver joins with ``ray.init(address=...)``.
Workers read their blocks of the input table and write the stamped parts themselves; the
driver only plans and commits.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from weaksup.assembly.probe import ProbeConfig, probe_videos
from weaksup.blocks import TableInput
from weaksup.bulk import BulkConfig, parts_dir, run_bulk
from weaksup.dedupe.fingerprint import FingerprintConfig, fingerprint_videos
from weaksup.synth.video import write_test_video

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
cluster_utils = pytest.importorskip("ray.cluster_utils")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    """A head node and a worker node (one CPU each), joined by this process as the driver."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    c = cluster_utils.Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False, "resources": {"head": 1}}
    )
    worker = c.add_node(num_cpus=1, resources={"worker": 1})
    ray.init(address=c.address, log_to_driver=False, configure_logging=False)
    c.wait_for_nodes()
    yield c, worker
    ray.shutdown()
    c.shutdown()
    gc.collect()  # Ray's garbage freed here, not in a process forked later


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight tiny videos and a missing one, as a videos table of three row groups."""
    d = tmp_path_factory.mktemp("cluster_videos")
    ids = [f"v{i}" for i in range(8)] + ["missing"]
    paths = [str(write_test_video(d / f"v{i}.mp4", seconds=1.0 + 0.25 * i, seed=i)) for i in range(8)]
    table = d / "videos.parquet"
    pq.write_table(pa.table({"video_id": ids, "uri": paths + [str(d / "missing.mp4")]}), table, row_group_size=3)
    return table


def test_probe_and_fingerprint_on_two_nodes_equal_the_local_engine(cluster, videos: Path, tmp_path: Path) -> None:
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    kw = dict(videos=videos, chunk_size=2, progress=False)
    local, s_local = probe_videos(ProbeConfig(out=tmp_path / "l.parquet", workers=0, **kw))
    on_ray, s_ray = probe_videos(ProbeConfig(out=tmp_path / "r.parquet", workers=2, engine="ray", **kw))
    assert on_ray.read().equals(local.read()) and s_ray == s_local
    assert s_ray["ok"] == 8 and s_ray["reasons"] == {"FileNotFoundError": 1}
    assert not parts_dir(tmp_path / "r.parquet").exists()  # committed, then cleaned up

    local, s_local = fingerprint_videos(FingerprintConfig(out=tmp_path / "cl.parquet", workers=0, **kw))
    on_ray, s_ray = fingerprint_videos(FingerprintConfig(out=tmp_path / "cr.parquet", workers=2, engine="ray", **kw))
    assert on_ray.read().equals(local.read())
    assert {k: v for k, v in s_ray.items() if k != "wall_s"} == {k: v for k, v in s_local.items() if k != "wall_s"}


def test_match_on_two_nodes_equals_one_local_match(cluster, tmp_path: Path) -> None:
    """Partition, support, reduce and draw spread over both nodes: the local match's rows."""
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    from weaksup.assembly.match import MatchConfig, match_videos
    from weaksup.assembly.match_ray import RayOptions, match_on_ray
    from weaksup.labels.build import BuildLabelsConfig, build_labels
    from weaksup.synth.metadata import SynthMetadataConfig, synth_metadata

    labels = tmp_path / "k400.parquet"
    build_labels(BuildLabelsConfig(sources=("kinetics400",), out=labels))
    synth_metadata(SynthMetadataConfig(videos=3000, out=tmp_path / "src.parquet", seed=7))
    table = pq.read_table(tmp_path / "src.parquet")
    videos = tmp_path / "videos.parquet"
    pq.write_table(pa.concat_tables([table, table.slice(0, 50)]), videos, row_group_size=500)  # 50 duplicates
    local = tmp_path / "local.parquet"
    whole = match_videos(MatchConfig(videos=videos, labels=labels, out=local, min_videos=10, progress=False))
    summary = match_on_ray(
        MatchConfig(videos=videos, labels=labels, out=tmp_path / "ray", min_videos=10, progress=False),
        RayOptions(parts=4, block_rows=500),
    )
    key = lambda r: r["video_id"]  # noqa: E731
    assert sorted(pq.read_table(tmp_path / "ray" / "manifest").to_pylist(), key=key) == sorted(
        pq.read_table(local).to_pylist(), key=key
    )
    assert summary["in_manifest"] == whole["in_manifest"] and summary["rejected"] == whole["rejected"] == 50


def write_manifest(rows: pa.Table, path: Path) -> None:
    """Videos rows as a manifest of two alternating labels, in row groups of 4."""
    n = rows.num_rows
    rows = rows.append_column("label_id", pa.array([i % 2 for i in range(n)], pa.int32()))
    rows = rows.append_column("label", pa.array(["a" if i % 2 == 0 else "b" for i in range(n)]))
    rows = rows.append_column("matched_label_ids", pa.array([[i % 2] for i in range(n)], pa.list_(pa.int32())))
    pq.write_table(rows, path, row_group_size=4)


def test_dedupe_search_on_two_nodes_equals_the_local_search(cluster, videos: Path, tmp_path: Path) -> None:
    """Fingerprints and the search of a manifest against itself (copies planted) on both nodes."""
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    from weaksup.dedupe.dedupe import DedupeConfig, dedupe_manifest

    manifest = tmp_path / "manifest.parquet"
    table = pq.read_table(videos)
    copies = table.slice(0, 3).set_column(0, "video_id", pa.array(["c0", "c1", "c2"]))  # the same files again
    write_manifest(pa.concat_tables([table.slice(0, 8), copies]), manifest)
    outs = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine / "clean.parquet"
        out.parent.mkdir()
        summary = dedupe_manifest(
            DedupeConfig(
                manifest=manifest,
                out=out,
                report=out.with_name("report.parquet"),
                self_dedupe=True,
                engine=engine,
                workers=2,
                block_rows=4,
                progress=False,
            )
        )
        outs[engine] = (pq.read_table(out), summary)
    assert outs["ray"][0].equals(outs["local"][0])
    assert outs["ray"][0].num_rows == 8  # one of each pair of copies removed


def test_shard_on_two_nodes_equals_the_local_engine(cluster, videos: Path, tmp_path: Path, monkeypatch) -> None:
    """The size, sort and write tasks of ``shard --engine ray`` on both nodes: the same tar
    shards, index and rejects as the local engine (several blocks and buckets)."""
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    from weaksup.data import shard_ray
    from weaksup.data.shard_writer import ShardConfig, write_shards

    monkeypatch.setattr(shard_ray, "BUCKET_ROWS", 2)
    monkeypatch.setattr(shard_ray, "BLOCK_CHUNK", 2)
    manifest = tmp_path / "manifest.parquet"
    write_manifest(pq.read_table(videos), manifest)
    outs = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        summary = write_shards(ShardConfig(manifest=manifest, out=out, shard_size=3, engine=engine, progress=False))
        shards = {p.name: p.read_bytes() for p in sorted(out.glob("shard-*.tar"))}
        tables = [pq.read_table(out / name) for name in ("index.parquet", "rejects.parquet")]
        outs[engine] = (shards, tables, {k: v for k, v in summary.items() if k not in ("index", "rejects")})
    assert outs["ray"][0] == outs["local"][0] and len(outs["ray"][0]) == 3
    assert all(a.equals(b) for a, b in zip(outs["ray"][1], outs["local"][1]))
    assert outs["ray"][2] == outs["local"][2] and outs["ray"][2]["rejected"] == 1


def test_shard_with_a_node_killed_mid_job_then_rerun_equals_the_local_engine(
    cluster, videos: Path, tmp_path: Path, monkeypatch
) -> None:
    """A third node joins, takes shard tasks and is killed once the first blocks are sized:
    the job finishes on the others (or the rerun does) with the local engine's shards."""
    from weaksup.data import shard_ray
    from weaksup.data.shard_writer import ShardConfig, write_shards

    c, _ = cluster
    monkeypatch.setattr(shard_ray, "BUCKET_ROWS", 64)
    monkeypatch.setattr(shard_ray, "BLOCK_CHUNK", 8)
    rows = pq.read_table(videos).slice(0, 8)
    many = pa.concat_tables([rows] * 150)  # 1,200 rows over 8 files: 150 blocks, 32 buckets
    many = many.set_column(0, "video_id", pa.array([f"v{i}" for i in range(many.num_rows)]))
    manifest = tmp_path / "manifest.parquet"
    write_manifest(many, manifest)
    extra = c.add_node(num_cpus=1)
    c.wait_for_nodes()
    out = tmp_path / "ray"

    def kill_once_sized() -> None:
        deadline = time.time() + 60
        while time.time() < deadline and len(list((out / ".ray-parts" / "sized").glob("*.parquet"))) < 4:
            time.sleep(0.01)
        c.remove_node(extra, allow_graceful=False)

    killer = threading.Thread(target=kill_once_sized)
    killer.start()
    cfg = ShardConfig(manifest=manifest, out=out, shard_size=50, engine="ray", progress=False)
    try:
        write_shards(cfg)
    except Exception:  # noqa: BLE001 - Ray may give up on a task whose node died: the rerun finishes it
        pass
    killer.join()
    summary = write_shards(cfg)
    write_shards(ShardConfig(manifest=manifest, out=tmp_path / "local", shard_size=50, progress=False))
    for k in range(summary["shards"]):
        name = f"shard-{k:06d}.tar"
        assert (out / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    assert pq.read_table(out / "index.parquet").equals(pq.read_table(tmp_path / "local" / "index.parquet"))
    assert summary["clips"] == 1200 and summary["shards"] == 24 and not (out / ".ray-parts").exists()


# ----------------------------------------------------------------------------- last: it removes the worker node


def slow_echo(item: dict) -> dict:
    """A job function slow enough to kill a node under it: which node ran the row is recorded."""
    time.sleep(0.2)
    return {"duration_s": float(item["n"]), "codec": ray.get_runtime_context().get_node_id()[:8]}


def number_items(table: pa.Table, first_row: int) -> list[dict]:
    return [
        {"video_id": v, "uri": v, "n": n}
        for v, n in zip(table.column("video_id").to_pylist(), table.column("n").to_pylist())
    ]


def test_a_worker_node_killed_mid_job_then_a_rerun_gives_the_same_table(cluster, tmp_path: Path) -> None:
    c, worker = cluster
    n = 24
    src = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"video_id": [f"r{i}" for i in range(n)], "n": list(range(n))}), src, row_group_size=8)
    source = TableInput(root=str(src), files=(str(src),), columns=("video_id", "n"), to_items=number_items)
    out = tmp_path / "out.parquet"
    config = BulkConfig(workers=2, chunk_size=2, progress=False, engine="ray")

    head = ray.get_runtime_context().get_node_id()[:8]  # the driver runs on the head node

    def worker_node_has_written() -> bool:
        nodes = set()
        for part in parts_dir(out).glob("*/part-*.parquet"):
            try:
                nodes.update(pq.read_table(part, columns=["codec"]).column("codec").to_pylist())
            except Exception:  # noqa: BLE001 - renamed away under us
                pass
        return bool(nodes - {head})

    def kill_the_worker_node() -> None:  # once it has written a part: the node dies under its next tasks
        deadline = time.time() + 60
        while time.time() < deadline and not worker_node_has_written():
            time.sleep(0.05)
        c.remove_node(worker, allow_graceful=False)

    killer = threading.Thread(target=kill_the_worker_node)
    killer.start()
    try:
        first = run_bulk(source, slow_echo, schema_name="probe", out=out, config=config, key=("video_id", "n")).read()
        finished = True
    except Exception:  # noqa: BLE001 - Ray may give up on a task whose node died: the rerun finishes it
        finished = False
    killer.join()
    result = run_bulk(source, slow_echo, schema_name="probe", out=out, config=config, key=("video_id", "n"))
    table = result.read()
    assert table.column("video_id").to_pylist() == [f"r{i}" for i in range(n)]
    assert table.column("duration_s").to_pylist() == [float(i) for i in range(n)]
    assert result.status("ok") == n and not parts_dir(out).exists()
    if finished:  # the dead node's tasks were run again on the head node within the first run
        assert first.column("duration_s").equals(table.column("duration_s"))
        assert len(set(first.column("codec").to_pylist())) == 2  # both nodes worked on it
