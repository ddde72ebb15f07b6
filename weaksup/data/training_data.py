"""The data a run trains on: a manifest, clips or sample table, or a shard folder, validated.

Read by ``pretrain`` (weaksup.train.loop) and by ``weaksup shard``, which shards the same tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from weaksup.data.shards import ShardIndex, load_shard_index
from weaksup.errors import InputError
from weaksup.tables import SCHEMA_META_KEY, open_parquet, read_table
from weaksup.uris import as_uri, is_local, local_path


@dataclass(frozen=True)
class TrainingTable:
    """The validated table to train on and what the loop needs to know about it."""

    table: pa.Table
    kind: str  # manifest, clips or sample
    path: Path
    num_classes: int
    weights: np.ndarray | None  # sample_weight, when the table has it for every row

    @property
    def rows(self) -> int:
        return self.table.num_rows


def table_kind(path: Path) -> str:
    """Which schema a training table follows: its stamped schema name, else its columns."""
    schema = open_parquet(path, "training table").schema_arrow  # missing, not Parquet, truncated: one line
    stamp = (schema.metadata or {}).get(SCHEMA_META_KEY, b"").decode(errors="replace").split("/")[0]
    if stamp in ("manifest", "clips", "sample"):
        return stamp
    if "clip_start_s" in schema.names:
        return "clips"
    if "draw" in schema.names or "sample_weight" in schema.names:
        return "sample"
    return "manifest"


def _num_classes(top: int, labels: Path | None, source: str) -> int:
    """Classes of ``labels`` (a labels table) when given, checked against the top label id; else top + 1."""
    if labels is None:
        return top + 1
    num_classes = int(read_table("labels", labels, columns=["label_id"]).column("label_id").to_numpy().max()) + 1
    if top >= num_classes:
        raise InputError(f"{source}: label id {top} is outside the {num_classes} labels of {labels}")
    return num_classes


def read_training_table(path: Path, *, labels: Path | None = None, loss: str = "softmax") -> TrainingTable:
    """Read a manifest, clips or sample table (schema-checked) and count its classes.

    The classes are those of ``labels`` (a labels table) when given, so a subset that lacks
    the last labels still trains a full-size classifier; else max(label_id) + 1.
    """
    path = Path(path)
    kind = table_kind(path)
    table = read_table(kind, path)
    if table.num_rows == 0:
        raise InputError(f"{path}: the {kind} table has no rows")
    label_ids = table.column("label_id").to_numpy()
    if label_ids.min() < 0:
        raise InputError(f"{path}: column 'label_id' has negative values")
    top = int(label_ids.max())
    if loss == "bce" and "matched_label_ids" in table.column_names:
        matched = table.column("matched_label_ids").combine_chunks().flatten().to_numpy()
        if len(matched):
            top = max(top, int(matched.max()))
    num_classes = _num_classes(top, labels, str(path))
    weights = None
    if "sample_weight" in table.column_names and table.column("sample_weight").null_count == 0:
        weights = table.column("sample_weight").to_numpy().astype(np.float64)
    return TrainingTable(table, kind, path, num_classes, weights)


@dataclass(frozen=True)
class TrainingShards:
    """A shard folder (``weaksup shard``) to train on: its index and class count.

    BCE targets are the single label here (the shards do not carry matched_label_ids), and
    sample weights are not supported.
    """

    index: ShardIndex
    path: str  # the folder, local or an fsspec URL
    num_classes: int
    kind: str = "shards"
    weights: None = None

    @property
    def rows(self) -> int:
        return len(self.index)


def is_shard_folder(source: Path | str) -> bool:
    """Whether ``source`` names a shard folder (a local folder or any non-file URL), not a table file."""
    text = as_uri(source)
    if is_local(text):
        return local_path(text).is_dir()
    if text.rstrip("/").lower().endswith((".parquet", ".pq", ".csv", ".jsonl", ".json")):
        raise InputError(
            f"{text}: pretrain reads a remote table only as a shard folder (weaksup shard); "
            "copy the table to a local path, or shard it"
        )
    return True


def read_training_data(
    source: Path | str, *, labels: Path | None = None, loss: str = "softmax"
) -> TrainingTable | TrainingShards:
    """The table (:func:`read_training_table`) or shard folder (its ``index.parquet``) to train on."""
    if not is_shard_folder(source):
        return read_training_table(Path(source), labels=labels, loss=loss)
    text = as_uri(source)
    index = load_shard_index(text)
    return TrainingShards(index, text, _num_classes(int(index.label.max()), labels, text))
