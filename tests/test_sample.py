"""weaksup sample: sizes, nesting, determinism, and what each strategy promises."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from weaksup.assembly.sample import (
    SampleConfig,
    parse_size,
    parse_sizes,
    sample_manifest,
    sqrt_weights,
    tail_preserving_cap,
)
from weaksup.cli import sample as sample_cli
from weaksup.errors import InputError
from weaksup.hashing import stable_uniform
from weaksup.tables import conform, load_schema, validate_file, write_table

N_LABELS = 100
N_VIDEOS = 50_000


def zipf_counts(n_labels: int, total: int, exponent: float = 1.1, floor: int = 3) -> np.ndarray:
    """Long-tailed label counts summing to ``total`` (head label first)."""
    raw = 1.0 / np.arange(1, n_labels + 1) ** exponent
    counts = np.maximum(np.floor(raw / raw.sum() * total).astype(np.int64), floor)
    counts[0] += total - counts.sum()
    return counts


def manifest_columns(counts: np.ndarray, prefix: str = "v") -> dict[str, pa.Array]:
    """A manifest whose label j holds counts[j] videos; rows grouped by label (the sampler must not care)."""
    label_id = np.repeat(np.arange(counts.size, dtype=np.int32), counts)
    n = label_id.size
    ids = [f"{prefix}{i:07d}" for i in range(n)]
    return {
        "video_id": pa.array(ids),
        "uri": pa.array([f"file:///videos/{v}.mp4" for v in ids]),
        "label_id": pa.array(label_id),
        "label": pa.array([f"label {j}" for j in label_id]),
        "matched_label_ids": pa.array([[int(j)] for j in label_id], pa.list_(pa.int32())),
        "duration_s": pa.array(np.linspace(1.0, 60.0, n)),
    }


@pytest.fixture(scope="module")
def counts() -> np.ndarray:
    return zipf_counts(N_LABELS, N_VIDEOS)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory, counts: np.ndarray) -> Path:
    path = tmp_path_factory.mktemp("manifest") / "manifest.parquet"
    write_table("manifest", manifest_columns(counts), path)
    return path


@pytest.fixture(scope="module")
def shuffled_manifest(tmp_path_factory: pytest.TempPathFactory, manifest: Path) -> Path:
    """Same rows, shuffled, in many small row groups (exercises the row-group gather)."""
    table = pq.read_table(manifest)
    perm = np.random.default_rng(123).permutation(table.num_rows)
    path = tmp_path_factory.mktemp("shuffled") / "manifest.parquet"
    pq.write_table(conform(table.take(pa.array(perm)), load_schema("manifest")), path, row_group_size=7_000)
    return path


@pytest.fixture(scope="module")
def flat_manifest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """20 labels of 1000..20000 videos: no label runs out early, so sqrt draws stay i.i.d. for a while."""
    counts = (20_000 / np.arange(1, 21)).astype(np.int64)
    path = tmp_path_factory.mktemp("flat") / "manifest.parquet"
    write_table("manifest", manifest_columns(counts, prefix="f"), path)
    return path, counts


def cli() -> typer.Typer:
    app = typer.Typer()
    sample_cli.register(app)
    return app


def invoke(*args: str | Path):
    return CliRunner().invoke(cli(), [str(a) for a in args])


def draw(manifest: Path, out: Path, strategy: str, size: int, seed: int = 0, replacement: bool = False) -> pa.Table:
    cfg = SampleConfig(manifest=manifest, strategy=strategy, out=out, sizes=(size,), seed=seed, replacement=replacement)
    sample_manifest(cfg)
    return pq.read_table(out)


STRATEGIES = [("random", False), ("tail-preserving", False), ("sqrt", False), ("sqrt", True)]


def strategy_args(strategy: str, replacement: bool) -> list[str]:
    return ["--strategy", strategy] + (["--replacement"] if replacement else [])


@pytest.mark.parametrize(("strategy", "replacement"), STRATEGIES)
def test_exact_size_and_schema(manifest: Path, tmp_path: Path, strategy: str, replacement: bool) -> None:
    out = tmp_path / "subset.parquet"
    result = invoke(
        "sample", "--manifest", manifest, *strategy_args(strategy, replacement), "--size", "1.234e4", "--out", out
    )
    assert result.exit_code == 0, result.output
    assert validate_file("sample", out) == 12_340
    table = pq.read_table(out)
    assert table.column("draw").to_pylist() == list(range(12_340))
    assert {"matched_label_ids", "duration_s"} <= set(table.column_names)  # manifest columns kept
    if not replacement:
        assert len(set(table.column("video_id").to_pylist())) == 12_340
    summary = json.loads((tmp_path / "subset.summary.json").read_text())
    assert summary["sizes"][0]["videos"] == 12_340
    assert summary["manifest_videos"] == N_VIDEOS


@pytest.mark.parametrize(("strategy", "replacement"), STRATEGIES)
def test_sizes_are_nested(manifest: Path, tmp_path: Path, strategy: str, replacement: bool) -> None:
    out = tmp_path / "series"
    result = invoke(
        "sample", "--manifest", manifest, *strategy_args(strategy, replacement), "--sizes", "2e4,1000,5e3", "--out", out
    )
    assert result.exit_code == 0, result.output
    sizes = [1000, 5000, 20000]
    ids = {n: pq.read_table(out / f"{strategy}_{n}.parquet").column("video_id").to_pylist() for n in sizes}
    for small, big in zip(sizes, sizes[1:]):
        assert len(ids[small]) == small
        assert ids[big][:small] == ids[small]  # same draws, same order
        if not replacement:
            assert set(ids[small]) < set(ids[big])
    summary = json.loads((out / "summary.json").read_text())
    assert [s["size"] for s in summary["sizes"]] == sizes
    # a single --size gives the same subset as the series' member of that size
    single = draw(manifest, tmp_path / "single.parquet", strategy, 5000, replacement=replacement)
    assert single.column("video_id").to_pylist() == ids[5000]


@pytest.mark.parametrize(("strategy", "replacement"), STRATEGIES)
def test_deterministic_and_row_order_free(
    manifest: Path, shuffled_manifest: Path, tmp_path: Path, strategy: str, replacement: bool
) -> None:
    a = draw(manifest, tmp_path / "a.parquet", strategy, 8000, replacement=replacement)
    again = draw(manifest, tmp_path / "again.parquet", strategy, 8000, replacement=replacement)
    shuffled = draw(shuffled_manifest, tmp_path / "shuffled.parquet", strategy, 8000, replacement=replacement)
    other_seed = draw(manifest, tmp_path / "seed1.parquet", strategy, 8000, seed=1, replacement=replacement)
    assert again.equals(a)
    assert shuffled.column("video_id").equals(a.column("video_id"))
    assert shuffled.column("uri").equals(a.column("uri"))  # whole rows follow their ids
    assert shuffled.column("sample_weight").equals(a.column("sample_weight"))
    assert set(other_seed.column("video_id").to_pylist()) != set(a.column("video_id").to_pylist())


def test_tail_preserving_cap_by_hand() -> None:
    counts = np.array([1, 5, 10])
    assert tail_preserving_cap(counts, 10) == 4  # 1+4+4 = 9 <= 10 < 1+5+5
    assert tail_preserving_cap(counts, 11) == 5
    assert tail_preserving_cap(counts, 16) == 10
    assert tail_preserving_cap(counts, 3) == 1
    assert tail_preserving_cap(counts, 2) == 0


@pytest.mark.parametrize("size", [3000, 10_000, 31_337])
def test_tail_preserving_keeps_tail_caps_head(manifest: Path, tmp_path: Path, counts: np.ndarray, size: int) -> None:
    table = draw(manifest, tmp_path / "tp.parquet", "tail-preserving", size)
    k = tail_preserving_cap(counts, size)
    got = np.bincount(table.column("label_id").to_numpy(), minlength=N_LABELS)
    tail, head = counts <= k, counts > k
    assert got.sum() == size
    assert (got[tail] == counts[tail]).all()  # every video of every tail label
    assert np.isin(got[head], [k, k + 1]).all()  # head labels capped at k (k+1 for the fill)
    assert head.any()
    assert tail.any() == (size >= 10_000)  # at 3000 even the smallest label (73 videos) is capped
    # within a label, the kept videos are its lowest-priority ones
    ids = pq.read_table(manifest, columns=["video_id", "label_id"])
    u = stable_uniform(ids.column("video_id"), 0, "sample")
    labels = ids.column("label_id").to_numpy()
    chosen = set(table.column("video_id").to_pylist())
    all_ids = np.array(ids.column("video_id").to_pylist())
    for j in np.flatnonzero(head)[:5]:
        rows = np.flatnonzero(labels == j)
        lowest = set(all_ids[rows[np.argsort(u[rows])][:k]])
        assert lowest <= chosen


def test_random_shares_follow_counts(manifest: Path, tmp_path: Path, counts: np.ndarray) -> None:
    size = 20_000
    got = np.bincount(
        draw(manifest, tmp_path / "r.parquet", "random", size).column("label_id").to_numpy(), minlength=N_LABELS
    )
    p = counts / counts.sum()
    tolerance = 5 * np.sqrt(p * (1 - p) / size) + 1e-4
    assert (np.abs(got / size - p) <= tolerance).all()


def sqrt_share(counts: np.ndarray) -> np.ndarray:
    return np.sqrt(counts) / np.sqrt(counts).sum()


def test_sqrt_with_replacement_shares(manifest: Path, tmp_path: Path, counts: np.ndarray) -> None:
    size = 150_000  # bigger than the manifest: allowed with replacement
    table = draw(manifest, tmp_path / "s.parquet", "sqrt", size, replacement=True)
    got = np.bincount(table.column("label_id").to_numpy(), minlength=N_LABELS) / size
    p = sqrt_share(counts)
    assert (np.abs(got - p) <= 5 * np.sqrt(p * (1 - p) / size) + 1e-4).all()
    assert table.num_rows == size and len(set(table.column("video_id").to_pylist())) < size


def test_sqrt_without_replacement_shares_until_a_label_runs_out(
    flat_manifest: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    path, counts = flat_manifest
    size = 20_000
    got = np.bincount(
        draw(path, tmp_path / "s.parquet", "sqrt", size).column("label_id").to_numpy(), minlength=counts.size
    )
    assert (got < counts).all()  # no label exhausted, so every draw was label ∝ sqrt(count)
    p = sqrt_share(counts)
    assert (np.abs(got / size - p) <= 5 * np.sqrt(p * (1 - p) / size)).all()
    # far from the share of random sampling, which follows the counts themselves
    assert abs(got[0] / size - counts[0] / counts.sum()) > 0.1


def test_sqrt_weights_per_label_total_proportional_to_sqrt(manifest: Path, tmp_path: Path, counts: np.ndarray) -> None:
    out = tmp_path / "weights.parquet"
    result = invoke("sample", "--manifest", manifest, "--strategy", "sqrt", "--weights-only", "--out", out)
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.num_rows == N_VIDEOS
    weight = table.column("sample_weight").to_numpy()
    labels = table.column("label_id").to_numpy()
    totals = np.bincount(labels, weights=weight, minlength=N_LABELS)
    assert weight.mean() == pytest.approx(1.0)
    # rows stay in manifest order; draw is each video's place in the full sqrt draw order
    assert table.column("video_id").equals(pq.read_table(manifest).column("video_id"))
    full = draw(manifest, tmp_path / "full.parquet", "sqrt", N_VIDEOS)
    by_draw = table.take(pa.array(np.argsort(table.column("draw").to_numpy())))
    assert by_draw.column("video_id").equals(full.column("video_id"))
    assert np.allclose(totals / totals.sum(), sqrt_share(counts))
    assert np.allclose(sqrt_weights(counts), np.sqrt(counts).sum() ** -1 * counts.sum() / np.sqrt(counts))
    subset = draw(manifest, tmp_path / "s.parquet", "sqrt", 1000)  # a sqrt subset carries the same weights
    by_label = dict(zip(labels.tolist(), weight.tolist()))
    assert np.allclose(
        subset.column("sample_weight").to_numpy(), [by_label[j] for j in subset.column("label_id").to_pylist()]
    )


@pytest.mark.parametrize("strategy", ["random", "tail-preserving"])
def test_weight_is_null_outside_sqrt(manifest: Path, tmp_path: Path, strategy: str) -> None:
    assert draw(manifest, tmp_path / "x.parquet", strategy, 100).column("sample_weight").null_count == 100


def test_parse_sizes() -> None:
    assert parse_sizes("1e5, 1e4,100000,2.5e6") == (10_000, 100_000, 2_500_000)
    assert parse_size("1_000") == 1000
    for bad in ("0", "-5", "abc", "1.5", "1e-2", ""):
        with pytest.raises(InputError):
            parse_size(bad)


def write_manifest_without(tmp_path: Path, column: str) -> Path:
    cols = manifest_columns(np.array([3, 2]))
    del cols[column]
    path = tmp_path / f"no_{column}.parquet"
    pq.write_table(pa.table(cols), path)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--manifest", "{tmp}/missing.parquet", "--strategy", "random", "--size", "10"], "file not found"),
        (["--manifest", "{no_uri}", "--strategy", "random", "--size", "1"], "missing column 'uri'"),
        (["--manifest", "{no_label}", "--strategy", "random", "--size", "1"], "missing column 'label_id'"),
        (["--manifest", "{manifest}", "--strategy", "random", "--size", "50001"], "larger than the manifest"),
        (["--manifest", "{manifest}", "--strategy", "sqrt", "--sizes", "10,1e6"], "larger than the manifest"),
        (["--manifest", "{manifest}", "--strategy", "stratified", "--size", "10"], "unknown strategy"),
        (["--manifest", "{manifest}", "--strategy", "random", "--size", "0"], "at least 1"),
        (["--manifest", "{manifest}", "--strategy", "random", "--size", "-5"], "at least 1"),
        (["--manifest", "{manifest}", "--strategy", "random", "--sizes", "10,-1"], "at least 1"),
        (["--manifest", "{manifest}", "--strategy", "random", "--sizes", "10,ten"], "not a number"),
        (["--manifest", "{manifest}", "--strategy", "random"], "--size"),
        (["--manifest", "{manifest}", "--strategy", "random", "--size", "5", "--sizes", "5"], "not both"),
        (["--manifest", "{manifest}", "--strategy", "random", "--weights-only"], "needs --strategy sqrt"),
        (
            ["--manifest", "{manifest}", "--strategy", "random", "--size", "5", "--replacement"],
            "only for --strategy sqrt",
        ),
        (["--manifest", "{dups}", "--strategy", "random", "--size", "1"], "duplicate video_id"),
    ],
)
def test_bad_input_exits_2_with_one_line(manifest: Path, tmp_path: Path, args: list[str], message: str) -> None:
    dups = tmp_path / "dups.parquet"
    cols = manifest_columns(np.array([2, 2]))
    cols["video_id"] = pa.array(["a", "b", "c", "a"])
    write_table("manifest", cols, dups)
    paths = {
        "tmp": tmp_path,
        "manifest": manifest,
        "dups": dups,
        "no_uri": write_manifest_without(tmp_path, "uri"),
        "no_label": write_manifest_without(tmp_path, "label_id"),
    }
    result = invoke("sample", *[a.format(**paths) for a in args], "--out", tmp_path / "out.parquet")
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize(("strategy", "replacement"), STRATEGIES)
def test_sparse_and_negative_label_ids(tmp_path: Path, strategy: str, replacement: bool) -> None:
    cols = manifest_columns(np.array([40, 5, 1]))
    label_id = cols["label_id"].to_numpy()
    cols["label_id"] = pa.array(np.array([2_000_000_000, -7, 3], np.int32)[label_id])
    write_table("manifest", cols, tmp_path / "m.parquet")
    table = draw(tmp_path / "m.parquet", tmp_path / "s.parquet", strategy, 12, replacement=replacement)
    got = dict(zip(*np.unique(table.column("label_id").to_numpy(), return_counts=True)))
    assert sum(got.values()) == 12
    if strategy == "tail-preserving":  # k = 6: the 1- and 5-video labels whole, the 40-video one capped at 6
        assert got == {-7: 5, 3: 1, 2_000_000_000: 6}
