"""Reading features tables for evaluation, and putting train and test into one class space.

Rejected rows (videos that did not decode) are left out and counted, never scored as
anything. Everything that would make a metric silently wrong is bad input with one
line: NaN features, feature sizes that differ between rows or between train and test,
test classes that have no training example, and label numberings that disagree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from weaksup.errors import InputError
from weaksup.eval.label_maps import LabelMap, name_key
from weaksup.tables import open_parquet, read_table

#: Features-table metadata key holding the extraction protocol (written by weaksup.eval.extract).
EXTRACT_META_KEY = b"weaksup.extract"


def read_protocol(path: Path) -> dict[str, Any] | None:
    """The extraction protocol stored in a features table, if any."""
    meta = open_parquet(path, "features table").schema_arrow.metadata or {}
    raw = meta.get(EXTRACT_META_KEY)
    return json.loads(raw) if raw else None


@dataclass(frozen=True)
class FeatureSet:
    """The usable rows of a features table as arrays."""

    path: Path
    video_ids: list[str]
    label_ids: np.ndarray  # (N,) the table's own numbering
    names: list[str | None]  # label names, when the table has them
    multi: list[list[int]] | None  # label_ids lists (multi-label), when present on every row
    features: np.ndarray  # (N, D) float32
    clip_features: list[np.ndarray] | None  # per video (K_i, D), when present on every row
    rejected: int
    protocol: dict[str, Any] | None

    def __len__(self) -> int:
        return len(self.video_ids)


def _matrix(col: pa.ChunkedArray | pa.Array, path: Path, what: str) -> np.ndarray:
    """A list<float32> column of equal-length lists as an (N, D) array."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths.min() != lengths.max() or lengths.min() == 0):
        raise InputError(f"{path}: {what} have different lengths ({int(lengths.min())} to {int(lengths.max())})")
    dim = int(lengths[0]) if len(lengths) else 0
    values = np.array(arr.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)  # writable for torch
    return values.reshape(len(arr), dim)


def read_features(path: str | Path, *, need_clips: bool = False) -> FeatureSet:
    """The ok rows of a features table; NaN/inf features and ragged sizes are InputError.

    Tables from other extractors need only ``video_id``, ``label_id`` or ``label``, and
    ``features`` (any float or integer list type): the other columns are filled (every row
    ok, no names, no per-clip features), and without ``label_id`` the label names are
    numbered in sorted order (eval maps classes by name then).
    """
    path = Path(path)
    table = read_table("features", path)
    status = np.asarray(table.column("status").to_pylist(), dtype=object)
    ok = status == "ok"
    rejected = int((~ok).sum())
    table = table.filter(pa.array(ok))
    if table.num_rows == 0:
        raise InputError(f"{path}: no usable rows ({rejected} rejected videos, no features)")
    if "label_id" not in table.column_names:
        table = _number_labels(table, path)
    if table.column("features").null_count:
        raise InputError(f"{path}: {table.column('features').null_count} row(s) with status ok have no features")
    x = _matrix(table.column("features"), path, "feature vectors")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        first = table.column("video_id")[int(np.flatnonzero(bad)[0])].as_py()
        raise InputError(f"{path}: {int(bad.sum())} row(s) have NaN or infinite features (first: video {first!r})")
    clip_features = None
    col = table.column("clip_features")
    if col.null_count == 0:
        clip_features = []
        for i, clips in enumerate(col.to_pylist()):
            m = np.asarray(clips, dtype=np.float32)
            if m.ndim != 2 or m.shape[1] != x.shape[1] or not np.isfinite(m).all():
                raise InputError(
                    f"{path}: clip features of video {table.column('video_id')[i].as_py()!r} are "
                    "ragged, of another size or not finite"
                )
            clip_features.append(m)
    elif need_clips:
        raise InputError(f"{path}: has no per-clip features (extract with --per-clip)")
    multi_col = table.column("label_ids")
    multi = multi_col.to_pylist() if multi_col.null_count == 0 else None
    return FeatureSet(
        path,
        table.column("video_id").to_pylist(),
        table.column("label_id").to_numpy().astype(np.int64),
        table.column("label").to_pylist(),
        multi,
        x,
        clip_features,
        rejected,
        read_protocol(path),
    )


def _number_labels(table: pa.Table, path: Path) -> pa.Table:
    """``label_id`` for a table that has only label names: the names in sorted order."""
    names = table.column("label")
    if names.null_count:
        first = int(np.flatnonzero(names.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(
            f"{path}: no label_id column, and row {first} (video "
            f"{table.column('video_id')[first].as_py()!r}) has no label"
        )
    values = names.to_pylist()
    index = {name: i for i, name in enumerate(sorted(set(values)))}
    return table.append_column("label_id", pa.array([index[v] for v in values], pa.int32()))


@dataclass(frozen=True)
class ClassSpace:
    """The classes an evaluation scores, and each row's class index in it."""

    names: list[str]
    train: np.ndarray  # (N_train,) class indices
    test: np.ndarray  # (N_test,)
    label_map: str  # where the class names and order came from


def _id_names(fs: FeatureSet) -> dict[int, str]:
    """label_id -> name of a table; one id with two names (or two ids with one name) is bad input."""
    seen: dict[int, str] = {}
    by_name: dict[str, int] = {}
    for i, name in zip(fs.label_ids.tolist(), fs.names):
        if name is None:
            continue
        if seen.setdefault(i, name) != name:
            raise InputError(f"{fs.path}: label_id {i} has two names, {seen[i]!r} and {name!r}")
        if by_name.setdefault(name_key(name), i) != i:
            raise InputError(f"{fs.path}: label {name!r} has two label_ids, {by_name[name_key(name)]} and {i}")
    return seen


def class_space(train: FeatureSet, test: FeatureSet, label_map: LabelMap | None = None) -> ClassSpace:
    """Train and test rows in one class numbering, matched by name whenever names exist.

    With a label map, its order is the numbering and rows map to it by name. Without one,
    named tables map by name (train's label_ids order the classes); unnamed tables must
    share one numbering. Either way every test class must have a training example.
    """
    named = all(n is not None for n in train.names) and all(n is not None for n in test.names)
    if label_map is not None:
        if not named:
            which = train.path if any(n is None for n in train.names) else test.path
            raise InputError(f"{which}: rows without label names cannot be mapped to {label_map.source}")
        index = label_map.index()
        ids = {}
        for fs in (train, test):
            unknown = sorted({n for n in fs.names if name_key(n) not in index})
            if unknown:
                raise InputError(
                    f"{fs.path}: label {unknown[0]!r} is not in the label map {label_map.source}"
                    f" ({len(unknown)} unknown)"
                )
            ids[fs.path] = np.array([index[name_key(n)] for n in fs.names], dtype=np.int64)
        names, source = list(label_map.names), label_map.source
        y_train, y_test = ids[train.path], ids[test.path]
    elif named:
        train_names = _id_names(train)
        _id_names(test)
        order = sorted(train_names)
        names = [train_names[i] for i in order]
        index = {name_key(n): c for c, n in enumerate(names)}
        y_train = np.array([index[name_key(n)] for n in train.names], dtype=np.int64)
        missing = sorted({n for n in test.names if name_key(n) not in index})
        if missing:
            raise InputError(
                f"{test.path}: test class {missing[0]!r} has no training example in {train.path}"
                f" ({len(missing)} such classes)"
            )
        y_test = np.array([index[name_key(n)] for n in test.names], dtype=np.int64)
        source = f"label names of {train.path}"
    else:
        present = np.unique(train.label_ids)
        index = {int(i): c for c, i in enumerate(present)}
        missing = sorted(set(np.unique(test.label_ids).tolist()) - set(index))
        if missing:
            raise InputError(
                f"{test.path}: test label_id {missing[0]} has no training example in {train.path}"
                f" ({len(missing)} such classes)"
            )
        names = [str(int(i)) for i in present]
        y_train = np.array([index[int(i)] for i in train.label_ids], dtype=np.int64)
        y_test = np.array([index[int(i)] for i in test.label_ids], dtype=np.int64)
        source = f"label_id numbering shared by {train.path} and {test.path} (no names)"
    untrained = sorted(set(np.unique(y_test).tolist()) - set(np.unique(y_train).tolist()))
    if untrained:
        raise InputError(
            f"{test.path}: test class {names[untrained[0]]!r} has no training example in {train.path}"
            f" ({len(untrained)} such classes)"
        )
    return ClassSpace(names, y_train, y_test, source)


def multi_hot(lists: list[list[int]], num_classes: int, path: Path) -> np.ndarray:
    """(N, C) 0/1 targets from label id lists; ids outside [0, C) are bad input."""
    out = np.zeros((len(lists), num_classes), dtype=np.float32)
    for row, ids in enumerate(lists):
        for i in ids:
            if not 0 <= i < num_classes:
                raise InputError(f"{path}: label id {i} is outside the {num_classes} classes of the training table")
            out[row, i] = 1.0
    return out


def check_same_protocol(train: FeatureSet, test: FeatureSet) -> list[str]:
    """Feature sizes must agree; differing extraction settings are returned as warnings."""
    if train.features.shape[1] != test.features.shape[1]:
        raise InputError(
            f"{test.path}: features have {test.features.shape[1]} dimensions but {train.path}'s have "
            f"{train.features.shape[1]} (another network?)"
        )
    warnings = []
    if train.protocol and test.protocol:
        for key in ("checkpoint", "arch", "frames", "stride", "crop", "short_side"):
            if train.protocol.get(key) != test.protocol.get(key):
                warnings.append(
                    f"train and test features differ in {key}: {train.protocol.get(key)!r} vs "
                    f"{test.protocol.get(key)!r}"
                )
    return warnings
