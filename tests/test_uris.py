"""Object-store uris: tables and videos through fsspec (memory://, file://, s3:// on a local moto server)."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

fsspec = pytest.importorskip("fsspec")

from conftest import write_clip  # noqa: E402

from weaksup import uris  # noqa: E402
from weaksup.assembly import probe as probe_mod  # noqa: E402
from weaksup.assembly.probe import ProbeConfig, probe_video, probe_videos  # noqa: E402
from weaksup.assembly.videos import iter_videos, read_id_uri  # noqa: E402
from weaksup.bulk import safe_call  # noqa: E402
from weaksup.dedupe.fingerprint import fingerprint_video  # noqa: E402
from weaksup.errors import InputError  # noqa: E402
from weaksup.outputs import atomic_output, atomic_path, prepare_output  # noqa: E402
from weaksup.synth.video import write_test_video  # noqa: E402
from weaksup.tables import read_table, validate_file, write_json, write_table  # noqa: E402
from weaksup.video_io import UnsupportedUri, open_video_file  # noqa: E402

VIDEOS = {
    "video_id": ["a", "b"],
    "uri": ["x.mp4", "y.mp4"],
    "hashtags": [["Dog", "#cat"], None],
    "duration_s": [1.0, None],
}


@pytest.fixture
def mem() -> str:
    """A fresh memory:// folder, removed afterwards (the memory filesystem is process-wide)."""
    root = f"memory://weaksup-test-{uuid.uuid4().hex[:8]}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def put(local: Path, uri: str) -> str:
    fs, path = uris.url_to_fs(uri)
    fs.pipe_file(path, local.read_bytes())
    return uri


# --- helpers -------------------------------------------------------------------------


def test_uri_helpers() -> None:
    assert uris.is_local("a/b.parquet") and uris.is_local("file:///tmp/x") and not uris.is_local("s3://b/k")
    assert uris.local_path("file:///tmp/a%20b.mp4") == Path("/tmp/a b.mp4")
    # A Path made from a uri (CLI options typed Path) loses a slash; as_uri puts it back.
    assert uris.as_uri(Path("s3://bucket/k/v.parquet")) == "s3://bucket/k/v.parquet"
    assert uris.as_uri(Path("file:///tmp/x.parquet")) == "file:///tmp/x.parquet"
    assert uris.as_uri(Path("plain/dir:/x")) == "plain/dir:/x"
    assert uris.as_uri(str(Path("memory://a/b"))) == "memory://a/b"
    assert uris.as_uri("notascheme:/x") == "notascheme:/x"
    assert uris.sibling("s3://b/k/v.parquet", "v.summary.json") == "s3://b/k/v.summary.json"
    assert uris.sibling("memory://v.parquet", "s.json") == "memory://s.json"
    assert uris.join("gs://b/k/", "part-0.parquet") == "gs://b/k/part-0.parquet"
    assert uris.join("a/b", "c") == str(Path("a/b/c"))
    with pytest.raises(uris.UnsupportedUri, match="nosuch"):
        uris.url_to_fs("nosuch://x/y")
    with pytest.raises(uris.UnsupportedUri):
        uris.local_path("memory://x")


# --- tables --------------------------------------------------------------------------


def test_table_round_trip_through_memory(mem: str) -> None:
    uri = f"{mem}/tables/videos.parquet"
    written = write_table("videos", VIDEOS, uri)
    back = read_table("videos", uri)
    assert back.equals(written)
    assert read_table("videos", uri, columns=["video_id"]).column("video_id").to_pylist() == ["a", "b"]
    assert validate_file("videos", uri) == 2
    # A Path built from the uri (as Typer gives it) reads the same table.
    assert read_table("videos", Path(uri)).equals(written)
    fs, _ = uris.url_to_fs(mem)
    assert [Path(p).name for p in fs.find(mem)] == ["videos.parquet"]  # no temporary left behind


def test_write_json_memory(mem: str) -> None:
    uri = f"{mem}/out/summary.json"
    write_json({"videos": 3, "ok": [1, 2]}, uri)
    with uris.open_input(uri, "rb") as f:
        assert f.read().decode() == '{\n  "videos": 3,\n  "ok": [\n    1,\n    2\n  ]\n}\n'


def test_atomic_output_failure_leaves_nothing(mem: str) -> None:
    uri = f"{mem}/out/table.parquet"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_output(uri) as tmp:
            tmp.write_bytes(b"half a table")
            raise RuntimeError("boom")
    assert not uris.exists(uri)
    fs, _ = uris.url_to_fs(mem)
    assert fs.find(mem) == []
    with atomic_output(uri) as tmp:
        tmp.write_bytes(b"whole")
    assert not tmp.exists()  # the local temporary is gone once uploaded
    assert fs.cat_file(uris.url_to_fs(uri)[1]) == b"whole"
    assert [Path(p).name for p in fs.find(mem)] == ["table.parquet"]
    fs.makedirs(uris.url_to_fs(f"{mem}/adir")[1], exist_ok=True)
    fs.pipe_file(uris.url_to_fs(f"{mem}/adir/x")[1], b"x")
    with pytest.raises(InputError, match="is a directory"):
        with atomic_output(f"{mem}/adir"):
            pass


def test_missing_or_bad_remote_table_is_one_line(mem: str) -> None:
    uri = f"{mem}/nope/videos.parquet"
    with pytest.raises(InputError) as err:
        read_table("videos", uri)
    assert str(err.value) == f"{uri}: file not found"
    fs, _ = uris.url_to_fs(mem)
    fs.pipe_file(uris.url_to_fs(f"{mem}/bad.parquet")[1], b"not parquet at all")
    with pytest.raises(InputError, match=r"^memory://.*/bad.parquet: not a readable Parquet file"):
        read_table("videos", f"{mem}/bad.parquet")
    with pytest.raises(InputError, match="nosuch"):
        read_table("videos", "nosuch://bucket/videos.parquet")


def test_file_uris(tmp_path: Path) -> None:
    uri = (tmp_path / "sub" / "videos.parquet").as_uri()
    written = write_table("videos", VIDEOS, uri)
    assert (tmp_path / "sub" / "videos.parquet").is_file()  # written by path, to the local file
    assert read_table("videos", uri).equals(written)
    assert read_id_uri(uri).column("video_id").to_pylist() == ["a", "b"]
    write_json({"k": 1}, (tmp_path / "s.json").as_uri())
    assert (tmp_path / "s.json").read_text() == '{\n  "k": 1\n}\n'
    with pytest.raises(InputError, match="file not found"):
        read_table("videos", (tmp_path / "missing.parquet").as_uri())


def test_local_paths_need_no_fsspec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fsspec is optional for local work: plain paths and file:// never import it."""
    for name in [m for m in sys.modules if m == "fsspec" or m.startswith("fsspec.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "fsspec", None)  # `import fsspec` now raises ImportError
    monkeypatch.setitem(sys.modules, "fsspec.core", None)
    monkeypatch.setitem(sys.modules, "fsspec.registry", None)
    path = tmp_path / "videos.parquet"
    write_table("videos", VIDEOS, path)
    assert read_table("videos", path.as_uri()).num_rows == 2
    assert read_id_uri(str(path)).num_rows == 2
    video = write_test_video(tmp_path / "v.mp4", seconds=0.5)
    assert probe_video(video.as_uri())["n_frames"] == 8
    with pytest.raises(InputError, match="needs fsspec"):
        read_table("videos", "memory://x/videos.parquet")


# --- videos tables -------------------------------------------------------------------


def test_videos_table_at_memory_uri(mem: str, tmp_path: Path) -> None:
    write_table("videos", VIDEOS, f"{mem}/v.parquet")
    batches = list(iter_videos(f"{mem}/v.parquet"))
    assert batches[0].column("hashtags").to_pylist() == [["dog", "cat"], None]
    assert read_id_uri(f"{mem}/v.parquet").column("uri").to_pylist() == ["x.mp4", "y.mp4"]
    # A folder (prefix) of Parquet parts.
    fs, _ = uris.url_to_fs(mem)
    for k in range(2):
        local = tmp_path / f"part-{k}.parquet"
        pq.write_table(pa.table({"video_id": [f"p{k}"], "uri": [f"v{k}.mp4"], "hashtags": [["t"]]}), local)
        put(local, f"{mem}/parts/part-{k}.parquet")
    assert sorted(read_id_uri(f"{mem}/parts").column("video_id").to_pylist()) == ["p0", "p1"]
    assert sorted(read_id_uri(f"{mem}/parts/").column("video_id").to_pylist()) == ["p0", "p1"]
    # CSV with #tags text.
    fs.pipe_file(uris.url_to_fs(f"{mem}/v.csv")[1], b"video_id,uri,hashtags\n1,a.mp4,#Dog #cat\n")
    assert next(iter_videos(f"{mem}/v.csv")).column("hashtags").to_pylist() == [["dog", "cat"]]
    with pytest.raises(InputError, match=r"memory://.*/none\.parquet: file not found"):
        read_id_uri(f"{mem}/none.parquet")
    fs.pipe_file(uris.url_to_fs(f"{mem}/noid.csv")[1], b"video_id,hashtags\n1,#a\n")
    with pytest.raises(InputError, match=r"^memory://.*/noid\.csv: missing column 'uri'"):
        read_id_uri(f"{mem}/noid.csv")


# --- videos ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("uri-videos")
    v = {
        "mp4": write_test_video(d / "v.mp4", seconds=1.0, fps=16),
        "webm": write_test_video(d / "v.webm", seconds=1.0, fps=12, codec="libvpx"),
        "rot90": write_clip(d / "rot90.mp4", 90),
        "rot_webm": write_clip(d / "rot.webm", -90, codec="libvpx"),
    }
    data = v["mp4"].read_bytes()
    (d / "half.mp4").write_bytes(data[: len(data) // 2])
    (d / "empty.mp4").write_bytes(b"")
    (d / "text.mp4").write_bytes(b"this is not a video\n" * 10)
    v.update({k: d / f"{k}.mp4" for k in ("half", "empty", "text", "missing")})
    return v


@pytest.mark.parametrize("name", ["mp4", "webm", "rot90", "rot_webm"])
def test_probe_memory_video_equals_local(local_videos: dict[str, Path], mem: str, name: str) -> None:
    local = local_videos[name]
    uri = put(local, f"{mem}/{local.name}")
    assert probe_video(uri) == probe_video(str(local))
    assert probe_video(uri, count_frames=True) == probe_video(str(local), count_frames=True)


def test_rotation_is_read_from_remote_headers(
    local_videos: dict[str, Path], mem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The header parsers read the remote file object (no decoded-frame fallback)."""
    uri = put(local_videos["rot90"], f"{mem}/rot90.mp4")
    monkeypatch.setattr(probe_mod, "_decoded_rotation", lambda *a: pytest.fail("fell back to decoding"))
    assert probe_video(uri)["rotation"] == 90
    assert probe_video(put(local_videos["rot_webm"], f"{mem}/rot.webm"))["rotation"] == -90


def test_fingerprint_memory_video_equals_local(local_videos: dict[str, Path], mem: str) -> None:
    local = local_videos["mp4"]
    uri = put(local, f"{mem}/v.mp4")
    remote, here = fingerprint_video(uri), fingerprint_video(str(local))
    assert remote["status"] == "ok" and len(remote["codes"]) == 16
    assert remote == here


@pytest.mark.parametrize(
    "name, kind",
    [("missing", "FileNotFoundError"), ("empty", "EmptyFile"), ("text", "NotAVideo"), ("half", "TruncatedVideo")],
)
def test_bad_remote_videos_give_the_local_reason(local_videos: dict[str, Path], mem: str, name: str, kind: str) -> None:
    local = local_videos[name]
    uri = f"{mem}/{local.name}"
    if local.exists():
        put(local, uri)
    here = safe_call(lambda it: probe_video(it["uri"]), {"uri": str(local), "_row": 0})
    remote = safe_call(lambda it: probe_video(it["uri"]), {"uri": uri, "_row": 0})
    assert here["status"] == remote["status"] == "rejected"
    assert remote["error"].startswith(f"{kind}: {uri}: ")
    assert remote["error"].replace(uri, "URI") == here["error"].replace(str(local), "URI")
    fp = safe_call(lambda it: fingerprint_video(it["uri"]), {"uri": uri, "_row": 0})
    assert fp["status"] == "rejected" and fp["error"].split(":")[0] == here["error"].split(":")[0]


def test_remote_container_keeps_its_file(local_videos: dict[str, Path], mem: str) -> None:
    uri = put(local_videos["mp4"], f"{mem}/v.mp4")
    source, container = open_video_file(uri)
    assert source.path is None and source.size == local_videos["mp4"].stat().st_size
    del source  # the container alone keeps the file object alive
    with container:
        assert sum(1 for _ in container.decode(video=0)) == 16
    local_source, local_container = open_video_file(str(local_videos["mp4"]))
    local_container.close()
    assert local_source.path == local_videos["mp4"] and local_source.file is None  # local files: by path


def test_unreachable_store_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    class Down:
        protocol = "s3"

        def info(self, path: str) -> dict:
            raise ConnectionError("could not connect\nto the endpoint")

        exists = isdir = info

    monkeypatch.setattr(uris, "url_to_fs", lambda uri: (Down(), "b/k"))
    row = safe_call(lambda it: probe_video(it["uri"]), {"uri": "s3://b/v.mp4", "_row": 0})
    assert (
        row["error"]
        == "StoreError: s3://b/v.mp4: cannot read from the store (ConnectionError: could not connect to the endpoint)"
    )
    with pytest.raises(InputError, match=r"^s3://b/t.parquet: cannot reach \(ConnectionError: could not connect\)$"):
        read_table("videos", "s3://b/t.parquet")
    with pytest.raises(InputError, match="^s3://b/t.parquet: cannot reach"):
        write_table("videos", VIDEOS, "s3://b/t.parquet")
    with pytest.raises(InputError, match="^s3://b/t.parquet: cannot reach"):
        read_id_uri("s3://b/t.parquet")


def test_unsupported_scheme_is_a_probe_error() -> None:
    with pytest.raises(UnsupportedUri, match="nosuch"):
        probe_video("nosuch://bucket/v.mp4")


def test_probe_videos_table_and_videos_in_memory(local_videos: dict[str, Path], mem: str, tmp_path: Path) -> None:
    uris_ = [put(local_videos["mp4"], f"{mem}/a.mp4"), f"{mem}/gone.mp4"]
    write_table(
        "videos",
        {"video_id": ["a", "b"], "uri": uris_, "hashtags": [None, None], "duration_s": [None, None]},
        f"{mem}/videos.parquet",
    )
    table, summary = probe_videos(
        ProbeConfig(videos=f"{mem}/videos.parquet", out=tmp_path / "probe.parquet", workers=0, progress=False)
    )
    table = table.read()
    assert summary["ok"] == 1 and summary["reasons"] == {"FileNotFoundError": 1}
    assert table.column("n_frames").to_pylist()[0] == 16


# --- s3:// on a local moto server --------------------------------------------------------


def test_s3_table_and_video_round_trip(s3_bucket: str, local_videos: dict[str, Path]) -> None:
    uri = f"{s3_bucket}/tables/videos.parquet"
    written = write_table("videos", VIDEOS, uri)
    assert read_table("videos", uri).equals(written)
    assert read_id_uri(uri).num_rows == 2
    write_json({"ok": 1}, f"{s3_bucket}/tables/summary.json")
    fs, _ = uris.url_to_fs(s3_bucket)
    assert sorted(Path(p).name for p in fs.find(s3_bucket)) == ["summary.json", "videos.parquet"]
    with pytest.raises(InputError, match=f"^{s3_bucket}/tables/missing.parquet: file not found$"):
        read_table("videos", f"{s3_bucket}/tables/missing.parquet")
    video = put(local_videos["rot90"], f"{s3_bucket}/videos/rot90.mp4")
    assert probe_video(video) == probe_video(str(local_videos["rot90"]))
    missing = safe_call(lambda it: probe_video(it["uri"]), {"uri": f"{s3_bucket}/videos/none.mp4", "_row": 0})
    assert missing["error"] == f"FileNotFoundError: {s3_bucket}/videos/none.mp4: file not found"
    from typer.testing import CliRunner

    from weaksup.cli.main import app

    res = CliRunner().invoke(app, ["validate", "videos", uri])
    assert res.exit_code == 0, res.output


def test_cli_reads_and_writes_uris(local_videos: dict[str, Path], mem: str, tmp_path: Path) -> None:
    """CLI options typed Path mangle uris (``memory:/x``); the readers and writers restore them."""
    from typer.testing import CliRunner

    from weaksup.cli.main import app

    video = put(local_videos["mp4"], f"{mem}/in/v.mp4")
    write_table(
        "videos",
        {"video_id": ["a"], "uri": [video], "hashtags": [["dancing"]], "duration_s": [None]},
        f"{mem}/in/videos.parquet",
    )
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", "videos", f"{mem}/in/videos.parquet"])
    assert ok.exit_code == 0, ok.output
    missing = runner.invoke(app, ["validate", "videos", f"{mem}/in/none.parquet"])
    assert missing.exit_code == 2 and f"{mem}/in/none.parquet: file not found" in missing.output
    out = tmp_path / "probe.parquet"
    res = runner.invoke(
        app, ["probe", "--videos", f"{mem}/in/videos.parquet", "--out", str(out), "--workers", "0", "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    assert pq.read_table(out).column("status").to_pylist() == ["ok"]
    (tmp_path / "l.txt").write_text("dancing\nswimming\n")
    res = runner.invoke(
        app,
        [
            "build-labels",
            "--source",
            "file",
            "--labels-file",
            str(tmp_path / "l.txt"),
            "--out",
            f"{mem}/lab/labels.parquet",
        ],
    )
    assert res.exit_code == 0, res.output
    assert read_table("labels", f"{mem}/lab/labels.parquet").num_rows == 2
    assert uris.exists(f"{mem}/lab/labels.hashtag_index.parquet") and uris.exists(f"{mem}/lab/labels.summary.json")


def test_local_only_writers_refuse_uris(mem: str) -> None:
    """Writers that stream into a local file and rename it themselves refuse uris in one line."""
    with pytest.raises(InputError, match=r"^memory://.*/out/t\.parquet: this output must be a local path"):
        atomic_path(Path(f"{mem}/out/t.parquet"))
    with pytest.raises(InputError, match="must be a local path"):
        prepare_output(Path(f"{mem}/out/t.parquet"))
    assert not Path("memory:").exists()  # no local folder named after the scheme
    assert atomic_path(Path("file:///tmp/x/t.parquet")) == Path(f"/tmp/x/.t.parquet.tmp-{os.getpid()}")


def test_bulk_jobs_write_their_tables_to_uris(
    local_videos: dict[str, Path], mem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """probe and fingerprint --out at a uri: parts staged locally (resumable), the table and summary uploaded."""
    import json

    from weaksup.bulk import parts_dir
    from weaksup.dedupe.fingerprint import FingerprintConfig, fingerprint_videos

    monkeypatch.setenv("WEAKSUP_STAGING", str(tmp_path / "staging"))
    write_table(
        "videos",
        {
            "video_id": ["a", "b"],
            "uri": [put(local_videos["mp4"], f"{mem}/a.mp4"), f"{mem}/gone.mp4"],
            "hashtags": [None, None],
            "duration_s": [None, None],
        },
        f"{mem}/videos.parquet",
    )
    out = f"{mem}/out/probe.parquet"
    assert parts_dir(out).parent == tmp_path / "staging" / "weaksup-parts"
    local, _ = probe_videos(
        ProbeConfig(videos=f"{mem}/videos.parquet", out=tmp_path / "p.parquet", workers=0, progress=False)
    )
    local = local.read()
    table, summary = probe_videos(ProbeConfig(videos=f"{mem}/videos.parquet", out=Path(out), workers=0, progress=False))
    table = table.read()
    assert read_table("probe", out).equals(table) and table.equals(local)
    with uris.open_input(f"{mem}/out/probe.summary.json") as f:
        assert json.load(f)["ok"] == summary["ok"] == 1
    assert not parts_dir(out).exists()
    codes, _ = fingerprint_videos(
        FingerprintConfig(videos=f"{mem}/videos.parquet", out=f"{mem}/out/codes.parquet", workers=0, progress=False)
    )
    codes = codes.read()
    assert read_table("codes", f"{mem}/out/codes.parquet").equals(codes)
    assert codes.column("status").to_pylist() == ["ok", "rejected"]


@pytest.mark.parametrize(
    "command",
    [
        ["match", "--videos", "v.parquet", "--labels", "l.parquet", "--out", "{mem}/m.parquet"],
        ["sample", "--manifest", "m.parquet", "--strategy", "random", "--out", "{mem}/s.parquet", "--size", "10"],
        ["splits", "--manifest", "m.parquet", "--probe", "p.parquet", "--kind", "short", "--out", "{mem}/c.parquet"],
        [
            "dedupe",
            "--manifest",
            "m.parquet",
            "--targets",
            "t.parquet",
            "--out",
            "{mem}/d.parquet",
            "--report",
            "r.parquet",
        ],
        ["pretrain", "--manifest", "m.parquet", "--out", "{mem}/run"],
        ["extract", "--manifest", "m.parquet", "--arch", "r2plus1d_10", "--out", "{mem}/f.parquet"],
        ["shard", "--manifest", "m.parquet", "--out", "{mem}/shards"],
        ["partition-videos", "--videos", "v.parquet", "--parts", "2", "--out", "{mem}/parts"],
    ],
)
def test_local_only_outputs_refuse_uris_in_one_line(command: list[str], mem: str) -> None:
    """Stages whose outputs are folders of parts, streamed writers or checkpoints say so, exit 2."""
    from typer.testing import CliRunner

    from weaksup.cli.main import app

    res = CliRunner().invoke(app, [a.format(mem=mem) for a in command])
    assert res.exit_code == 2, res.output
    assert "this output must be a local path" in res.output
