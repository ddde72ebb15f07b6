"""Tar shards (`weaksup shard`) and the streaming ShardClipDataset.

Eight tiny videos (two classes, the table sorted by class) and one missing file; shards of
two or three clips so that ranks and workers each get whole shards.
"""

from __future__ import annotations

import io
import json
import math
import re
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import typer
from conftest import assert_input_error
from typer.testing import CliRunner

from weaksup.data.dataset import ClipDataset
from weaksup.data.rejects import read_rejects
from weaksup.data.shard_writer import ShardConfig, parse_size, write_shards
from weaksup.data.shards import ShardClipDataset, iter_shard, shuffled
from weaksup.errors import InputError
from weaksup.synth.video import write_test_video
from weaksup.tables import write_table

N = 8
SPEC = dict(num_frames=4, crop=48, short_side=56, thread_type="SLICE")  # small clips: fast tests


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("shards")
    uris = [
        str(write_test_video(root / "v" / f"vid.{i}.mp4", seconds=1.0 + 0.25 * i, fps=16, seed=i)) for i in range(N)
    ]
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
    return {
        "root": root,
        "manifest": root / "manifest.parquet",
        "clips": root / "clips.parquet",
        "uris": uris,
        "table": manifest,
        "clips_table": clips,
    }


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
    assert any(
        len({table.column("label_id")[r].as_py() for r in rows}) == 2
        for rows in ([r for r, s in seen.items() if s == shard.name] for shard in shards)
    )

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


def test_cut_by_bytes_is_the_greedy_cut_in_any_pieces() -> None:
    """Shards filled up to a byte limit, a bigger clip alone: the same cuts however the order
    arrives in pieces (the Ray engine feeds it bucket by bucket)."""
    from weaksup.data.shard_writer import cut_by_bytes

    def greedy(need: list[int], limit: int) -> list[int]:  # the plain loop: cut before a clip that does not fit
        cuts, used, start = [], 0, 0
        for i, n in enumerate(need):
            if i > start and used + n > limit:
                cuts.append(i)
                start, used = i, 0
            used += n
        return cuts

    rng = np.random.default_rng(1)
    for _ in range(300):
        need = rng.integers(1, 50, size=int(rng.integers(0, 40))).tolist()
        limit = int(rng.integers(1, 120))
        splits = sorted(rng.integers(0, len(need) + 1, size=int(rng.integers(0, 6))).tolist())
        pieces = [need[a:b] for a, b in zip([0, *splits], [*splits, len(need)])]
        assert list(cut_by_bytes(map(np.array, pieces), limit)) == greedy(need, limit)


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


def test_reads_through_fsspec_memory_and_without_fsspec(
    sharded: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
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
    ds = ShardClipDataset(
        [str(bad), str(cut), str(tmp_path / "absent.tar")], rejects_path=log, train=False, shuffle_shards=False, **SPEC
    )
    got = rows_of(ds)
    assert sorted(got) == sorted(json.loads(b)["row"] for n, b in good if n.endswith(".json"))
    assert ds.failures == 4
    rejects = read_rejects(log).to_pylist()
    assert {r.get("key") for r in rejects} == {"junk-1", "lonely-2", None}
    junk = next(r for r in rejects if r.get("key") == "junk-1")
    assert junk["video_id"] == "junk" and junk["index"] == 99 and "NotAVideo" in junk["reason"]
    assert {r["shard"] for r in rejects if r.get("key") is None} == {str(cut), str(tmp_path / "absent.tar")}
    assert [k for k, _ in iter_shard(str(bad))] == [
        good[0][0].split(".")[0],
        "junk-1",
        "lonely-2",
        good[2][0].split(".")[0],
    ]


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
    result = shard_cli(
        "--manifest", corpus["manifest"], "--out", tmp_path / "o", "--shard-bytes", "40KB", "--no-progress"
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["clips"] == N
    assert_input_error(
        shard_cli("--manifest", tmp_path / "nope.parquet", "--out", tmp_path / "x"), "nope.parquet", "not found"
    )
    pq.write_table(pa.table({"video_id": ["a"], "label_id": [0]}), tmp_path / "bad.parquet")
    assert_input_error(
        shard_cli("--manifest", tmp_path / "bad.parquet", "--out", tmp_path / "x"), "bad.parquet", "missing column"
    )
    assert_input_error(
        shard_cli(
            "--manifest", corpus["manifest"], "--out", tmp_path / "x", "--shard-size", "2", "--shard-bytes", "1GB"
        ),
        "not both",
    )
    assert_input_error(
        shard_cli("--manifest", corpus["manifest"], "--out", tmp_path / "x", "--shard-bytes", "big"), "--shard-bytes"
    )


def test_a_relabelled_table_rewrites_its_shards(corpus: dict, tmp_path: Path, shard_cli) -> None:
    """Same files, same ids, other label ids: every JSON member keeps its size, so the shards
    used to be kept with the old labels (issue 15). Each shard's stamp now says which rows made it."""
    import pyarrow.compute as pc
    from conftest import stderr_of

    from weaksup.bulk import StaleResumeWarning

    out = tmp_path / "sh"
    write_shards(ShardConfig(manifest=corpus["manifest"], out=out, shard_size=2))
    table = corpus["table"]
    flipped = pc.subtract(pa.scalar(1, pa.int32()), table.column("label_id")).cast(pa.int32())
    relabelled = write_table(
        "manifest",
        table.set_column(table.schema.get_field_index("label_id"), "label_id", flipped),
        tmp_path / "relabelled.parquet",
    )
    fresh = tmp_path / "fresh"
    write_shards(ShardConfig(manifest=tmp_path / "relabelled.parquet", out=fresh, shard_size=2))
    assert relabelled.num_rows == N + 1

    before = {p.name: p.read_bytes() for p in out.glob("shard-*.tar")}
    with pytest.raises(
        InputError, match=r"4 of 4 shards of an earlier run do not belong to this job \(input rows changed\)"
    ):
        write_shards(ShardConfig(manifest=tmp_path / "relabelled.parquet", out=out, shard_size=2, resume_strict=True))
    assert {p.name: p.read_bytes() for p in out.glob("shard-*.tar")} == before  # a strict job changes nothing
    with pytest.warns(
        StaleResumeWarning,
        match=r"4 of 4 shards of an earlier run were stale and are rewritten "
        r"\(input rows changed\)",
    ):
        summary = write_shards(ShardConfig(manifest=tmp_path / "relabelled.parquet", out=out, shard_size=2))
    assert summary["shards_written"] == 4
    for shard in fresh.glob("shard-*.tar"):
        assert (out / shard.name).read_bytes() == shard.read_bytes()
    assert pq.read_table(out / "index.parquet").to_pylist() == pq.read_table(fresh / "index.parquet").to_pylist()

    # an identical rerun keeps every shard; a changed setting names itself; --no-resume rewrites all
    args = ("--manifest", tmp_path / "relabelled.parquet", "--out", out, "--shard-size", 2, "--no-progress")
    result = shard_cli(*args)
    assert result.exit_code == 0 and "warning" not in stderr_of(result), result.output
    assert json.loads((out / "summary.json").read_text())["shards_written"] == 0
    assert_input_error(shard_cli(*args, "--seed", 1, "--resume-strict"), "settings changed: seed 0 -> 1")
    result = shard_cli(*args, "--seed", 1)
    warned = [line for line in stderr_of(result).splitlines() if line.strip()]
    assert result.exit_code == 0 and len(warned) == 1, result.output
    assert warned[0].startswith("weaksup: warning: ") and "settings changed: seed 0 -> 1" in warned[0]
    result = shard_cli(*args, "--seed", 1, "--no-resume")
    assert result.exit_code == 0 and "warning" not in stderr_of(result), result.output
    assert json.loads((out / "summary.json").read_text())["shards_written"] == 4


def test_unstamped_shards_of_an_older_weaksup_are_rewritten(corpus: dict, tmp_path: Path) -> None:
    from weaksup.bulk import StaleResumeWarning
    from weaksup.data import shard_format as shards_mod

    out = tmp_path / "sh"
    real = shards_mod.write_shard
    shards_mod_write = lambda path, clips, stamp=None: real(path, clips)  # noqa: E731 - as weaksup wrote them before
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shards_mod, "write_shard", shards_mod_write)
        write_shards(ShardConfig(manifest=corpus["manifest"], out=out, shard_size=2))
    with pytest.warns(StaleResumeWarning, match=r"4 of 4 shards .*no stamp"):
        assert write_shards(ShardConfig(manifest=corpus["manifest"], out=out, shard_size=2))["shards_written"] == 4
    assert write_shards(ShardConfig(manifest=corpus["manifest"], out=out, shard_size=2))["shards_written"] == 0


# ----------------------------------------------------------------------------- pretrain from shards


def test_member_dataset_equals_clipdataset_and_rejects_bad_members(
    corpus: dict, sharded: tuple[Path, dict], tmp_path: Path
) -> None:
    from weaksup.data.shards import ShardMemberDataset, load_shard_index

    out, _ = sharded
    index = load_shard_index(out)
    assert len(index) == N and sorted(index.row.tolist()) == list(range(N)) and len(index.names) == 4
    assert all(np.all(np.diff(index.offset[index.shard == k]) > 0) for k in range(4))  # file order per shard
    files = ClipDataset(corpus["manifest"], seed=5, train=True, **SPEC)
    ds = ShardMemberDataset(index, seed=5, train=True, **SPEC)
    for epoch in (0, 1):
        files.set_epoch(epoch)
        ds.set_epoch(epoch)
        for i in (0, 1, 5):
            item, ref = ds[i], files[int(index.row[i])]
            assert item["index"] == ref["index"] and item["label"] == ref["label"]
            assert torch.equal(item["clip"], ref["clip"])

    # a garbled member and a cut shard: None, counted, logged with shard and key; the rest still reads
    bad = tmp_path / "bad"
    bad.mkdir()
    for p in out.iterdir():
        (bad / p.name).write_bytes(p.read_bytes())
    broken = load_shard_index(bad)
    first = int(np.flatnonzero(broken.shard == 0)[0])
    raw = bytearray((bad / broken.names[0]).read_bytes())
    raw[broken.offset[first] : broken.offset[first] + broken.bytes[first]] = b"x" * int(broken.bytes[first])
    (bad / broken.names[0]).write_bytes(bytes(raw))
    cut = int(np.flatnonzero(broken.shard == 1)[-1])
    (bad / broken.names[1]).write_bytes((bad / broken.names[1]).read_bytes()[: broken.offset[cut] + 100])
    log = tmp_path / "rejects.jsonl"
    ds = ShardMemberDataset(broken, rejects_path=log, train=False, **SPEC)
    items = [ds[i] for i in range(N)]
    assert [i for i, item in enumerate(items) if item is None] == [first, cut] and ds.failures == 2
    rejects = read_rejects(log).to_pylist()
    assert [r["key"] for r in rejects] == [broken.key[first].as_py(), broken.key[cut].as_py()]
    assert "NotAVideo" in rejects[0]["reason"] and "cut short" in rejects[1]["reason"]
    assert rejects[1]["shard"].endswith(broken.names[1]) and rejects[0]["index"] == int(broken.row[first])


def test_shard_sampler_keeps_shards_together_and_splits_ranks_contiguously() -> None:
    from weaksup.train.sampler import ResumableSampler, ShardSampler

    sizes = [7, 5, 9, 6, 4, 8, 3, 6]  # 48 clips in 8 shards
    shard_of = np.repeat(np.arange(len(sizes)), sizes)
    whole = ShardSampler(shard_of, seed=2, window=3)
    for epoch in (0, 1):
        order = whole.shard(epoch)
        assert sorted(order.tolist()) == list(range(48))  # every clip once
        switches = int(np.sum(shard_of[order][1:] != shard_of[order][:-1]))
        assert switches == len(sizes) - 1  # each shard one run
        for k in range(len(sizes)):  # inside a shard, windows of 3 clips in file order
            run = order[shard_of[order] == k]
            windows = (run - run.min()) // 3
            assert np.all(np.diff(windows) >= 0)
    assert not np.array_equal(whole.shard(0), whole.shard(1))
    assert np.array_equal(whole.shard(1), ShardSampler(shard_of, seed=2, window=3).shard(1))

    world = 4
    ranks = [ShardSampler(shard_of, seed=2, rank=r, world_size=world, window=3) for r in range(world)]
    slices = [s.shard(0) for s in ranks]
    assert all(len(x) == 12 for x in slices)  # equal lengths, no padding needed
    assert np.array_equal(np.concatenate(slices), whole.shard(0))  # contiguous runs of the epoch order
    for x in slices:
        shards_here = len(set(shard_of[x].tolist()))
        assert int(np.sum(shard_of[x][1:] != shard_of[x][:-1])) <= shards_here - 1
    # uneven: padded by wrapping and cut to whole steps, so every rank runs the same steps
    odd = [ShardSampler(shard_of[:-3], seed=2, rank=r, world_size=world, multiple_of=5) for r in range(world)]
    assert {len(s) for s in odd} == {10}  # ceil(45 / 4) = 12 each, cut to two steps of 5
    assert np.array_equal(odd[1].shard(0), odd[1].epoch_order(0)[12:22])

    # mid-epoch resume; a table sampler's checkpoint does not resume a shard run
    s = ranks[1]
    s.advance(5)
    t = ShardSampler(shard_of, seed=2, rank=1, world_size=world, window=3)
    t.load_state_dict(s.state_dict())
    assert list(t) == slices[1][5:].tolist()
    with pytest.raises(InputError, match="table order, this run reads shards"):
        t.load_state_dict(ResumableSampler(48, world_size=world).state_dict())


@pytest.fixture(scope="module")
def train_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 clips of test_pretrain's three motion classes in 4 shards of 3: an epoch is 3 tiny steps."""
    from test_pretrain import write_manifest

    root = tmp_path_factory.mktemp("train_shards")
    write_shards(ShardConfig(manifest=write_manifest(root, per_class=4), out=root / "shards", shard_size=3))
    return root / "shards"


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Interrupted(Exception):
    pass


def test_pretrain_from_shards_resumes_exactly(train_shards: Path, tmp_path: Path, monkeypatch, one_thread) -> None:
    """5 steps straight vs. killed in step 4 and resumed (two workers) from the checkpoint at step 2,
    mid-epoch 0: the same weights, optimizer state, sampler state and log."""
    from test_pretrain import losses, tiny

    from weaksup.train.checkpoint import list_checkpoints, load_checkpoint
    from weaksup.train.loop import pretrain

    cfg = tiny(max_steps=5, checkpoint_every=2, log_every=1, keep_checkpoints=5, device="cpu")
    straight = pretrain(cfg, manifest=train_shards, out=tmp_path / "a", progress=False)
    assert straight["steps"] == 5 and straight["epoch"] == 1 and straight["clips_skipped"] == 0
    assert all(math.isfinite(x) for x in losses(tmp_path / "a")) and "(shards, 12 rows, 3 classes)" in straight["table"]
    assert [p.name for p in list_checkpoints(tmp_path / "a" / "checkpoints")] == [
        "step_000000002.pt",
        "step_000000004.pt",
        "step_000000005.pt",
    ]

    calls = {"n": 0}
    original = torch.optim.SGD.step

    def crashing_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise Interrupted
        return original(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(torch.optim.SGD, "step", crashing_step)
        with pytest.raises(Interrupted):
            pretrain(replace(cfg, workers=2), manifest=train_shards, out=tmp_path / "b", progress=False)
    mid = load_checkpoint(tmp_path / "b" / "checkpoints" / "step_000000002.pt")["sampler"]
    assert (mid["epoch"], mid["position"], mid["order"], mid["shards"]) == (0, 8, "shards", 4)

    resumed = pretrain(replace(cfg, workers=2), manifest=train_shards, out=tmp_path / "b", progress=False)
    assert resumed["resumed_from_step"] == 2 and resumed["steps_this_run"] == 3
    assert resumed["weights_sha256"] == straight["weights_sha256"]
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "step_000000005.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "step_000000005.pt")
    for i, slot in a["optimizer"]["state"].items():
        assert torch.equal(slot["momentum_buffer"], b["optimizer"]["state"][i]["momentum_buffer"])
    assert a["sampler"] == b["sampler"] and losses(tmp_path / "a") == losses(tmp_path / "b")


def test_pretrain_from_a_memory_url_and_bad_shard_input(train_shards: Path, tmp_path: Path, one_thread) -> None:
    from conftest import pretrain_app

    app = pretrain_app()

    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    for p in train_shards.iterdir():
        fs.pipe(f"/pretrain-shards/{p.name}", p.read_bytes())
    runner = CliRunner()

    def cli(*args):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    try:
        result = cli(
            "--manifest",
            "memory://pretrain-shards",
            "--out",
            tmp_path / "mem",
            "--preset",
            "tiny",
            "--max-steps",
            2,
            "--checkpoint-every",
            2,
            "--no-progress",
            "--device",
            "cpu",
        )
        assert result.exit_code == 0, result.output
        summary = json.loads((tmp_path / "mem" / "summary.json").read_text())
        assert summary["steps"] == 2 and math.isfinite(summary["final_loss"]) and summary["clips_skipped"] == 0
        assert summary["table"].startswith("memory://pretrain-shards (shards")
        assert (tmp_path / "mem" / "checkpoints" / "step_000000002.pt").exists()
        assert_input_error(
            cli(
                "--manifest",
                "memory://pretrain-shards",
                "--out",
                tmp_path / "w",
                "--preset",
                "tiny",
                "--use-sample-weights",
            ),
            "memory://pretrain-shards",
            "--use-sample-weights",
            "not supported for shard folders",
        )
    finally:
        fs.rm("/pretrain-shards", recursive=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_input_error(
        cli("--manifest", empty, "--out", tmp_path / "x", "--preset", "tiny"), "index.parquet", "file not found"
    )
    assert not (tmp_path / "x").exists()
