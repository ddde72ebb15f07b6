"""Synthetic web-video metadata: Zipf-distributed hashtags mixing label tags and noise.

Used by tests, the match benchmark and the quickstart. Label frequencies follow a Zipf
law like IG-Kinetics' long tail (paper Fig. 3); each video carries a few tags, some the
relevant hashtags of one or two labels, the rest popular noise tags, and some videos
carry no label tag at all. Vectorised, so 10M rows take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from weaksup.outputs import require_local_output
from weaksup.tables import read_table

NOISE_TAGS = (
    "love instagood photooftheday fashion beautiful happy cute tbt like4like followme picoftheday "
    "follow me selfie summer art instadaily friends repost nature girl fun style smile food "
    "instalike family travel fitness life beauty amazing sun photo music beach sunset dog"
).split()


@dataclass(frozen=True)
class SynthMetadataConfig:
    """Options of ``weaksup synth-metadata``."""

    videos: int
    out: Path
    labels: Path | None = None
    seed: int = 0
    zipf_exponent: float = 1.1
    label_tag_rate: float = 0.85
    second_label_rate: float = 0.15
    noise_tags_mean: float = 2.0
    noise_vocabulary: int = 50_000


def _zipf_probs(n: int, exponent: float) -> np.ndarray:
    p = 1.0 / np.arange(1, n + 1) ** exponent
    return p / p.sum()


def synth_metadata(cfg: SynthMetadataConfig, *, chunk_rows: int = 2_000_000) -> dict:
    """Write a videos table of ``cfg.videos`` rows (generated in chunks); return a summary."""
    require_local_output(cfg.out)
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from weaksup.outputs import prepare_output
    from weaksup.tables import conform, load_schema

    if cfg.labels is not None:
        labels = read_table("labels", cfg.labels, columns=["label_id", "hashtags"])
        label_tags = labels.column("hashtags").to_pylist()
    else:
        from weaksup.labels.hashtags import relevant_hashtags
        from weaksup.labels.sources import kinetics400_labels

        label_tags = [relevant_hashtags(s.label) for s in kinetics400_labels()]
    n_labels = len(label_tags)
    label_rank = np.random.default_rng(cfg.seed).permutation(n_labels)
    label_p = _zipf_probs(n_labels, cfg.zipf_exponent)[np.argsort(label_rank)]
    vocab = [t for tags in label_tags for t in tags]
    tag_start = np.concatenate([[0], np.cumsum([len(t) for t in label_tags])])
    noise = NOISE_TAGS + [f"tag{i}" for i in range(cfg.noise_vocabulary - len(NOISE_TAGS))]
    noise_base = len(vocab)
    noise_p = _zipf_probs(len(noise), 1.0)
    vocab_arr = pa.array(vocab + noise, pa.string())
    schema = load_schema("videos")

    totals = {"tags": 0, "with_label_tag": 0}
    out = Path(cfg.out)
    tmp = prepare_output(out)
    try:
        with pq.ParquetWriter(tmp, schema.to_arrow(), compression="zstd") as writer:
            for chunk, first in enumerate(range(0, cfg.videos, chunk_rows)):
                n = min(chunk_rows, cfg.videos - first)
                rng = np.random.default_rng([cfg.seed, chunk])
                has_label = rng.random(n) < cfg.label_tag_rate
                n_label_tags = has_label.astype(np.int64) + (has_label & (rng.random(n) < cfg.second_label_rate))
                per_video = n_label_tags + rng.poisson(cfg.noise_tags_mean, n)
                total = int(per_video.sum())
                offsets = np.concatenate([[0], np.cumsum(per_video)]).astype(np.int32)
                is_label_tag = (np.arange(total) - np.repeat(offsets[:-1], per_video)) < np.repeat(
                    n_label_tags, per_video
                )
                k = int(is_label_tag.sum())
                lab = rng.choice(n_labels, size=k, p=label_p)
                sizes = tag_start[lab + 1] - tag_start[lab]
                flat = np.empty(total, np.int64)
                flat[is_label_tag] = tag_start[lab] + (rng.random(k) * sizes).astype(np.int64)
                flat[~is_label_tag] = noise_base + rng.choice(len(noise), size=total - k, p=noise_p)
                tags = pa.ListArray.from_arrays(pa.array(offsets), vocab_arr.take(pa.array(flat)))
                ids = pa.array(np.arange(first, first + n)).cast(pa.string())
                table = pa.table(
                    {
                        "video_id": pc.binary_join_element_wise("v", ids, ""),
                        "uri": pc.binary_join_element_wise("videos/v", ids, ".mp4", ""),
                        "hashtags": tags,
                        "duration_s": np.round(rng.uniform(1.0, 60.0, n), 3),
                    }
                )
                writer.write_table(conform(table, schema))
                totals["tags"] += total
                totals["with_label_tag"] += int(has_label.sum())
        import os

        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return {"videos": cfg.videos, "labels": n_labels, **totals, "out": str(out)}
