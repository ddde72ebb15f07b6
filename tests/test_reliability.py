"""Reliability (issue 15): inputs that are not regular files, OS errors, tables from other
tools, strict CSV/JSONL and numeric options. Every bad input ends in one line and exit 2:
no hang, no traceback, no silent loss."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import assert_input_error, write_lines

from weaksup import tables, uris
from weaksup.errors import InputError
from weaksup.eval.label_maps import read_label_map
from weaksup.labels.sources import file_labels

pd = pytest.importorskip("pandas")


# ----------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def fifo_unblocker(path: Path, seconds: float = 10.0):
    """A FIFO at ``path`` that never hangs the test: whoever opens it for reading (a reader
    without the regular-file check) gets end-of-file at once, so such a test fails instead of
    blocking for ever. A reader that never opens it leaves the FIFO untouched."""
    os.mkfifo(path)
    stop = threading.Event()
    opened = []

    def unblock() -> None:
        deadline = time.monotonic() + seconds
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody reads it (yet)
                time.sleep(0.02)
                continue
            opened.append(True)
            os.close(fd)  # the reader sees end-of-file
            time.sleep(0.02)

    thread = threading.Thread(target=unblock, daemon=True)
    thread.start()
    try:
        yield opened
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def memory_cap(extra: int = 1 << 30):
    """Limit this process's address space to its current size + ``extra`` while the block runs:
    a reader that reads /dev/zero to the end fails with MemoryError instead of eating the machine."""
    with open("/proc/self/status") as fh:
        vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = vm + extra if hard == resource.RLIM_INFINITY else min(vm + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def labels_table(cli, tmp_path: Path, names=("dog", "cat", "cow", "pig")) -> Path:
    labels = write_lines(tmp_path / "labels.txt", names)
    out = tmp_path / "labels.parquet"
    assert cli("build-labels", "--source", "file", "--labels-file", labels, "--out", out).exit_code == 0
    return out


def invoke(runner, *args):
    from weaksup.cli.main import app

    return runner.invoke(app, [str(a) for a in args])


# ----------------------------------------------------------------------------- item 2: input paths


def test_check_input_file_names_each_kind_of_non_file(tmp_path):
    good = tmp_path / "ok.txt"
    good.write_text("x\n")
    uris.check_input_file(good, "label")
    uris.check_input_file(tmp_path, "videos table", folder_ok=True)
    uris.check_input_file("memory://bucket/absent.txt", "label")  # object stores: not checked here
    cases = {
        tmp_path / "absent.txt": "file not found",
        tmp_path: "is a directory, expected a label file",
        Path("/dev/zero"): "is a character device",
        Path("/dev/null"): "is a character device",
    }
    link = tmp_path / "zero.txt"
    link.symlink_to("/dev/zero")
    cases[link] = "is a character device"  # the link is followed
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    cases[fifo] = "is a FIFO (named pipe)"
    for path, message in cases.items():
        with pytest.raises(InputError) as info:
            uris.check_input_file(path, "label")
        assert str(info.value).startswith(f"{path}: ") and message in str(info.value), str(info.value)
    big = tmp_path / "big.txt"
    big.write_bytes(b"a\n" * 600)
    with pytest.raises(InputError, match=r"big\.txt: 1200 bytes, more than the 1000 bytes limit for a label file"):
        uris.check_input_file(big, "label", max_bytes=1000)


@pytest.mark.parametrize("special", ["/dev/null", "/dev/zero", "fifo"])
def test_labels_file_that_is_not_a_regular_file_is_one_line(tmp_path, runner, special):
    if special == "fifo":
        path, guard = tmp_path / "labels.txt", fifo_unblocker(tmp_path / "labels.txt")
    else:
        path, guard = Path(special), contextlib.nullcontext()
    expected = "is a FIFO" if special == "fifo" else "is a character device"
    with guard, memory_cap():
        result = invoke(
            runner,
            "build-labels",
            "--source",
            "file",
            "--labels-file",
            path,
            "--out",
            tmp_path / "out" / "labels.parquet",
        )
    assert_input_error(result, str(path), expected)
    assert not (tmp_path / "out").exists()


def test_text_inputs_have_a_size_limit(tmp_path, runner, monkeypatch):
    monkeypatch.setattr(uris, "MAX_TEXT_BYTES", 1000)
    labels = write_lines(tmp_path / "labels.txt", [f"label {i}" for i in range(200)])
    result = invoke(
        runner, "build-labels", "--source", "file", "--labels-file", labels, "--out", tmp_path / "labels.parquet"
    )
    assert_input_error(result, "labels.txt", "more than the 1000 bytes limit for a label file")
    with pytest.raises(InputError, match="limit for a label map file"):
        read_label_map(labels)


def test_label_map_that_is_not_a_regular_file_is_refused(tmp_path):
    with memory_cap():
        with pytest.raises(InputError, match=r"^/dev/zero: is a character device.*label map"):
            read_label_map("/dev/zero")
    with fifo_unblocker(tmp_path / "classes.txt"), pytest.raises(InputError, match="classes.txt: is a FIFO"):
        read_label_map(tmp_path / "classes.txt")
    with fifo_unblocker(tmp_path / "classes.parquet"), pytest.raises(InputError, match="classes.parquet: is a FIFO"):
        read_label_map(tmp_path / "classes.parquet")


def test_validate_refuses_a_fifo_a_device_and_a_folder(tmp_path, runner):
    fifo = tmp_path / "labels.parquet"
    with fifo_unblocker(fifo) as opened:
        assert_input_error(invoke(runner, "validate", "--schema", "labels", "--table", fifo), str(fifo), "is a FIFO")
    assert not opened  # never opened: nothing could block
    assert_input_error(
        invoke(runner, "validate", "--schema", "labels", "--table", "/dev/zero"), "/dev/zero", "character device"
    )
    assert_input_error(
        invoke(runner, "validate", "--schema", "labels", "--table", tmp_path), str(tmp_path), "is a directory"
    )


def test_match_refuses_a_fifo_as_videos_table(tmp_path, runner, cli):
    labels = labels_table(cli, tmp_path)
    fifo = tmp_path / "videos.csv"
    with fifo_unblocker(fifo) as opened:
        result = invoke(runner, "match", "--videos", fifo, "--labels", labels, "--out", tmp_path / "m.parquet")
    assert_input_error(result, str(fifo), "is a FIFO")
    assert not opened


def test_pair_counts_that_are_not_a_file_are_refused(tmp_path, runner):
    verbs = write_lines(tmp_path / "verbs.txt", ["run", "jump"])
    with fifo_unblocker(tmp_path / "counts.csv"):
        result = invoke(
            runner,
            "build-labels",
            "--source",
            "verb-noun",
            "--verbs",
            "file",
            "--nouns",
            "kinetics400",
            "--labels-file",
            verbs,
            "--pair-counts",
            tmp_path / "counts.csv",
            "--out",
            tmp_path / "vn.parquet",
        )
    assert_input_error(result, "counts.csv", "is a FIFO")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_label_file(tmp_path, runner):
    labels = write_lines(tmp_path / "labels.txt", ["dog"])
    labels.chmod(0)
    result = invoke(
        runner, "build-labels", "--source", "file", "--labels-file", labels, "--out", tmp_path / "l.parquet"
    )
    assert_input_error(result, "labels.txt", "not readable")


# ----------------------------------------------------------------------------- item 3: OS errors in the CLI


OS_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EACCES: "permission denied",
    errno.EROFS: "read-only file system",
    errno.EISDIR: "is a directory",
    errno.ENOTDIR: "not a directory",
    errno.EEXIST: "already exists",
    errno.ENOENT: "not found",
}


@pytest.mark.parametrize("code", sorted(OS_ERRORS))
def test_os_errors_from_a_library_call_are_one_line(tmp_path, runner, monkeypatch, code):
    target = tmp_path / "out" / "table.parquet"

    def broken(name, path):
        raise OSError(code, os.strerror(code), str(target))

    monkeypatch.setattr(tables, "validate_file", broken)
    result = invoke(runner, "validate", "--schema", "labels", "--table", tmp_path / "any.parquet")
    line = assert_input_error(result, str(target), OS_ERRORS[code])
    assert errno.errorcode[code] in line


def test_os_error_naming_two_paths_or_none_and_other_errors(tmp_path, runner, monkeypatch):
    def rename_failed(name, path):
        raise OSError(errno.EACCES, "Permission denied", "/a/tmp", None, "/b/final")  # as os.rename raises

    monkeypatch.setattr(tables, "validate_file", rename_failed)
    assert_input_error(
        invoke(runner, "validate", "--schema", "labels", "--table", "x.parquet"),
        "/a/tmp -> /b/final",
        "permission denied",
    )

    def disk_full(name, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tables, "validate_file", disk_full)
    assert_input_error(
        invoke(runner, "validate", "--schema", "labels", "--table", "x.parquet"), "no space left on the device"
    )

    def io_error(name, path):  # not the user's to fix: not hidden behind one line
        raise OSError(errno.EIO, "Input/output error", "/dev/sdz")

    monkeypatch.setattr(tables, "validate_file", io_error)
    result = invoke(runner, "validate", "--schema", "labels", "--table", "x.parquet")
    assert result.exit_code == 1 and isinstance(result.exception, OSError)


# ----------------------------------------------------------------------------- item 7: tables from other tools


def _gaussian_features(rng: np.random.Generator, n: int, classes: int = 3, dim: int = 8):
    means = np.random.default_rng(7).normal(0, 3, (classes, dim))
    y = rng.integers(0, classes, n)
    return means[y] + rng.normal(0, 1, (n, dim)), y


def test_fc_only_on_three_column_features_written_by_pandas(tmp_path, runner):
    rng = np.random.default_rng(0)
    paths = {}
    for split, n in (("train", 90), ("test", 45)):
        x, y = _gaussian_features(rng, n)
        paths[split] = tmp_path / f"{split}.parquet"
        # what any other extractor writes: int64 ids, large_string ids, list<double> features
        pd.DataFrame({"video_id": [f"{split}{i}" for i in range(n)], "label_id": y, "features": list(x)}).to_parquet(
            paths[split]
        )
    assert pq.read_schema(paths["train"]).field("label_id").type == pa.int64()
    result = invoke(
        runner,
        "eval",
        "fc-only",
        "--train",
        paths["train"],
        "--test",
        paths["test"],
        "--out",
        tmp_path / "report",
        "--penalty",
        "0.01",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["test_videos"] == 45 and metrics["train_videos"] == 90 and metrics["top1"] > 0.8


def test_fc_only_on_features_with_label_names_only(tmp_path, runner):
    rng = np.random.default_rng(1)
    names = np.array(["archery", "bowling", "zumba"])
    paths = {}
    for split, n in (("train", 90), ("test", 30)):
        x, y = _gaussian_features(rng, n)
        paths[split] = tmp_path / f"{split}.parquet"
        table = pa.table(
            {
                "video_id": [f"{split}{i}" for i in range(n)],
                "label": names[y].tolist(),
                "features": pa.array(x.tolist(), pa.large_list(pa.float64())),
            }
        )
        pq.write_table(table, paths[split])
    result = invoke(
        runner,
        "eval",
        "fc-only",
        "--train",
        paths["train"],
        "--test",
        paths["test"],
        "--out",
        tmp_path / "report",
        "--penalty",
        "0.01",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    per_class = (tmp_path / "report" / "per_class.csv").read_text()
    assert "archery" in per_class and "zumba" in per_class


def test_features_need_video_id_features_and_a_label(tmp_path, runner):
    train = tmp_path / "train.parquet"
    pd.DataFrame({"video_id": ["a", "b"], "features": [[0.0, 1.0], [1.0, 0.0]]}).to_parquet(train)
    result = invoke(runner, "eval", "fc-only", "--train", train, "--test", train, "--out", tmp_path / "r")
    assert_input_error(result, "train.parquet", "missing column 'label_id' or 'label'")
    no_features = tmp_path / "nofeat.parquet"
    pd.DataFrame({"video_id": ["a"], "label_id": [0]}).to_parquet(no_features)
    result = invoke(runner, "eval", "fc-only", "--train", no_features, "--test", no_features, "--out", tmp_path / "r")
    assert_input_error(result, "nofeat.parquet", "missing column 'features'")


# ----------------------------------------------------------------------------- item 9: strict CSV / JSONL


@pytest.mark.parametrize(
    "content, problem",
    [
        ('name,notes\ndog,a\n"cat,b\ncow,c\npig",d\nhen,e\n', "unterminated quote"),  # never a merge of lines 3-5
        ("name,notes\ndog,a\ncat,b,extra\n", "3 field(s) but the header has 2"),
    ],
)
def test_labels_csv_bad_row_names_the_line(tmp_path, runner, content, problem):
    csv_file = tmp_path / "classes.csv"
    csv_file.write_text(content, encoding="utf-8")
    result = invoke(
        runner,
        "build-labels",
        "--source",
        "file",
        "--labels-file",
        csv_file,
        "--column",
        "name",
        "--out",
        tmp_path / "labels.parquet",
    )
    assert_input_error(result, "classes.csv:3", problem)
    assert not (tmp_path / "labels.parquet").exists()


def test_unterminated_quote_at_the_end_of_a_labels_csv(tmp_path):
    csv_file = tmp_path / "classes.csv"
    csv_file.write_text('name\ndog\n"cat\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"classes\.csv:3: "):
        file_labels(csv_file, column="name")


def test_match_csv_with_an_unterminated_quote_names_the_line(tmp_path, runner, cli):
    labels = labels_table(cli, tmp_path)
    # well-formed quoting, blank lines and TSV still read
    good = tmp_path / "good.csv"
    good.write_text(
        'video_id,uri,hashtags\nv1,/a.mp4,"#dog, #cat"\nv2,"/b,1.mp4",#cow\n\nv3,/c.mp4,#pig\n', encoding="utf-8"
    )
    manifest = tmp_path / "good.parquet"
    assert cli("match", "--videos", good, "--labels", labels, "--out", manifest, "--min-videos", "1").exit_code == 0
    assert sorted(pq.read_table(manifest).column("video_id").to_pylist()) == ["v1", "v2", "v3"]
    tsv = tmp_path / "good.tsv"
    tsv.write_text("video_id\turi\thashtags\nv1\t/a.mp4\t#dog\nv2\t/b.mp4\t#cat\n", encoding="utf-8")
    assert cli("match", "--videos", tsv, "--labels", labels, "--out", manifest, "--min-videos", "1").exit_code == 0
    assert pq.read_table(manifest).num_rows == 2

    videos = tmp_path / "videos.csv"
    videos.write_text(
        'video_id,uri,hashtags\nv1,/a.mp4,"#dog\nv2,/b.mp4,#cat\nv3,/c.mp4,#cow"\nv4,/d.mp4,#pig\n', encoding="utf-8"
    )
    out = tmp_path / "m" / "manifest.parquet"
    result = invoke(runner, "match", "--videos", videos, "--labels", labels, "--out", out, "--min-videos", "1")
    assert_input_error(result, "videos.csv:2", "unterminated quote")
    assert not out.exists()


def test_match_csv_ragged_row_names_the_physical_line(tmp_path, runner, cli):
    labels = labels_table(cli, tmp_path)
    videos = tmp_path / "videos.csv"
    videos.write_text("video_id,uri,hashtags\nv1,/a.mp4,#dog\n\n\nv2,/b.mp4\nv3,/c.mp4,#cow\n", encoding="utf-8")
    result = invoke(runner, "match", "--videos", videos, "--labels", labels, "--out", tmp_path / "m.parquet")
    assert_input_error(result, "videos.csv:5", "2 field(s) but the header has 3")


def test_match_csv_error_far_into_the_file(tmp_path, runner, cli):
    labels = labels_table(cli, tmp_path)
    videos = tmp_path / "videos.csv"
    rows = [f"v{i},/v/{i}.mp4,#dog" for i in range(50_000)]
    rows[40_000] = 'v40000,/v/40000.mp4,"#dog'  # beyond Arrow's first block
    write_lines(videos, ["video_id,uri,hashtags", *rows])
    result = invoke(runner, "match", "--videos", videos, "--labels", labels, "--out", tmp_path / "m.parquet")
    assert_input_error(result, "videos.csv:40002", "unterminated quote")


def test_jsonl_bad_line_names_the_line(tmp_path, runner, cli):
    labels = labels_table(cli, tmp_path)
    videos = tmp_path / "videos.jsonl"
    write_lines(
        videos,
        [
            '{"video_id": "v1", "uri": "/a", "hashtags": ["dog"]}',
            '{"video_id": "v2", "uri": "/b", "hashtags": ["cat"]}',
            '{"video_id": "v3", "uri": "/c", "hashtags": ["cow"',
            '{"video_id": "v4", "uri": "/d", "hashtags": ["pig"]}',
        ],
    )
    result = invoke(runner, "match", "--videos", videos, "--labels", labels, "--out", tmp_path / "m.parquet")
    assert_input_error(result, "videos.jsonl:3", "not valid JSON")


def test_duration_as_text_names_the_row(tmp_path, runner, cli):
    labels = labels_table(cli, tmp_path)
    videos = tmp_path / "videos.parquet"
    pq.write_table(
        pa.table(
            {
                "video_id": ["a", "b", "c"],
                "uri": ["/a", "/b", "/c"],
                "hashtags": [["dog"], ["cat"], ["cow"]],
                "duration_s": ["1.5", "2", "long"],
            }
        ),
        videos,
    )
    result = invoke(runner, "match", "--videos", videos, "--labels", labels, "--out", tmp_path / "m.parquet")
    assert_input_error(result, "videos.parquet", "row 2", "'long'")


def test_label_map_csv_is_strict(tmp_path):
    bad = tmp_path / "classes.csv"
    bad.write_text('id,key\n0,take\n1,"put\n2,open\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"classes\.csv:3: "):
        read_label_map(bad)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("id,key\n0,take\n1,put,extra\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"ragged\.csv:3: 3 field\(s\) but the header has 2"):
        read_label_map(ragged)
    not_int = tmp_path / "ids.csv"
    not_int.write_text("id,key\n0,take\none,put\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"ids\.csv:3: class id 'one' is not a whole number"):
        read_label_map(not_int)


def test_pair_counts_csv_is_strict(tmp_path, runner):
    verbs = write_lines(tmp_path / "verbs.txt", ["run", "jump"])
    counts = tmp_path / "counts.csv"
    counts.write_text('hashtag,count\nrunhorse,5\n"jumpcar,3\nrundog,7\n', encoding="utf-8")
    result = invoke(
        runner,
        "build-labels",
        "--source",
        "verb-noun",
        "--verbs",
        "file",
        "--nouns",
        "kinetics400",
        "--labels-file",
        verbs,
        "--pair-counts",
        counts,
        "--out",
        tmp_path / "vn.parquet",
    )
    assert_input_error(result, "counts.csv:3", "unterminated quote")


@pytest.mark.parametrize(
    "args, message",
    [
        (["build-labels", "--source", "kinetics400", "--max-words", "-1"], "--max-words -1: must be 0 or more"),
        (["match", "--min-videos", "-5"], "--min-videos -5: must be 0 or more"),
        (["match", "--batch-size", "0"], "--batch-size 0: must be at least 1"),
        (["match-count", "--batch-size", "-3"], "--batch-size -3: must be at least 1"),
        (["partition-videos", "--batch-size", "0"], "--batch-size 0: must be at least 1"),
    ],
)
def test_numeric_options_are_refused_before_any_work(tmp_path, runner, cli, args, message):
    labels = labels_table(cli, tmp_path)
    videos = tmp_path / "videos.csv"
    write_lines(videos, ["video_id,uri,hashtags", "v1,/a.mp4,#dog"])
    out = tmp_path / "out" / "x.parquet"
    extra = {
        "build-labels": ["--out", out],
        "match": ["--videos", videos, "--labels", labels, "--out", out],
        "match-count": ["--videos", videos, "--labels", labels, "--out", out],
        "partition-videos": ["--videos", videos, "--out", tmp_path / "out"],
    }[args[0]]
    result = invoke(runner, *args, *extra)
    assert_input_error(result, message)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- smaller defects of the issue


@pytest.fixture()
def http_folder(tmp_path):
    """A local HTTP server over ``tmp_path/www`` (port closed again after the test)."""
    import functools
    import http.server

    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_connection_refused_is_not_reported_as_file_not_found(http_folder):
    pytest.importorskip("aiohttp")
    from weaksup.video_io import StoreError, open_video_file

    root, base = http_folder
    with pytest.raises(FileNotFoundError, match="file not found"):  # a 404 is a missing file
        open_video_file(f"{base}/missing.mp4")
    refused = f"http://127.0.0.1:{closed_port()}/v.mp4"
    with pytest.raises(StoreError, match="cannot reach the store") as info:
        open_video_file(refused)
    assert "not found" not in str(info.value)
    with pytest.raises(InputError, match="cannot reach") as info:
        tables.read_table("manifest", f"http://127.0.0.1:{closed_port()}/m.parquet")
    assert "not found" not in str(info.value)
    with pytest.raises(InputError, match="file not found"):
        tables.read_table("manifest", f"{base}/m.parquet")


@pytest.mark.parametrize(
    "option, message",
    [
        (("--crf", "99"), "crf must be in 0..63"),
        (("--codec", "nosuchcodec"), "unknown codec"),
        (("--short-side", "33"), "short-side must be an even number"),
        (("--gop", "0"), "gop must be >= 1"),
    ],
)
def test_splits_materialize_checks_its_options_before_writing_anything(tmp_path, runner, option, message):
    manifest, probe = tmp_path / "m.parquet", tmp_path / "p.parquet"
    tables.write_table(
        "manifest",
        {
            "video_id": ["a"],
            "uri": ["/x/a.mp4"],
            "label_id": pa.array([0], pa.int32()),
            "label": ["dog"],
            "matched_label_ids": pa.array([[0]], pa.list_(pa.int32())),
            "duration_s": [3.0],
        },
        manifest,
    )
    out = tmp_path / "clips.parquet"
    result = invoke(
        runner,
        "splits",
        "--manifest",
        manifest,
        "--probe",
        probe,
        "--kind",
        "short",
        "--out",
        out,
        "--materialize",
        tmp_path / "cut",
        *option,
    )
    assert_input_error(result, message)
    assert not out.exists() and not (tmp_path / "cut").exists()


def test_raw_pickle_checkpoint_is_one_line_without_torch_warnings(tmp_path):
    import pickle
    import subprocess
    import sys

    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps({"model": {"w": [1, 2]}}, protocol=4))
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from weaksup.cli.main import main; main()",
            "convert-weights",
            "--src",
            str(raw),
            "--dst",
            str(tmp_path / "o.safetensors"),
            "--arch",
            "r2plus1d_10",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "holds Python objects" in lines[0] and "weights_only" in lines[0] and str(raw) in lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ("sample", "--manifest", "{fifo}", "--strategy", "random", "--size", "2", "--out", "{tmp}/s.parquet"),
        ("pretrain", "--manifest={fifo}", "--out", "{tmp}/run", "--preset", "tiny"),
        ("eval", "fc-only", "--train", "{fifo}", "--test", "{fifo}", "--out", "{tmp}/r"),
        ("match", "--videos", "{tmp}/v.csv", "--labels", "{tmp}/l.parquet", "--out", "{fifo}"),
    ],
)
def test_no_command_opens_a_fifo_argument(tmp_path, runner, args):
    """The census found `sample --manifest FIFO` and `pretrain --manifest FIFO` blocked for ever in
    pyarrow's open; the command group now refuses special files among all arguments first."""
    fifo = tmp_path / "pipe"
    with fifo_unblocker(fifo) as opened:
        result = invoke(runner, *(a.format(fifo=fifo, tmp=tmp_path) for a in args))
    assert_input_error(result, str(fifo), "is a FIFO")
    assert not opened


def test_special_file_guard_ignores_ordinary_values(tmp_path):
    from weaksup.cli.common import special_file_argument

    (tmp_path / "f.parquet").write_bytes(b"x")
    assert (
        special_file_argument(
            ["--out", str(tmp_path), str(tmp_path / "f.parquet"), "--seed", "3", "s3://b/k", "--size=10", ""]
        )
        is None
    )
    assert (
        special_file_argument(["--labels-file=/dev/zero"])
        == "/dev/zero: is a character device, not a regular file or folder"
    )
