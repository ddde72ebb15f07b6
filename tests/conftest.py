"""Shared fixtures and helpers for the label-space tests.

Real public label files and NLTK corpora live in ``../shared/data`` beside the clone
(see its README.md); tests that need them take the ``shared_data`` fixture and skip
cleanly when that folder is absent. Nothing from it is copied into the repository.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Iterable

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``<repo>/../shared/data``; skips the test when it is not there."""
    path = REPO_ROOT.parent / "shared" / "data"
    if not (path / "labels").is_dir():
        pytest.skip(f"shared real data not found at {path} (CI has it beside the clone)")
    return path


@pytest.fixture(scope="session")
def nltk_data(shared_data: Path) -> Path:
    """The shared NLTK data folder with VerbNet 2.1 and 3.3; skips when absent."""
    path = shared_data / "nltk_data"
    for name in ("verbnet.zip", "verbnet3.zip"):
        if not (path / "corpora" / name).is_file():
            pytest.skip(f"{path / 'corpora' / name} not found")
    return path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def cli(runner: CliRunner):
    """Invoke ``weaksup ARGS...`` in-process; returns click's Result."""
    from weaksup.cli.main import app

    def invoke(*args: object):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


def stderr_of(result) -> str:
    """stderr of a CliRunner result (click >= 8.2 keeps it apart; older click mixes it in)."""
    try:
        return result.stderr
    except ValueError:  # click < 8.2 with mixed output
        return result.output


def assert_input_error(result, *needles: str) -> str:
    """Exit code 2 and exactly one stderr line, ``weaksup: error: ...``, containing every needle."""
    err = stderr_of(result)
    assert result.exit_code == 2, f"exit {result.exit_code}, output: {result.output!r}"
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got {lines!r}"
    line = lines[0]
    assert line.startswith("weaksup: error: "), line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    assert "Traceback" not in result.output
    return line


def write_lines(path: Path, lines: Iterable[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def rows(path: Path | str) -> list[dict]:
    return pq.read_table(path).to_pylist()


def outputs(out: Path) -> tuple[Path, Path, Path]:
    """hashtag_index, collisions and summary paths that build-labels writes beside ``out``."""
    from weaksup.labels.build import sibling_paths

    return sibling_paths(out)


def write_clip(
    path: Path, degrees: int | None = None, codec: str = "libx264", container_options: dict | None = None
) -> Path:
    """A 5-frame 10 fps 64x48 clip, optionally with a display rotation or muxer options."""
    with av.open(str(path), "w", options=container_options or {}) as c:
        s = c.add_stream(codec, rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        if degrees is not None:
            s.set_display_rotation(degrees)
        for _ in range(5):
            for p in s.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def pretrain_app():
    """``weaksup pretrain`` as a one-command Typer app (what ``python -m weaksup.train`` runs)."""
    import typer

    from weaksup.cli.pretrain import pretrain

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(pretrain)
    return app


@pytest.fixture(scope="module")
def s3_bucket() -> str:
    """A bucket on a moto S3 server on localhost; skipped without moto[server] and s3fs."""
    import socket
    import uuid

    pytest.importorskip("s3fs")
    import fsspec

    moto_server = pytest.importorskip("moto.server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    patch = pytest.MonkeyPatch()
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        patch.setenv(key, value)
    # fsspec's configuration, the way a user points s3:// at MinIO or another endpoint.
    patch.setitem(
        fsspec.config.conf, "s3", {"client_kwargs": {"endpoint_url": endpoint}, "key": "testing", "secret": "testing"}
    )
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    bucket = f"weaksup-{uuid.uuid4().hex[:8]}"
    fsspec.filesystem("s3").mkdir(bucket)
    try:
        yield f"s3://{bucket}"
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        patch.undo()
        server.stop()


@pytest.fixture(scope="module")
def local_ray():
    """One private local Ray (2 CPUs) for a test module; its jobs join it instead of starting
    their own. ``address="local"``: never a cluster that another test or user runs here."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
    gc.collect()  # Ray's garbage goes here, not in a process forked later (a gRPC client freed there segfaults)
