"""dedupe: exact Hamming index, temporal alignment, the dedupe run on synthetic code tables, CLI, real videos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from conftest import assert_input_error
from typer.testing import CliRunner

from weaksup.cli import dedupe as dedupe_cli
from weaksup.dedupe import dedupe as dedupe_mod
from weaksup.dedupe import search as search_mod
from weaksup.dedupe.align import AlignConfig, align
from weaksup.dedupe.census import CODE_VERSION, mirror_codes
from weaksup.dedupe.dedupe import DedupeConfig, dedupe_manifest, output_paths
from weaksup.dedupe.search import HammingIndex, brute_force
from weaksup.tables import load_schema, read_table, write_table

REAL_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
FPS = 16.0
CODES = pa.list_(pa.uint64())


# ---------------------------------------------------------------------------- synthetic codes


def rand_codes(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 2**64, n, dtype=np.uint64)


def flip_masks(rng: np.random.Generator, n: int, bits: int) -> np.ndarray:
    """n masks of exactly ``bits`` distinct set bits."""
    if bits == 0:
        return np.zeros(n, np.uint64)
    which = np.argsort(rng.random((n, 64)), axis=1)[:, :bits].astype(np.uint64)
    return np.bitwise_or.reduce(np.uint64(1) << which, axis=1)


def noisy(rng: np.random.Generator, codes: np.ndarray, bits: int = 2) -> np.ndarray:
    """A re-encoded copy: every code with ``bits`` random bits flipped."""
    return codes ^ flip_masks(rng, len(codes), bits)


def walk(rng: np.random.Generator, n: int, step: int = 3) -> np.ndarray:
    """Codes of a video: each frame flips ``step`` bits of the previous one (frames change slowly)."""
    return np.bitwise_xor.accumulate(flip_masks(rng, n, step)) ^ rand_codes(rng, 1)[0]


def code_row(
    rng: np.random.Generator,
    vid: str,
    codes: np.ndarray | None,
    *,
    crop10: np.ndarray | None = None,
    crop20: np.ndarray | None = None,
    informative: np.ndarray | None = None,
    status: str = "ok",
    version: int = CODE_VERSION,
    fps: float = FPS,
) -> dict:
    """One codes-table row; crop variants default to unrelated walks (a crop looks different)."""
    if codes is None:
        return {
            "video_id": vid,
            "uri": f"/v/{vid}.mp4",
            "status": status,
            "error": "x",
            "code_version": version,
            "fps": fps,
            "duration_s": None,
            "codes": None,
            "codes_crop10": None,
            "codes_crop20": None,
            "informative": None,
        }
    n = len(codes)
    return {
        "video_id": vid,
        "uri": f"/v/{vid}.mp4",
        "status": status,
        "error": None,
        "code_version": version,
        "fps": fps,
        "duration_s": n / fps,
        "codes": codes,
        "codes_crop10": walk(rng, n) if crop10 is None else crop10,
        "codes_crop20": walk(rng, n) if crop20 is None else crop20,
        "informative": np.ones(n, bool) if informative is None else informative,
    }


def write_codes(path: Path, rows: list[dict]) -> Path:
    def lists(name: str, typ: pa.DataType) -> pa.Array:
        return pa.array([None if r[name] is None else np.asarray(r[name]).tolist() for r in rows], typ)

    cols = {
        k: [r[k] for r in rows] for k in ("video_id", "uri", "status", "error", "code_version", "fps", "duration_s")
    }
    cols.update({c: lists(c, CODES) for c in ("codes", "codes_crop10", "codes_crop20")})
    cols["informative"] = lists("informative", pa.list_(pa.bool_()))
    write_table("codes", cols, path)
    return path


def write_manifest(path: Path, ids: list[str], *, drop: str | None = None) -> Path:
    cols = {
        "video_id": ids,
        "uri": [f"/v/{v}.mp4" for v in ids],
        "label_id": list(range(len(ids))),
        "label": [f"label{i}" for i in range(len(ids))],
        "matched_label_ids": [[i] for i in range(len(ids))],
        "duration_s": [1.0] * len(ids),
    }
    if drop is None:
        write_table("manifest", cols, path)
    else:
        del cols[drop]
        pq.write_table(pa.table(cols), path)
    return path


def by_pair(report: Path) -> dict[tuple[str, str], dict]:
    return {(r["source_video_id"], r["target_video_id"]): r for r in pq.read_table(report).to_pylist()}


# ---------------------------------------------------------------------------- search


@pytest.mark.parametrize("substrings", [4, 3])
@pytest.mark.parametrize("radius", [0, 3, 7, 9])
def test_index_equals_brute_force(substrings: int, radius: int) -> None:
    rng = np.random.default_rng(radius * 10 + substrings)
    codes = rand_codes(rng, 20_000)
    queries = rand_codes(rng, 400)
    # planted neighbours at every distance 0..radius+1, several targets each
    planted = np.concatenate([codes[k * 50 : k * 50 + 5] ^ flip_masks(rng, 5, k) for k in range(radius + 2)])
    q = np.concatenate([queries, planted, planted[:3]])  # repeated queries too
    got = HammingIndex(substrings).build(codes).query(q, radius)
    want = brute_force(q, codes, radius)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    hits = set(zip(got[0].tolist(), got[1].tolist()))
    for k in range(radius + 2):  # planted ones found exactly up to the radius
        for j in range(5):
            pair = (len(queries) + k * 5 + j, k * 50 + j)
            assert (pair in hits) == (k <= radius)


def test_index_sweep_and_chunking_paths_are_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """Probing in value order and tiny query chunks give the same answer (large-index paths)."""
    rng = np.random.default_rng(5)
    codes = np.concatenate([rand_codes(rng, 5000), np.full(50, 12345, np.uint64)])  # a crowded bucket too
    q = np.concatenate([noisy(rng, codes[::37], 3), rand_codes(rng, 200), np.array([12345], np.uint64)])
    monkeypatch.setattr(search_mod, "SWEEP_BYTES", 0)
    monkeypatch.setattr(search_mod, "CANDIDATE_BUDGET", 256)
    got = HammingIndex().build(codes).query(q, 7)
    for g, w in zip(got, brute_force(q, codes, 7)):
        np.testing.assert_array_equal(g, w)


def test_index_edge_cases() -> None:
    idx = HammingIndex().build(np.empty(0, np.uint64))
    assert all(len(a) == 0 for a in idx.query(np.arange(5, dtype=np.uint64), 7))
    idx = HammingIndex().build(np.array([0, 2**64 - 1], np.uint64))
    qi, ti, d = idx.query(np.array([1, 2**64 - 1], np.uint64), 7)
    assert list(zip(qi, ti, d)) == [(0, 0, 1), (1, 1, 0)]
    assert all(len(a) == 0 for a in idx.query(np.array([1], np.uint64), -1))
    with pytest.raises(ValueError):
        HammingIndex(1)


# ---------------------------------------------------------------------------- align


def matched(source: np.ndarray, target: np.ndarray, radius: int = 7):
    qi, ti, _ = HammingIndex().build(target).query(source, radius)
    return qi, ti


def run_align(source: np.ndarray, target: np.ndarray, **kw):
    qi, ti, d = HammingIndex().build(target).query(source, 7)
    return align(qi, ti, n_source=len(source), n_target=len(target), fps=FPS, distances=d, **kw)


def test_align_exact_copy() -> None:
    rng = np.random.default_rng(1)
    t = walk(rng, 64)
    a = run_align(noisy(rng, t), t)
    assert (a.matched_frames, a.overlap_source, a.overlap_target, a.offset_s, a.speed) == (64, 100.0, 100.0, 0.0, 1.0)


@pytest.mark.parametrize("start_s", [0, 1, 3])
def test_align_one_second_cut_of_four_seconds(start_s: int) -> None:
    rng = np.random.default_rng(2)
    t = walk(rng, 64)
    a = run_align(noisy(rng, t[16 * start_s : 16 * (start_s + 1)]), t)
    assert a.overlap_source == 100.0
    assert a.overlap_target == 25.0
    assert a.offset_s == start_s


def test_align_copy_embedded_in_long_source() -> None:
    rng = np.random.default_rng(3)
    target = walk(rng, 80)  # 5 s
    source = walk(rng, 960)  # 60 s
    source[320:400] = noisy(rng, target)  # at 20 s
    a = run_align(source, target)
    assert a.overlap_source == pytest.approx(100 * 80 / 960)  # 8.3%
    assert a.overlap_target == 100.0
    assert a.offset_s == -20.0  # target time minus source time
    assert (a.source_first, a.source_last) == (320, 399)


@pytest.mark.parametrize(("speed", "n"), [(1.1, 480), (0.9, 480), (1.055, 1920)])
def test_align_speed_change(speed: float, n: int) -> None:
    """+-10% re-timed copies align; 2 min at an off-grid speed drifts 4+ frames off the grid line: refined."""
    rng = np.random.default_rng(4)
    t = walk(rng, n)
    idx = np.round(np.arange(int(n / speed)) * speed).astype(int).clip(0, n - 1)
    a = run_align(noisy(rng, t[idx]), t)
    assert a.speed == pytest.approx(speed, abs=0.003)
    assert a.matched_frames == len(idx)
    assert a.overlap_source == 100.0
    assert a.overlap_target >= 99.0


def test_align_hard_negative_segments_of_one_video() -> None:
    rng = np.random.default_rng(5)
    long = walk(rng, 800)
    qi, ti = matched(long[:160], long[320:480])
    a = align(qi, ti, n_source=160, n_target=160, fps=FPS) if len(qi) else None
    assert a is None or a.matched_frames < 8


def test_align_flat_frames_never_vote_and_do_not_lower_overlap() -> None:
    rng = np.random.default_rng(6)
    t = walk(rng, 64)
    s = noisy(rng, t)
    flat = np.ones(64, bool)
    flat[20:30] = False  # a fade inside the copy
    s[20:30] = 0
    t_flat = t.copy()
    t_flat[20:30] = 0
    qi, ti = matched(s, t_flat)
    assert ((qi >= 20) & (qi < 30)).any()  # the flat frames do match each other...
    a = align(qi, ti, n_source=64, n_target=64, fps=FPS, source_informative=flat, target_informative=flat)
    assert a.matched_frames == 54  # ...but never vote
    assert a.overlap_source == 100.0 and a.overlap_target == 100.0  # and the span covers the fade
    all_flat = np.zeros(64, bool)
    assert align(qi, ti, n_source=64, n_target=64, fps=FPS, source_informative=all_flat) is None


def test_align_lookalike_blob_is_not_a_copy() -> None:
    """Many source frames meeting the same few target frames (similar scenes) is no alignment line."""
    src = np.repeat(np.arange(12), 3)
    tgt = np.tile([30, 31, 32], 12)
    a = align(src, tgt, n_source=12, n_target=64, fps=FPS)
    assert a.matched_frames >= 8 and a.target_frames == 3
    assert not a.consistent(AlignConfig())
    static_copy = align(src, src + 30, n_source=12, n_target=64, fps=FPS)  # a copy of a still shot walks the line
    assert static_copy.span_ratio == 1.0 and static_copy.consistent(AlignConfig())


def test_align_sparse_scattered_matches_cover_nothing() -> None:
    src = np.arange(0, 960, 60)  # one lucky frame every ~4 s on one line
    a = align(src, src + 5, n_source=960, n_target=960, fps=FPS)
    assert a.matched_frames == 16
    assert a.overlap_source == 0.0 and a.overlap_target == 0.0
    # dense enough (>= 30% of the span) counts, gaps and all
    src = np.arange(0, 160, 3)
    a = align(src, src, n_source=160, n_target=160, fps=FPS, config=AlignConfig(max_gap=16))
    assert a.overlap_source == 100.0  # 0..159


# ---------------------------------------------------------------------------- the dedupe run


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Targets (a benchmark) and a manifest with every kind of copy, negative and odd row."""
    d = tmp_path_factory.mktemp("dedupe")
    rng = np.random.default_rng(42)
    t_clip = walk(rng, 64)  # 4 s
    t_embed = walk(rng, 80)  # 5 s
    t_crop_full, t_crop10 = walk(rng, 96), walk(rng, 96)
    t_long = walk(rng, 800)
    t_mirror = walk(rng, 64)
    t_speed = walk(rng, 160)
    t_still = walk(rng, 64)
    t_still[30:34] = t_still[30]  # a still shot of 4 frames
    targets = [
        code_row(rng, "t_clip", t_clip),
        code_row(rng, "t_embed", t_embed),
        code_row(rng, "t_crop", t_crop_full, crop10=t_crop10),
        code_row(rng, "t_long", t_long[:160]),  # the benchmark has the first 10 s of a long video
        code_row(rng, "t_mirror", t_mirror),
        code_row(rng, "t_speed", t_speed),
        code_row(rng, "t_still", t_still),
        code_row(rng, "t_flat", t_clip.copy() ^ np.uint64(1), informative=np.zeros(64, bool)),
        code_row(rng, "t_rejected", None, status="rejected"),
    ]
    embed_host = walk(rng, 960)
    embed_host[320:400] = noisy(rng, t_embed)
    speed_idx = np.round(np.arange(145) * 1.1).astype(int).clip(0, 159)
    flat_source = noisy(rng, t_clip)
    sources = {
        "copy": noisy(rng, t_clip),  # re-encode: 100%
        "cut": noisy(rng, t_clip[16:32]),  # 1 s of the 4 s target
        "embed": embed_host,  # 5 s copy at 20 s of 60 s: 8.3%
        "cropped": noisy(rng, t_crop10),  # a 10% crop of t_crop meets its crop10 codes
        "mirrored": noisy(rng, mirror_codes(t_mirror)),  # a flipped copy
        "speedup": noisy(rng, t_speed[speed_idx]),  # played 10% faster
        "short": noisy(rng, t_clip[:6]),  # 6 frames < min_frames
        "hardneg": t_long[320:480],  # same long video, another segment
        "unrelated1": walk(rng, 200),
        "unrelated2": rand_codes(rng, 100),
        "flat": flat_source,  # same codes as a copy, but all frames flat
        "lookalike": noisy(rng, np.repeat(t_still[30], 10)),  # 10 frames like 4 target frames: a blob, no line
    }
    rows = [code_row(rng, k, v) for k, v in sources.items()]
    rows[list(sources).index("flat")]["informative"] = np.zeros(len(flat_source), bool)
    rows += [
        code_row(rng, "rejected", None, status="rejected"),
        code_row(rng, "unfp", None, status="unfingerprintable"),
    ]
    ids = [r["video_id"] for r in rows]
    return {
        "dir": d,
        "targets": write_codes(d / "targets.parquet", targets),
        "source_codes": write_codes(d / "sources.parquet", rows),
        "manifest": write_manifest(d / "manifest.parquet", ids),
        "ids": ids,
    }


def run_dedupe(corpus: dict, name: str, **kw) -> tuple[dict, Path, Path]:
    d = corpus["dir"]
    cfg = DedupeConfig(
        manifest=corpus["manifest"],
        targets=kw.pop("targets", corpus["targets"]),
        source_codes=corpus["source_codes"],
        out=d / f"{name}.parquet",
        report=d / f"{name}.overlaps.parquet",
        progress=False,
        **kw,
    )
    return dedupe_manifest(cfg), cfg.out, cfg.report


@pytest.fixture(scope="module")
def default_run(corpus: dict) -> tuple[dict, Path, Path]:
    return run_dedupe(corpus, "clean")


def test_dedupe_finds_every_copy_kind(default_run: tuple[dict, Path, Path]) -> None:
    summary, out, report = default_run
    rows = by_pair(report)
    assert set(rows) == {
        ("copy", "t_clip"),
        ("cut", "t_clip"),
        ("embed", "t_embed"),
        ("cropped", "t_crop"),
        ("mirrored", "t_mirror"),
        ("speedup", "t_speed"),
    }
    r = rows[("copy", "t_clip")]
    assert (r["overlap_source"], r["overlap_target"], r["offset_s"], r["matched_frames"]) == (100.0, 100.0, 0.0, 64)
    assert (r["variant"], r["mirrored"], r["removed"]) == ("full", False, True)
    r = rows[("cut", "t_clip")]
    assert (r["overlap_source"], r["overlap_target"], r["offset_s"]) == (100.0, 25.0, 1.0)
    r = rows[("embed", "t_embed")]
    assert r["overlap_source"] == pytest.approx(8.333, abs=0.001) and r["overlap_target"] == 100.0
    assert r["offset_s"] == -20.0 and r["removed"]
    assert (rows[("cropped", "t_crop")]["variant"], rows[("cropped", "t_crop")]["mirrored"]) == ("crop10", False)
    assert (rows[("mirrored", "t_mirror")]["variant"], rows[("mirrored", "t_mirror")]["mirrored"]) == ("full", True)
    assert rows[("speedup", "t_speed")]["overlap_source"] == 100.0
    assert all(not r["mirrored"] for k, r in rows.items() if k[0] != "mirrored")
    validated = read_table("overlaps", report)
    assert validated.schema.names[: len(load_schema("overlaps").names)] == load_schema("overlaps").names


def test_dedupe_outputs_and_accounting(corpus: dict, default_run: tuple[dict, Path, Path]) -> None:
    summary, out, report = default_run
    removed_path, summary_path, _, _ = output_paths(out)
    removed = {"copy", "cut", "embed", "cropped", "mirrored", "speedup"}
    clean = read_table("manifest", out)
    gone = read_table("manifest", removed_path)
    assert clean.column("video_id").to_pylist() == [v for v in corpus["ids"] if v not in removed]
    assert sorted(gone.column("video_id").to_pylist()) == sorted(removed)
    assert clean.num_rows + gone.num_rows == len(corpus["ids"])
    manifest = read_table("manifest", corpus["manifest"])
    assert clean.schema.names == manifest.schema.names  # same schema as the input
    ev = {r["video_id"]: r for r in gone.to_pylist()}
    assert ev["embed"]["target_video_id"] == "t_embed" and ev["embed"]["offset_s"] == -20.0
    assert ev["cropped"]["variant"] == "crop10" and ev["mirrored"]["mirrored"]
    assert json.loads(summary_path.read_text()) == summary
    assert summary["sources"] == len(corpus["ids"])
    assert (summary["sources_rejected"], summary["sources_unfingerprintable"]) == (
        1,
        2,
    )  # flat counts as unfingerprintable
    assert summary["sources_fingerprinted"] == len(corpus["ids"]) - 3
    assert (summary["targets"], summary["targets_rejected"], summary["targets_unfingerprintable"]) == (9, 1, 1)
    assert (summary["reported_pairs"], summary["removed"], summary["kept"]) == (6, 6, len(corpus["ids"]) - 6)
    assert summary["reported_by_variant"] == {"full": 5, "crop10": 1, "crop20": 0}
    assert summary["reported_mirrored"] == 1 and summary["removed_mirrored"] == 1
    assert (summary["threshold_pct"], summary["radius_bits"], summary["min_frames"]) == (1.0, 7, 8)
    assert summary["self_dedupe"] is False and summary["candidate_pairs"] >= 7  # the look-alike aligned, not reported


def test_lookalike_blob_needs_the_line_gate(corpus: dict) -> None:
    _, _, report = run_dedupe(corpus, "noline", align=AlignConfig(min_span_ratio=0.0))
    assert ("lookalike", "t_still") in by_pair(report)  # without the gate it would be removed


def test_removal_threshold_and_min_frames(corpus: dict) -> None:
    summary, out, report = run_dedupe(corpus, "strict", threshold=10.0, min_frames=4)
    rows = by_pair(report)
    assert rows[("embed", "t_embed")]["removed"] is False  # 8.3% < 10%: reported, kept
    assert rows[("short", "t_clip")]["matched_frames"] == 6  # reported once min_frames allows it
    kept = read_table("manifest", out).column("video_id").to_pylist()
    assert "embed" in kept and "short" not in kept
    summary, _, report = run_dedupe(corpus, "lenient", threshold=0.0)
    assert all(r["removed"] for r in by_pair(report).values())


def test_self_dedupe_keeps_one_of_each_group(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    a = walk(rng, 320)  # 20 s
    x_full, x_crop10 = walk(rng, 96), walk(rng, 96)
    rows = [
        code_row(rng, "y_crop_of_x", noisy(rng, x_crop10)),  # first in the manifest, same length as x
        code_row(rng, "a_long", a),
        code_row(rng, "b_part_of_a", noisy(rng, a[80:160])),
        code_row(rng, "c_copy_of_b", noisy(rng, a[80:160])),
        code_row(rng, "x", x_full, crop10=x_crop10),
        code_row(rng, "d_unrelated", walk(rng, 100)),
    ]
    ids = [r["video_id"] for r in rows]
    codes = write_codes(tmp_path / "codes.parquet", rows)
    manifest = write_manifest(tmp_path / "manifest.parquet", ids)
    cfg = DedupeConfig(
        manifest=manifest,
        source_codes=codes,
        self_dedupe=True,
        out=tmp_path / "clean.parquet",
        report=tmp_path / "overlaps.parquet",
        progress=False,
    )
    summary = dedupe_manifest(cfg)
    rows_ = by_pair(cfg.report)
    assert all(s != t for s, t in rows_)  # never a video with itself
    assert ("b_part_of_a", "a_long") in rows_ and ("a_long", "b_part_of_a") in rows_  # both directions
    assert rows_[("b_part_of_a", "a_long")]["overlap_source"] == 100.0
    assert rows_[("a_long", "b_part_of_a")]["overlap_source"] == 25.0
    assert rows_[("b_part_of_a", "a_long")]["removed"] and not rows_[("a_long", "b_part_of_a")]["removed"]
    # y is a crop of x: only y's full codes meet x's crop10 codes (y -> x); y comes first, so
    # y is kept and x goes, on the evidence of the reverse row
    assert ("y_crop_of_x", "x") in rows_ and ("x", "y_crop_of_x") not in rows_
    kept = read_table("manifest", cfg.out).column("video_id").to_pylist()
    assert kept == ["y_crop_of_x", "a_long", "d_unrelated"]
    gone = {r["video_id"]: r for r in read_table("manifest", output_paths(cfg.out)[0]).to_pylist()}
    assert set(gone) == {"b_part_of_a", "c_copy_of_b", "x"}
    assert gone["x"]["target_video_id"] == "y_crop_of_x" and gone["x"]["overlap_source"] == 100.0
    assert gone["b_part_of_a"]["target_video_id"] == "a_long"
    assert summary["self_dedupe"] and summary["removed"] == 3

    # targets == the manifest's own codes is self-dedupe too
    cfg2 = DedupeConfig(
        manifest=manifest,
        source_codes=codes,
        targets=codes,
        out=tmp_path / "clean2.parquet",
        report=tmp_path / "overlaps2.parquet",
        progress=False,
    )
    assert dedupe_manifest(cfg2)["self_dedupe"]
    assert read_table("manifest", cfg2.out).column("video_id").to_pylist() == kept


def test_sources_processed_in_chunks_give_the_same_report(corpus: dict, default_run: tuple[dict, Path, Path]) -> None:
    _, _, report = run_dedupe(corpus, "chunked", chunk_size=2)
    assert pq.read_table(report).equals(pq.read_table(default_run[2]))


def test_the_manifest_is_streamed_in_batches_to_the_same_outputs(
    corpus: dict, default_run: tuple[dict, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver checks and writes the manifest batch by batch (it holds only the ids):
    batches of 2 rows give the same cleaned and removed tables as one batch."""
    from weaksup.dedupe import dedupe as dedupe_mod

    monkeypatch.setattr(dedupe_mod, "MANIFEST_BATCH", 2)
    summary, out, _ = run_dedupe(corpus, "batched")
    for a, b in [(out, default_run[1]), (dedupe_mod.output_paths(out)[0], dedupe_mod.output_paths(default_run[1])[0])]:
        assert pq.read_table(a).equals(pq.read_table(b)) and pq.read_metadata(a).num_rows > 0
    assert summary["removed"] == default_run[0]["removed"] > 0


# ---------------------------------------------------------------------------- CLI and bad input


@pytest.fixture
def cli_app() -> typer.Typer:
    app = typer.Typer()
    dedupe_cli.register(app)

    @app.callback()
    def _root() -> None:  # keeps "dedupe" a subcommand
        pass

    return app


def invoke(app: typer.Typer, *args: object):
    return CliRunner().invoke(app, ["dedupe", *[str(a) for a in args], "--no-progress"], catch_exceptions=False)


def test_cli_runs_and_prints_summary(cli_app: typer.Typer, corpus: dict, tmp_path: Path) -> None:
    res = invoke(
        cli_app,
        "--manifest",
        corpus["manifest"],
        "--targets",
        corpus["targets"],
        "--source-codes",
        corpus["source_codes"],
        "--out",
        tmp_path / "c.parquet",
        "--report",
        tmp_path / "r.parquet",
    )
    assert res.exit_code == 0, res.output
    assert "removed" in res.output and "reported pairs" in res.output
    assert read_table("manifest", tmp_path / "c.parquet").num_rows == len(corpus["ids"]) - 6


def test_cli_defaults_match_library() -> None:
    assert (dedupe_cli.DEFAULT_THRESHOLD, dedupe_cli.DEFAULT_RADIUS, dedupe_cli.DEFAULT_MIN_FRAMES) == (
        dedupe_mod.DEFAULT_THRESHOLD,
        dedupe_mod.DEFAULT_RADIUS,
        dedupe_mod.DEFAULT_MIN_FRAMES,
    )


def test_cli_stale_code_version(cli_app: typer.Typer, corpus: dict, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    stale = write_codes(tmp_path / "stale.parquet", [code_row(rng, "t", walk(rng, 20), version=CODE_VERSION + 1)])
    res = invoke(
        cli_app,
        "--manifest",
        corpus["manifest"],
        "--targets",
        stale,
        "--source-codes",
        corpus["source_codes"],
        "--out",
        tmp_path / "c.parquet",
        "--report",
        tmp_path / "r.parquet",
    )
    assert_input_error(res, "stale.parquet", "code_version")
    assert not (tmp_path / "c.parquet").exists()


def test_cli_fps_mismatch(cli_app: typer.Typer, corpus: dict, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    other = write_codes(tmp_path / "t25.parquet", [code_row(rng, "t", walk(rng, 20), fps=25.0)])
    res = invoke(
        cli_app,
        "--manifest",
        corpus["manifest"],
        "--targets",
        other,
        "--source-codes",
        corpus["source_codes"],
        "--out",
        tmp_path / "c.parquet",
        "--report",
        tmp_path / "r.parquet",
    )
    assert_input_error(res, "25 fps", "16 fps")


def test_cli_manifest_missing_column(cli_app: typer.Typer, corpus: dict, tmp_path: Path) -> None:
    bad = write_manifest(tmp_path / "bad.parquet", corpus["ids"], drop="label_id")
    res = invoke(
        cli_app,
        "--manifest",
        bad,
        "--targets",
        corpus["targets"],
        "--source-codes",
        corpus["source_codes"],
        "--out",
        tmp_path / "c.parquet",
        "--report",
        tmp_path / "r.parquet",
    )
    assert_input_error(res, "bad.parquet", "label_id")


def test_cli_other_bad_input(cli_app: typer.Typer, corpus: dict, tmp_path: Path) -> None:
    common = ["--out", tmp_path / "c.parquet", "--report", tmp_path / "r.parquet"]
    more = write_manifest(tmp_path / "more.parquet", corpus["ids"] + ["nocodes"])
    res = invoke(
        cli_app, "--manifest", more, "--targets", corpus["targets"], "--source-codes", corpus["source_codes"], *common
    )
    assert_input_error(res, "no codes for 1 manifest video", "nocodes")
    res = invoke(cli_app, "--manifest", corpus["manifest"], "--source-codes", corpus["source_codes"], *common)
    assert_input_error(res, "--targets")
    res = invoke(
        cli_app,
        "--manifest",
        corpus["manifest"],
        "--targets",
        corpus["targets"],
        "--self",
        "--source-codes",
        corpus["source_codes"],
        *common,
    )
    assert_input_error(res, "--self")
    res = invoke(
        cli_app,
        "--manifest",
        corpus["manifest"],
        "--targets",
        corpus["targets"],
        "--source-codes",
        corpus["source_codes"],
        "--radius",
        40,
        *common,
    )
    assert_input_error(res, "radius")
    res = invoke(
        cli_app,
        "--manifest",
        corpus["manifest"],
        "--targets",
        corpus["targets"],
        "--source-codes",
        corpus["source_codes"],
        "--out",
        corpus["manifest"],
        "--report",
        tmp_path / "r.parquet",
    )
    assert_input_error(res, "also an input")


# ---------------------------------------------------------------------------- real videos


def test_end_to_end_real_videos(tmp_path: Path) -> None:
    """Fingerprint real files inside dedupe (videos tables in, no codes given) and find the copies."""
    pytest.importorskip("weaksup.dedupe.fingerprint")
    from weaksup.synth.video import moving_square_frames, write_test_video, write_video

    vids = tmp_path / "v"
    target_rows = [{"video_id": "syn_t", "uri": str(write_test_video(vids / "syn_t.mp4", seconds=4.0, seed=1))}]
    frames = moving_square_frames(64, seed=1)
    sources = {
        "syn_copy": write_video(
            vids / "syn_copy.mp4", frames[16:48], fps=16.0, options={"crf": "30"}
        ),  # sub-clip, re-encoded
        "syn_other": write_test_video(vids / "syn_other.mp4", seconds=3.0, seed=2),
    }
    expect = {"syn_copy": "syn_t"}
    pairs = {"mmaction2__part_0.mp4": "mmaction2__test.mp4", "mdn__flower.webm": "mdn__flower.mp4"}
    for src, tgt in pairs.items():
        if (REAL_VIDEOS / src).is_file() and (REAL_VIDEOS / tgt).is_file():
            sources[src] = REAL_VIDEOS / src
            target_rows.append({"video_id": tgt, "uri": str(REAL_VIDEOS / tgt)})
            expect[src] = tgt
    if (REAL_VIDEOS / "mdn__friday.mp4").is_file():
        sources["mdn__friday.mp4"] = REAL_VIDEOS / "mdn__friday.mp4"  # unrelated real video
    ids = list(sources)
    write_table(
        "videos",
        {"video_id": [r["video_id"] for r in target_rows], "uri": [r["uri"] for r in target_rows]},
        tmp_path / "targets.parquet",
    )
    write_table(
        "manifest",
        {
            "video_id": ids,
            "uri": [str(sources[v]) for v in ids],
            "label_id": [0] * len(ids),
            "label": ["x"] * len(ids),
            "matched_label_ids": [[0]] * len(ids),
        },
        tmp_path / "manifest.parquet",
    )
    cfg = DedupeConfig(
        manifest=tmp_path / "manifest.parquet",
        targets=tmp_path / "targets.parquet",
        out=tmp_path / "clean.parquet",
        report=tmp_path / "overlaps.parquet",
        workers=0,
        progress=False,
    )
    summary = dedupe_manifest(cfg)
    _, _, source_codes, target_codes = output_paths(cfg.out)
    assert source_codes.is_file() and target_codes.is_file()
    rows = by_pair(cfg.report)
    assert {k for k, r in rows.items() if r["removed"]} == set(expect.items())
    r = rows[("syn_copy", "syn_t")]  # 2 s of the 4 s target from 1 s on (64x48 px: the first re-encoded frames drift)
    assert r["overlap_source"] >= 90.0 and 40.0 <= r["overlap_target"] <= 50.0 and r["offset_s"] == 1.0
    if "mmaction2__part_0.mp4" in expect:
        r = rows[("mmaction2__part_0.mp4", "mmaction2__test.mp4")]
        assert r["overlap_source"] >= 90.0 and r["offset_s"] == 0.0 and 5.0 <= r["overlap_target"] <= 20.0
    if "mdn__flower.webm" in expect:
        r = rows[("mdn__flower.webm", "mdn__flower.mp4")]
        assert r["overlap_source"] >= 95.0 and r["overlap_target"] >= 95.0 and r["offset_s"] == 0.0
    kept = read_table("manifest", cfg.out).column("video_id").to_pylist()
    assert kept == [v for v in ids if v not in expect]
    assert summary["removed"] == len(expect)
