"""Tar shards (`weaksup shard`) and the streaming ShardClipDataset.

Eight tiny videos (two classes, the table sorted by class) and one missing file; shards of
two or three clips so that ranks and workers each get whole shards.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import typer
from typer.testing import CliRunner

from conftest import assert_input_error
from weaksup.data.dataset import ClipDataset
from weaksup.data.rejects import read_rejects
from weaksup.data.shards import ShardClipDataset, ShardConfig, iter_shard, parse_size, shuffled, write_shards
from weaksup.errors import InputError
from weaksup.synth.video import write_test_video
from weaksup.tables import write_table

N = 8
SPEC = dict(num_frames=4, crop=48, short_side=56, thread_type="SLICE")  # small clips: fast tests


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("shards")
    uris = [str(write_test_video(root / "v" / f"vid.{i}.mp4", seconds=1.0 + 0.25 * i, fps=16, seed=i)) for i in range(N)]
    uris.append(str(root / "v" / "gone.mp4"))  # never written: a reject
    durations = [1.0 + 0.25 * i for i in range(N)] + [2.0]
    durations[3] = None  # unknown: the window ends where the container says
    labels = [0] * (N // 2) + [1] * (N // 2) + [1]
    manifest = write_table(
        "manifest",
        {
            "video_id": [f"vid.{i}/x" for i in range(N + 1)],  # dots and slashes must not reach keys
            "uri": uris,
            "label_id": pa.array(labels, pa.int32()),
            "label": [["left", "right"][k] for k in labels],
            "matched_label_ids": [[k] for k in labels],
            "duration_s": pa.array(durations, pa.float64()),
        },
        root / "manifest.parquet",
    )
    clips = write_table(
        "clips",
        {
            "video_id": [f"c{i}" for i in range(N)],
            "uri": uris[:N],
            "label_id": pa.array(labels[:N], pa.int32()),
            "label": [["left", "right"][k] for k in labels[:N]],
            "split": ["short"] * N,
            "clip_start_s": [0.25] * N,
            "clip_end_s": [0.9] * N,
            "duration_s": [d or 2.0 for d in durations[:N]],
        },
        root / "clips.parquet",
    )
    return {"root": root, "manifest": root / "manifest.parquet", "clips": root / "clips.parquet", "uris": uris,
            "table": manifest, "clips_table": clips}


@pytest.fixture(scope="module")
def sharded(corpus: dict) -> tuple[Path, dict]:
    out = corpus["root"] / "sh2"
    return out, write_shards(ShardConfig(manifest=corpus["manifest"], out=out, shard_size=2, workers=2))


def members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


# ----------------------------------------------------------------------------- writing


def test_round_trip_every_row_once_bytes_metadata_and_index(corpus: dict, sharded: tuple[Path, dict]) -> None:
    out, summary = sharded
    table = corpus["table"]
    assert summary["rows"] == N + 1 and summary["clips"] == N and summary["rejected"] == 1
    assert summary["shards"] == 4 and summary["num_classes"] == 2
    shards = sorted(out.glob("shard-*.tar"))
    assert [p.name for p in shards] == [f"shard-{k:06d}.tar" for k in range(4)]
    seen: dict[int, str] = {}
    for shard in shards:
        got = members(shard)
        assert len(got) == 4  # two clips, video then json
        for (video_name, data), (json_name, blob) in zip(got[::2], got[1::2]):
            key, ext = video_name.split(".")
            assert ext == "mp4" and json_name == f"{key}.json"
            assert re.fullmatch(r"[A-Za-z0-9_-]+", key)
            meta = json.loads(blob)
            row = meta["row"]
            assert row not in seen
            seen[row] = shard.name
            assert data == Path(corpus["uris"][row]).read_bytes()
            assert meta["video_id"] == f"vid.{row}/x" and meta["uri"] == corpus["uris"][row]
            assert meta["label_id"] == table.column("label_id")[row].as_py()
            assert meta["label"] == ["left", "right"][meta["label_id"]]
            assert meta["clip_start_s"] == 0.0
            expected_end = None if row == 3 else 1.0 + 0.25 * row
            assert meta["clip_end_s"] == expected_end and meta["duration_s"] == expected_end
    assert sorted(seen) == list(range(N))
    # shuffled, not the table's (class-sorted) order, and shards mix classes
    order = [json.loads(b)["row"] for s in shards for n, b in members(s) if n.endswith(".json")]
    assert order != sorted(order)
    assert any(len({table.column("label_id")[r].as_py() for r in rows}) == 2
               for rows in ([r for r, s in seen.items() if s == shard.name] for shard in shards))

    index = pq.read_table(out / "index.parquet")
    assert index.schema.metadata[b"weaksup.schema"] == b"shard_index/1"
    assert index.num_rows == N and sorted(index.column("row").to_pylist()) == list(range(N))
    for r in index.to_pylist():
        assert seen[r["row"]] == r["shard"]
        raw = (out / r["shard"]).read_bytes()
        assert raw[r["offset"] : r["offset"] + r["bytes"]] == Path(corpus["uris"][r["row"]]).read_bytes()
        meta = json.loads(raw[r["json_offset"] : r["json_offset"] + r["json_bytes"]])
        assert (meta["row"], meta["video_id"], meta["label_id"]) == (r["row"], r["video_id"], r["label_id"])
        assert r["member"] == f"{r['key']}.mp4"

    rejects = pq.read_table(out / "rejects.parquet").to_pylist()
    assert len(rejects) == 1 and rejects[0]["row"] == N and rejects[0]["reason"].startswith("file not found")
    assert json.loads((out / "summary.json").read_text())["rejected_by_reason"] == {"file not found": 1}


def test_order_is_seeded_and_output_deterministic(corpus: dict, sharded: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = sharded
    write_shards(ShardConfig(manifest=corpus["manifest"], out=tmp_path / "again", shard_size=2))
    for shard in out.glob("shard-*.tar"):
        assert (tmp_path / "again" / shard.name).read_bytes() == shard.read_bytes()
    write_shards(ShardConfig(manifest=corpus["manifest"], out=tmp_path / "seed1", shard_size=2, seed=1))
    rows = [pq.read_table(d / "index.parquet").column("row").to_pylist() for d in (out, tmp_path / "seed1")]
    assert rows[0] != rows[1] and sorted(rows[0]) == sorted(rows[1])


def test_resume_rewrites_only_the_missing_shard_and_drops_extras(corpus: dict, tmp_path: Path) -> None:
    out = tmp_path / "sh"
    write_shards(ShardConfig(manifest=corpus["manifest"], out=out, shard_size=2))
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("shard-*.tar")}
    (out / "shard-000002.tar").unlink()
    (out / ".shard-000003.tar.tmp-999-1").write_bytes(b"half")  # a killed run's leftover
    summary = write_shards(ShardConfig(manifest=corpus["manifest"], out=out, shard_size=2))
    assert (summary["shards_written"], summary["shards_skipped"]) == (1, 3)
    for p in out.glob("shard-*.tar"):
        ino, mtime, data = before[p.name]
        assert p.read_bytes() == data
        if p.name != "shard-000002.tar":
            assert (p.stat().st_ino, p.stat().st_mtime_ns) == (ino, mtime)
    assert not list(out.glob(".shard-*"))
    # a corrupt shard is rewritten; a smaller plan removes the shards past its end
    (out / "shard-000001.tar").write_bytes(b"not a tar")
    assert write_shards(ShardConfig(manifest=corpus["manifest"], out=out, shard_size=2))["shards_written"] == 1
    summary = write_shards(ShardConfig(manifest=corpus["manifest"], out=out, shard_size=3))
    assert summary["shards"] == 3 and summary["shards_written"] == 3
    assert sorted(p.name for p in out.glob("shard-*.tar")) == [f"shard-{k:06d}.tar" for k in range(3)]
    assert pq.read_table(out / "index.parquet").num_rows == N


def test_shard_bytes_limit(corpus: dict, tmp_path: Path) -> None:
    sizes = [Path(u).stat().st_size for u in corpus["uris"][:N]]
    limit = 2 * max(sizes) + 4096  # two clips (plus tar headers and json) fit, never three
    summary = write_shards(ShardConfig(manifest=corpus["manifest"], out=tmp_path / "b", shard_bytes=limit))
    index = pq.read_table(tmp_path / "b" / "index.parquet").to_pylist()
    per_shard: dict[str, int] = {}
    for r in index:
        per_shard[r["shard"]] = per_shard.get(r["shard"], 0) + r["bytes"]
    assert summary["shards"] == len(per_shard) >= N // 2 and summary["shard_size"] is None
    assert all(total <= limit for total in per_shard.values())
    assert parse_size("1GB") == 10**9 and parse_size("500MiB") == 500 * 2**20 and parse_size("2e3") == 2000
    with pytest.raises(InputError, match="--shard-bytes"):
        parse_size("lots")
    with pytest.raises(InputError, match="not both"):
        ShardConfig(manifest=corpus["manifest"], out=tmp_path, shard_size=2, shard_bytes=100)


def test_unreadable_files_are_rejects_not_crashes(corpus: dict, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    table = corpus["table"].slice(0, 3)
    uris = [str(empty), str(tmp_path), corpus["uris"][2]]
    table = table.set_column(table.schema.get_field_index("uri"), "uri", pa.array(uris))
    pq.write_table(table, tmp_path / "m.parquet")
    summary = write_shards(ShardConfig(manifest=tmp_path / "m.parquet", out=tmp_path / "o"))
    assert summary["clips"] == 1 and summary["rejected_by_reason"] == {"empty file": 1, "not a regular file": 1}
    assert pq.read_table(tmp_path / "o" / "index.parquet").column("row").to_pylist() == [2]


# ----------------------------------------------------------------------------- streaming


def rows_of(dataset: ShardClipDataset, workers: int = 0) -> list[int]:
    if workers == 0:
        return [item["index"] for item in dataset]
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers)
    return [int(item["index"]) for item in loader]


def test_every_clip_once_per_epoch_across_workers_and_ranks(sharded: tuple[Path, dict]) -> None:
    out, _ = sharded
    for epoch in (0, 1):
        per_rank = []
        for rank in (0, 1):
            ds = ShardClipDataset(out, seed=3, rank=rank, world_size=2, **SPEC)
            ds.set_epoch(epoch)
            per_rank.append(rows_of(ds, workers=2))
        assert set(per_rank[0]).isdisjoint(per_rank[1])
        assert sorted(per_rank[0] + per_rank[1]) == list(range(N))
        assert all(len(r) == N // 2 for r in per_rank)  # 4 shards of 2: one shard per (rank, worker)
    ds = ShardClipDataset(out, seed=3, **SPEC)
    shard_sets = [set(ds.shards_for(0, r, 2, w, 2)) for r in (0, 1) for w in (0, 1)]
    assert set().union(*shard_sets) == set(ds.urls) and sum(map(len, shard_sets)) == len(ds.urls)


def test_epochs_give_different_orders_and_replay_the_same(sharded: tuple[Path, dict]) -> None:
    out, _ = sharded
    ds = ShardClipDataset(out, seed=0, buffer_size=3, train=False, **SPEC)
    orders = []
    for epoch in (0, 1, 0):
        ds.set_epoch(epoch)
        orders.append(rows_of(ds))
    assert sorted(orders[0]) == sorted(orders[1]) == list(range(N))
    assert orders[0] != orders[1] and orders[0] == orders[2]
    rng = np.random.default_rng(0)
    assert sorted(shuffled(range(50), 8, rng)) == list(range(50))
    assert list(shuffled(range(5), 0, rng)) == list(range(5))


@pytest.mark.parametrize("kind", ["manifest", "clips"])
def test_clips_equal_clipdataset_from_files(corpus: dict, tmp_path: Path, kind: str) -> None:
    out = tmp_path / kind
    write_shards(ShardConfig(manifest=corpus[kind], out=out, shard_size=3))
    for train, epoch in ((False, 0), (True, 0), (True, 2)):
        files = ClipDataset(corpus[kind], seed=5, train=train, **SPEC)
        shards = ShardClipDataset(out, seed=5, train=train, **SPEC)
        files.set_epoch(epoch)
        shards.set_epoch(epoch)
        items = list(shards)
        assert len(items) == N
        for item in items:
            ref = files[item["index"]]
            assert item["label"] == ref["label"] and item["start_s"] == pytest.approx(ref["start_s"])
            assert torch.equal(item["clip"], ref["clip"]), (kind, train, epoch, item["index"])
    if kind == "clips":
        meta = json.loads(members(out / "shard-000000.tar")[1][1])
        assert (meta["clip_start_s"], meta["clip_end_s"]) == (0.25, 0.9)


def test_reads_through_fsspec_memory_and_without_fsspec(sharded: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch) -> None:
    out, _ = sharded
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    for p in out.iterdir():
        fs.pipe(f"/shards-test/{p.name}", p.read_bytes())
    try:
        ds = ShardClipDataset("memory://shards-test", train=False, **SPEC)
        assert ds.total == N and sorted(rows_of(ds)) == list(range(N))
    finally:
        fs.rm("/shards-test", recursive=True)
    monkeypatch.setitem(__import__("sys").modules, "fsspec", None)  # import fsspec -> ImportError
    ds = ShardClipDataset(out, train=False, **SPEC)
    assert sorted(rows_of(ds)) == list(range(N))
    with pytest.raises(InputError, match="index.parquet"):
        ShardClipDataset(out / "nowhere", **SPEC)


def test_bad_members_and_cut_shards_are_skipped_and_logged(sharded: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = sharded
    good = members(out / "shard-000000.tar")
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        entries = [
            *good[:2],
            ("junk-1.mp4", b"not a video at all" * 20),
            ("junk-1.json", json.dumps({"row": 99, "label_id": 0, "video_id": "junk"}).encode()),
            ("lonely-2.mp4", good[0][1]),  # no json
            *good[2:],
        ]
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    cut = tmp_path / "cut.tar"
    cut.write_bytes((out / "shard-000001.tar").read_bytes()[:3000])  # inside the first video
    log = tmp_path / "rejects.jsonl"
    ds = ShardClipDataset([str(bad), str(cut), str(tmp_path / "absent.tar")], rejects_path=log, train=False,
                          shuffle_shards=False, **SPEC)
    got = rows_of(ds)
    assert sorted(got) == sorted(json.loads(b)["row"] for n, b in good if n.endswith(".json"))
    assert ds.failures == 4
    rejects = read_rejects(log).to_pylist()
    assert {r.get("key") for r in rejects} == {"junk-1", "lonely-2", None}
    junk = next(r for r in rejects if r.get("key") == "junk-1")
    assert junk["video_id"] == "junk" and junk["index"] == 99 and "NotAVideo" in junk["reason"]
    assert {r["shard"] for r in rejects if r.get("key") is None} == {str(cut), str(tmp_path / "absent.tar")}
    assert [k for k, _ in iter_shard(str(bad))] == [good[0][0].split(".")[0], "junk-1", "lonely-2",
                                                    good[2][0].split(".")[0]]


def test_webdataset_reads_our_shards(sharded: tuple[Path, dict]) -> None:
    wds = pytest.importorskip("webdataset")
    out, _ = sharded
    samples = list(wds.WebDataset(str(out / "shard-000000.tar"), shardshuffle=False))
    assert len(samples) == 2 and all({"mp4", "json"} <= set(s) for s in samples)


# ----------------------------------------------------------------------------- CLI


@pytest.fixture
def shard_cli():
    from weaksup.cli import shard

    app = typer.Typer()
    app.callback()(lambda: None)  # keep `shard` a subcommand, as in the real app
    shard.register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["shard", *map(str, args)], catch_exceptions=False)


def test_cli_writes_shards_and_refuses_bad_input(corpus: dict, tmp_path: Path, shard_cli) -> None:
    result = shard_cli("--manifest", corpus["manifest"], "--out", tmp_path / "o", "--shard-bytes", "40KB",
                       "--no-progress")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["clips"] == N
    assert_input_error(shard_cli("--manifest", tmp_path / "nope.parquet", "--out", tmp_path / "x"), "nope.parquet",
                       "not found")
    pq.write_table(pa.table({"video_id": ["a"], "label_id": [0]}), tmp_path / "bad.parquet")
    assert_input_error(shard_cli("--manifest", tmp_path / "bad.parquet", "--out", tmp_path / "x"), "bad.parquet",
                       "missing column")
    assert_input_error(shard_cli("--manifest", corpus["manifest"], "--out", tmp_path / "x", "--shard-size", "2",
                                 "--shard-bytes", "1GB"), "not both")
    assert_input_error(shard_cli("--manifest", corpus["manifest"], "--out", tmp_path / "x", "--shard-bytes", "big"),
                       "--shard-bytes")
