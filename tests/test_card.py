"""`weaksup card`: the dataset card's front matter, counts, label plot, sources, licences,
rejects (summaries, fetch table, dedupe report), settings and versions."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import assert_input_error

from weaksup.assembly.card import CardConfig, license_id, plot_path, plot_size, size_category, write_card
from weaksup.tables import write_table

HOSTS = ("https://www.vimeo.com/v/{}", "http://cdn.example.org:8080/x/{}.mp4", "https://example.org/{}")
LICENCES = ("CC BY 4.0", "https://creativecommons.org/licenses/by-sa/4.0/", None)


def _label_of(i: int) -> int:
    """A long tail: label 0 holds the most videos, 39 labels in all."""
    return min(int(np.sqrt(i)), 38) if i % 7 else i % 39


def _manifest(path: Path, n: int = 600) -> Path:
    labels = [_label_of(i) for i in range(n)]
    write_table(
        "manifest",
        {
            "video_id": [f"v{i}" for i in range(n)],
            "uri": [f"/data/v{i}.mp4" for i in range(n)],
            "label_id": labels,
            "label": [f"label {x}" for x in labels],
            "matched_label_ids": [[x] for x in labels],
            "duration_s": [12.0] * n,
            "url": [None if i % 10 == 9 else HOSTS[i % 3].format(i) for i in range(n)],
            "licence": [LICENCES[i % 3] for i in range(n)],
        },
        path,
    )
    return path


def _fetched(path: Path) -> Path:
    status = ["ok"] * 6 + ["rejected"] * 4
    errors = [None] * 6 + ["http 404: not found", "http 404: gone", "timeout (after 3 attempts)", "opted out: listed"]
    write_table(
        "fetched",
        {
            "video_id": [f"f{i}" for i in range(10)],
            "uri": [f"/data/f{i}.mp4" for i in range(10)],
            "url": [f"https://example.org/{i}" for i in range(10)],
            "status": status,
            "error": errors,
            "retryable": [None] * 6 + [False, False, True, False],
            "bytes": pa.array([1_000_000] * 6 + [None] * 4, pa.int64()),
        },
        path,
    )
    return path


def _match_summary(path: Path) -> None:
    summary = {
        "videos_read": 700,
        "rejected": 5,
        "rejected_by_reason": {"null uri": 3, "duplicate video_id": 2},
        "unmatched": 80,
        "matched": 615,
        "dropped_by_min_videos": 15,
        "in_manifest": 600,
        "labels": 45,
        "min_videos": 3,
        "seed": 7,
        "keep_columns": ["url", "licence"],
    }
    path.write_text(json.dumps(summary), encoding="utf-8")


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _rows(text: str, section: str) -> dict[str, list[str]]:
    """The table rows of a section, by their second cell."""
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in body.splitlines() if line.startswith("| ")]
    return {r[1]: r for r in rows if r[0] not in ("#", "rank")}


def test_card_counts_plot_sources_licences_and_rejects(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path / "manifest.parquet")
    _match_summary(tmp_path / "manifest.summary.json")
    (tmp_path / "other.summary.json").write_text("{not json", encoding="utf-8")
    fetched = _fetched(tmp_path / "fetched.parquet")
    out = tmp_path / "DATASET_CARD.md"
    summary = write_card(CardConfig(manifest=manifest, out=out, fetched=fetched, title="Tiny tail", top=10, bottom=5))
    text = out.read_text(encoding="utf-8")

    # front matter a hub reads
    assert text.startswith("---\n")
    front = text.split("---\n")[1]
    yaml = pytest.importorskip("yaml")
    meta = yaml.safe_load(front)
    assert meta["task_categories"] == ["video-classification"]
    assert meta["size_categories"] == ["n<1K"]
    assert meta["pretty_name"] == "Tiny tail"
    assert sorted(meta["license"]) == ["cc-by-4.0", "cc-by-sa-4.0", "unknown"]

    # counts
    labels = [_label_of(i) for i in range(600)]
    per_label = np.bincount(labels)
    assert summary["videos"] == 600 and summary["labels"] == len(set(labels)) == 39
    assert "600 videos, 39 labels" in text
    top = _rows(text, "Labels")
    best = int(np.argmax(per_label))
    assert top[f"label {best}"][3] == str(per_label[best]) and top[f"label {best}"][0] == "1"
    assert "Top 10 labels:" in text and "Bottom 5 labels:" in text
    assert len([r for r in top.values()]) == 15

    # sources by host, licences by value
    hosts = _rows(text, "Sources")
    assert hosts["vimeo.com"][2] == "180" and hosts["cdn.example.org"][2] == "180"
    assert hosts["example.org"][2] == "180" and hosts["(not recorded)"][2] == "60"
    licences = _rows(text, "Licences")
    assert licences["CC BY 4.0"][2] == "200" and licences["CC BY 4.0"][4] == "cc-by-4.0"
    assert licences["(not recorded)"][2] == "200" and licences["(not recorded)"][4] == "unknown"

    # rejects: the fetch table by reason, the match summary's reasons and filters
    rejected = text.split("## Rejected and filtered\n", 1)[1].split("\n## ", 1)[0]
    assert "10 rows, 6 fetched (6.0 MB), 4 rejected (1 of them retryable)" in rejected
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in rejected.splitlines() if line.startswith("| ")]
    fetch_rows = {r[1]: r[2] for r in cells}
    assert fetch_rows["http 404"] == "2" and fetch_rows["timeout"] == "1" and fetch_rows["opted out"] == "1"
    assert fetch_rows["rejected: null uri"] == "3" and fetch_rows["rejected: duplicate video_id"] == "2"
    assert fetch_rows["unmatched (no hashtag of any label)"] == "80"
    assert "Dedupe: no overlaps report given" in rejected

    # how it was built: the match settings, the versions, the unreadable summary named
    built = text.split("## How it was built\n", 1)[1]
    assert re.search(r"\| min_videos \| 3 \|", built) and re.search(r"\| keep_columns \| url, licence \|", built)
    assert re.search(r"\| pyarrow \| \d", built) and re.search(r"\| python \| 3\.", built)
    assert "other.summary.json: not read" in built

    # the plot: beside the card, a real PNG of the size the card says
    png = tmp_path / "DATASET_CARD.labels.png"
    assert plot_path(out) == png and png.is_file()
    assert "![Videos per label](DATASET_CARD.labels.png)" in text
    assert png.stat().st_size > 5_000
    assert _png_size(png) == plot_size(10) and summary["plot_size"] == "{}x{}".format(*plot_size(10))
    from PIL import Image

    with Image.open(png) as image:
        image.verify()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]

    # the same inputs, the same card
    again = write_card(CardConfig(manifest=manifest, out=out, fetched=fetched, title="Tiny tail", top=10, bottom=5))
    assert out.read_text(encoding="utf-8") == text and again["videos"] == 600


def test_card_without_optional_inputs_says_what_is_missing(tmp_path: Path) -> None:
    ids = ["a", "b", "c"]
    write_table(
        "manifest",
        {
            "video_id": ids,
            "uri": ids,
            "label_id": [0, 1, 1],
            "label": ["x", "y", "y"],
            "matched_label_ids": [[0], [1], [1]],
        },
        tmp_path / "m.parquet",
    )
    out = tmp_path / "card.md"
    write_card(CardConfig(manifest=tmp_path / "m.parquet", out=out))
    text = out.read_text(encoding="utf-8")
    assert 'license:\n- "unknown"' in text
    assert "Not recorded: the manifest has no `url` column" in text
    assert "Not recorded: the manifest has no `licence` or `license` column" in text
    assert "Fetch: no fetch table given (`--fetched`)." in text
    assert "Dedupe: no overlaps report given (`--dedupe-report`)." in text
    assert "No stage summaries (`*.summary.json`) were found" in text
    assert "Every label:" in text  # few labels: one table of all
    assert _png_size(tmp_path / "card.labels.png") == plot_size(2)


def test_card_of_a_partitioned_manifest_with_a_dedupe_report(tmp_path: Path) -> None:
    out_dir = tmp_path / "matched"
    full = pq.read_table(_manifest(tmp_path / "full.parquet"))
    (out_dir / "manifest").mkdir(parents=True)
    for i in range(2):
        pq.write_table(full.slice(300 * i, 300), out_dir / "manifest" / f"part-{i:05d}.parquet")
    _match_summary(out_dir / "summary.json")
    report = tmp_path / "overlaps.parquet"
    write_table(
        "overlaps",
        {
            "source_video_id": ["v1", "v1", "v2", "v700"],
            "target_video_id": ["t1", "t2", "t1", "t3"],
            "overlap_source": [50.0, 20.0, 3.0, 100.0],
            "overlap_target": [10.0, 10.0, 1.0, 100.0],
            "offset_s": [0.0, 1.0, 2.0, 0.0],
            "matched_frames": pa.array([40, 20, 10, 64], pa.int32()),
            "mirrored": [False, True, False, False],
            "variant": ["full", "crop10", "full", "full"],
            "removed": [True, True, False, True],
        },
        report,
    )
    out = tmp_path / "DATASET_CARD.md"
    summary = write_card(CardConfig(manifest=out_dir / "manifest", out=out, dedupe_report=report))
    text = out.read_text(encoding="utf-8")
    assert summary["videos"] == 600 and "(2 parts)" in text
    assert (
        "4 overlapping pairs reported between 3 training videos and 3 benchmark videos; 2 training videos removed"
        in text
    )
    assert "1 videos of this manifest are marked removed in the report" in text  # v1 is still in it
    assert "| min_videos | 3 |" in text  # the partitioned match's summary above the parts


def test_licence_ids_and_size_categories() -> None:
    assert license_id("CC BY-SA 4.0") == "cc-by-sa-4.0"
    assert license_id("cc-by-nc-nd-4.0") == "cc-by-nc-nd-4.0"
    assert license_id("https://creativecommons.org/licenses/by/3.0/") == "cc-by-3.0"
    assert license_id("CC0") == "cc0-1.0" and license_id("MIT") == "mit"
    assert license_id("CC BY") == "other" and license_id("all rights reserved") == "other"
    assert license_id(None) == license_id("  ") == "unknown"
    assert [size_category(n) for n in (0, 999, 1000, 65_000_000)] == ["n<1K", "n<1K", "1K<n<10K", "10M<n<100M"]


def test_card_cli_and_bad_inputs_exit_2(cli, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path / "m.parquet", 50)
    out = tmp_path / "CARD.md"
    result = cli("card", "--manifest", manifest, "--out", out, "--top", "5")
    assert result.exit_code == 0, result.output
    assert out.is_file() and (tmp_path / "CARD.labels.png").is_file()

    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    assert_input_error(cli("card", "--manifest", bad, "--out", tmp_path / "b.md"), "bad.parquet")
    write_table("videos", {"video_id": ["a"], "uri": ["u"], "hashtags": [["x"]]}, tmp_path / "videos.parquet")
    assert_input_error(
        cli("card", "--manifest", tmp_path / "videos.parquet", "--out", tmp_path / "b.md"), "videos.parquet", "label_id"
    )
    assert_input_error(cli("card", "--manifest", tmp_path / "nope.parquet", "--out", tmp_path / "b.md"), "nope.parquet")
    assert_input_error(
        cli("card", "--manifest", manifest, "--out", tmp_path / "b.md", "--fetched", manifest), "m.parquet", "'status'"
    )
    assert not (tmp_path / "b.md").exists() and not (tmp_path / "b.labels.png").exists()
