"""Evaluation metrics on NumPy arrays: top-k accuracy, (mean) average precision, video-level averaging.

Conventions: ``scores`` is a float array ``(N, C)`` (logits or probabilities: only the
order within a row matters), ``labels`` an int array ``(N,)`` with values in ``[0, C)``,
``targets`` a multi-hot 0/1 array ``(N, C)``. Everything is vectorised over rows and
classes, so a 400-class evaluation of a million clips is a few array passes.
"""

from __future__ import annotations

import numpy as np

from weaksup.errors import InputError


def _scores_2d(scores: np.ndarray, name: str = "scores") -> np.ndarray:
    arr = np.asarray(scores)
    if arr.ndim != 2:
        raise InputError(f"{name} must be a 2-D (rows, classes) array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise InputError(
            f"{name} have NaN/inf in {int(bad.sum())} of {len(arr)} rows (first at row {int(np.argmax(bad))})"
        )
    return arr


def _class_ids(values: np.ndarray, num_classes: int, name: str, n: int | None = None) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D array of class ids, got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise InputError(f"{name} has {len(arr)} rows but the scores have {n}")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"{name} must be integer class ids, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise InputError(f"{name} must be integer class ids, got non-integer values")
    arr = arr.astype(np.int64)
    out = (arr < 0) | (arr >= num_classes)
    if out.any():
        raise InputError(f"{name}: {int(out.sum())} values outside [0, {num_classes}), e.g. {int(arr[out][0])}")
    return arr


def _binary(targets: np.ndarray, name: str = "targets") -> np.ndarray:
    arr = np.asarray(targets)
    if arr.dtype != bool:
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise InputError(f"{name} must be 0/1, got dtype {arr.dtype}")
        if not np.isin(arr, (0, 1)).all():
            raise InputError(f"{name} must be 0/1 (multi-hot), got other values")
    return arr.astype(bool)


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose true class is among the ``k`` best-scored classes.

    Tie rule: classes are ranked as ``np.argsort(-scores, kind="stable")`` would, i.e. by
    score descending and, among equal scores, by class id ascending. A tie therefore never
    counts more than ``k`` classes as "in the top k": the true class's rank is the number
    of classes with a strictly higher score plus those with an equal score and a lower id.
    """
    s = _scores_2d(scores)
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    n, c = s.shape
    y = _class_ids(labels, c, "labels", n)
    if n == 0:
        raise InputError("no rows to score")
    true = s[np.arange(n), y][:, None]
    before = (s > true) | ((s == true) & (np.arange(c)[None, :] < y[:, None]))
    rank = before.sum(axis=1)
    return float(np.mean(rank < k))


def _average_precision_columns(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Non-interpolated AP of every column (NaN for columns without a positive).

    AP = sum over distinct score thresholds of (recall gained) x (precision at the
    threshold), as ``sklearn.metrics.average_precision_score``: rows with equal scores
    enter together, so a tie between a positive and a negative is not broken in anyone's favour.
    """
    n, c = scores.shape
    order = np.argsort(-scores, axis=0, kind="stable")
    s = np.take_along_axis(scores, order, axis=0)
    t = np.take_along_axis(targets, order, axis=0)
    tp = np.cumsum(t, axis=0, dtype=np.float64)
    precision = tp / np.arange(1, n + 1, dtype=np.float64)[:, None]
    # Each row takes the precision at the end of its tie group (the threshold it belongs to).
    group_end = np.ones((n, c), dtype=bool)
    group_end[:-1] = s[:-1] != s[1:]
    end_index = np.where(group_end, np.arange(n)[:, None], n)
    end_index = np.minimum.accumulate(end_index[::-1], axis=0)[::-1]
    at_threshold = np.take_along_axis(precision, end_index, axis=0)
    positives = tp[-1] if n else np.zeros(c)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (t * at_threshold).sum(axis=0) / positives
    ap[positives == 0] = np.nan
    return ap


def average_precision(scores_1d: np.ndarray, targets_1d: np.ndarray) -> float:
    """Non-interpolated average precision of one class (NaN when it has no positive)."""
    s = np.asarray(scores_1d)
    if s.ndim != 1:
        raise InputError(f"scores must be 1-D, got shape {s.shape}")
    t = _binary(targets_1d)
    if t.shape != s.shape:
        raise InputError(f"targets have shape {t.shape} but scores {s.shape}")
    return float(_average_precision_columns(_scores_2d(s[:, None]), t[:, None])[0])


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> tuple[float, int]:
    """Mean AP over the classes with at least one positive, and how many classes were skipped.

    A class without positives has no defined AP; averaging it in as 0 (or 1) would make
    the score depend on which classes the evaluation subset happens to contain.
    Returns ``(nan, C)`` when no class has a positive.
    """
    s = _scores_2d(scores)
    t = _binary(targets)
    if t.shape != s.shape:
        raise InputError(f"targets have shape {t.shape} but scores {s.shape}")
    ap = _average_precision_columns(s, t)
    kept = ~np.isnan(ap)
    skipped = int((~kept).sum())
    if not kept.any():
        return float("nan"), skipped
    return float(ap[kept].mean()), skipped


def average_by_video(clip_scores: np.ndarray, video_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the clip score rows of each video.

    Returns ``(video_ids, averaged)`` with ``video_ids`` the distinct values of
    ``video_index`` in sorted order (``np.unique``) and row ``i`` of ``averaged`` the mean
    of the clips of ``video_ids[i]``, in the dtype of the scores (float64 for integer scores).
    """
    s = np.asarray(clip_scores)
    if s.ndim != 2:
        raise InputError(f"clip scores must be a 2-D (clips, classes) array, got shape {s.shape}")
    v = np.asarray(video_index)
    if v.ndim != 1 or len(v) != len(s):
        raise InputError(f"video index must be 1-D with one entry per clip ({len(s)}), got shape {v.shape}")
    if len(s) == 0:
        return v[:0], s[:0].astype(np.result_type(s.dtype, np.float32))
    dtype = s.dtype if np.issubdtype(s.dtype, np.floating) else np.float64
    ids, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    sums = np.add.reduceat(s[order].astype(dtype, copy=False), starts, axis=0)
    return ids, (sums / counts[:, None]).astype(dtype, copy=False)


def per_class_accuracy(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class (by true label): how many rows were predicted right, and how many there are."""
    y = _class_ids(labels, num_classes, "labels")
    p = _class_ids(pred, num_classes, "predictions", len(y))
    correct = np.bincount(y[p == y], minlength=num_classes).astype(np.int64)
    totals = np.bincount(y, minlength=num_classes).astype(np.int64)
    return correct, totals


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``(C, C)`` int64 counts, rows the true class and columns the predicted one."""
    y = _class_ids(labels, num_classes, "labels")
    p = _class_ids(pred, num_classes, "predictions", len(y))
    flat = np.bincount(y * num_classes + p, minlength=num_classes * num_classes)
    return flat.astype(np.int64).reshape(num_classes, num_classes)
