"""``extract --engine ray``: the actors write the parts, the driver only plans and commits.

One local Ray instance (2 CPUs) serves the module; each job joins it. Monkeypatching in
this process reaches the driver only: Ray's workers are other processes that import
``weaksup.eval.extract`` afresh. Skipped when Ray Data is not installed.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from weaksup.bulk import StaleResumeWarning
from weaksup.errors import InputError
from weaksup.eval import extract as extract_mod
from weaksup.eval.extract import ExtractConfig, extract_features
from weaksup.synth.video import write_test_video
from weaksup.tables import write_table

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytestmark = pytest.mark.usefixtures("local_ray")

TINY = dict(arch="r2plus1d_10", num_clips=2, chunk_videos=2, frames=4, crop=32, short_side=40, progress=False)
VECTORS = ["features", "clip_features", "scores", "clip_scores"]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six rows in three chunks of two: five tiny videos and a corrupt file (in the last chunk)."""
    d = tmp_path_factory.mktemp("extract_ray")
    uris = [str(write_test_video(d / f"v{i}.mp4", seconds=1.0 + 0.5 * i, seed=i)) for i in range(5)]
    (d / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    ids = [f"v{i}" for i in range(5)] + ["corrupt"]
    uris.append(str(d / "corrupt.mp4"))
    path = d / "manifest.parquet"
    write_table(
        "manifest",
        {
            "video_id": ids,
            "uri": uris,
            "label_id": [i % 2 for i in range(6)],
            "label": ["ab"[i % 2] for i in range(6)],
            "matched_label_ids": [[i % 2] for i in range(6)],
            "duration_s": [2.0] * 6,
        },
        path,
    )
    pq.write_table(pq.read_table(path), path, row_group_size=3)  # row groups across chunk boundaries
    return path


def _parts(out: Path) -> dict[str, tuple[int, int]]:
    """The parts beside ``out`` by name, with what tells a rewritten file (inode, mtime)."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.with_name(out.name + ".parts").glob("part-*")}


def _stop_before_commit(*args, **kwargs):
    raise KeyboardInterrupt  # killed after the last part, before the final table


def test_ray_actors_write_the_parts_and_a_rerun_redoes_only_the_missing_chunk(manifest, tmp_path, monkeypatch):
    reference = tmp_path / "local.parquet"
    extract_features(manifest, reference, checkpoint=None, cfg=ExtractConfig(workers=0, **TINY))
    out = tmp_path / "feats.parquet"

    # an earlier local run with other weights, killed before its commit: three parts of another job
    with monkeypatch.context() as patch:
        patch.setattr(extract_mod, "_assemble_features", _stop_before_commit)
        with pytest.raises(KeyboardInterrupt):
            extract_features(manifest, out, checkpoint=None, cfg=ExtractConfig(workers=0, seed=1, **TINY))
    old = _parts(out)
    assert sorted(old) == [f"part-{c:06d}.parquet" for c in range(3)]

    def driver_must_not(what: str):
        def fail(*args, **kwargs):
            raise AssertionError(f"the Ray driver {what}")

        return fail

    # the driver never writes a part nor reads the table's rows (the actors' own copies of the module do)
    monkeypatch.setattr(extract_mod, "_write_part", driver_must_not("wrote a part"))
    monkeypatch.setattr(extract_mod, "_prepare", driver_must_not("read the rows"))
    cfg = ExtractConfig(workers=1, engine="ray", **TINY)  # one actor: the chunks queue on it

    # strict: refused by the driver's streamed check before anything changes
    with pytest.raises(InputError, match=r"3 of 3 chunks of an earlier run do not belong .*settings changed: weights"):
        extract_features(manifest, out, checkpoint=None, cfg=cfg, resume_strict=True)
    assert _parts(out) == old

    # not strict: the actors recompute every stale part, one warning; stop before the commit again
    with monkeypatch.context() as patch, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        patch.setattr(extract_mod, "_assemble_features", _stop_before_commit)
        patch.setattr(extract_mod, "read_rows", driver_must_not("read the rows"))
        with pytest.raises(KeyboardInterrupt):
            extract_features(manifest, out, checkpoint=None, cfg=cfg)
    stale = [str(w.message) for w in caught if issubclass(w.category, StaleResumeWarning)]
    assert len(stale) == 1 and "3 of 3 chunks of an earlier run were stale and are recomputed" in stale[0]
    assert "settings changed: weights" in stale[0]
    new = _parts(out)
    assert sorted(new) == sorted(old) and all(new[n] != old[n] for n in new)  # all three rewritten

    # one part lost: a strict rerun (the driver's digests agree with the actors' stamps) redoes that chunk only
    lost = "part-000001.parquet"
    out.with_name(out.name + ".parts").joinpath(lost).unlink()
    seen: dict[str, tuple[int, int]] = {}
    commit = extract_mod._assemble_features

    def spy(parts, *args):
        seen.update(_parts(out))
        return commit(parts, *args)

    monkeypatch.setattr(extract_mod, "_assemble_features", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleResumeWarning)
        summary = extract_features(manifest, out, checkpoint=None, cfg=cfg, resume_strict=True)
    assert summary["chunks_resumed"] == 2
    assert summary["clips_this_run"] == 4 and summary["clips_failed"] == 0  # chunk 1: two videos, two clips each
    assert summary["ok"] == 5 and summary["rejected"] == 1
    assert {n: seen[n] for n in new if n != lost} == {n: v for n, v in new.items() if n != lost}
    assert lost in seen
    assert not out.with_name(out.name + ".parts").exists()

    local, on_ray = pq.read_table(reference), pq.read_table(out)
    assert on_ray.drop_columns(VECTORS).equals(local.drop_columns(VECTORS))
    for col in ("features", "clip_features"):
        a, b = local.column(col).to_pylist()[:5], on_ray.column(col).to_pylist()[:5]
        np.testing.assert_allclose(np.array(b, np.float64), np.array(a, np.float64), rtol=1e-4, atol=1e-6)
    assert pq.read_schema(out).metadata == pq.read_schema(reference).metadata
    assert pq.read_schema(out).equals(pq.read_schema(reference))


def test_ray_driver_checks_the_footer_and_the_actors_the_values(manifest, tmp_path):
    """A missing column is found from the footer (the local engine's message); no rows is
    found there too. Bad values are found by the actors, one line, as InputError."""
    cfg = ExtractConfig(workers=1, engine="ray", **TINY)
    table = pq.read_table(manifest)
    no_uri = tmp_path / "no_uri.parquet"
    pq.write_table(table.drop_columns(["uri"]), no_uri)
    messages = []
    for engine_cfg in (ExtractConfig(workers=0, **TINY), cfg):
        with pytest.raises(InputError, match="missing column 'uri'") as err:
            extract_features(no_uri, tmp_path / "a.parquet", checkpoint=None, cfg=engine_cfg)
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    empty = tmp_path / "empty.parquet"
    pq.write_table(table.slice(0, 0), empty)
    with pytest.raises(InputError, match="the table has no rows"):
        extract_features(empty, tmp_path / "b.parquet", checkpoint=None, cfg=cfg)

    null_label = tmp_path / "null_label.parquet"
    labels = pa.array([0, None, 0, 1, 0, 1], pa.int64())
    pq.write_table(table.set_column(table.schema.get_field_index("label_id"), "label_id", labels), null_label)
    messages = []
    for engine_cfg in (ExtractConfig(workers=0, **TINY), cfg):
        with pytest.raises(InputError) as err:
            extract_features(null_label, tmp_path / "c.parquet", checkpoint=None, cfg=engine_cfg)
        messages.append(str(err.value))
    assert messages[1] == messages[0].replace(": column", " (rows 0..1): column")  # the actor names the rows
    assert "\n" not in messages[1]
