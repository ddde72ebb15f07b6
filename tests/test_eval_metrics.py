"""Evaluation metrics against cases worked out by hand (and scikit-learn where it has the metric)."""

from __future__ import annotations

import numpy as np
import pytest

from weaksup.errors import InputError
from weaksup.eval.metrics import (
    average_by_video,
    average_precision,
    confusion_matrix,
    mean_average_precision,
    per_class_accuracy,
    topk_accuracy,
)

# Rows: true class ranks 2nd; tie with a lower class id (ranks 2nd); last of 5; first.
SCORES = np.array(
    [
        [0.1, 0.5, 0.2, 0.9, 0.0],
        [0.3, 0.3, 0.1, 0.0, 0.2],
        [0.0, 0.1, 0.2, 0.3, 0.4],
        [0.7, 0.1, 0.1, 0.1, 0.1],
    ]
)
LABELS = np.array([1, 1, 0, 0])


def test_topk_hand_worked():
    assert topk_accuracy(SCORES, LABELS, 1) == pytest.approx(1 / 4)
    assert topk_accuracy(SCORES, LABELS, 2) == pytest.approx(3 / 4)
    assert topk_accuracy(SCORES, LABELS, 4) == pytest.approx(3 / 4)
    assert topk_accuracy(SCORES, LABELS, 5) == pytest.approx(1.0)
    assert topk_accuracy(SCORES, LABELS, 50) == pytest.approx(1.0)


def test_topk_ties_go_to_the_lower_class_id():
    # Row 1 ties classes 0 and 1: class 0 is ranked first, class 1 second.
    assert topk_accuracy(SCORES[1:2], np.array([0]), 1) == 1.0
    assert topk_accuracy(SCORES[1:2], np.array([1]), 1) == 0.0
    # An all-equal row: only the first k class ids count as in the top k.
    flat = np.zeros((5, 5))
    assert topk_accuracy(flat, np.arange(5), 2) == pytest.approx(2 / 5)


def test_topk_equals_stable_argsort_rule():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 4, size=(300, 9)).astype(np.float32)  # many ties
    y = rng.integers(0, 9, size=300)
    order = np.argsort(-s, axis=1, kind="stable")
    for k in (1, 3, 5):
        expected = np.mean([y[i] in order[i, :k] for i in range(len(y))])
        assert topk_accuracy(s, y, k) == pytest.approx(expected)


def test_topk_rejects_bad_input():
    with pytest.raises(InputError, match="outside"):
        topk_accuracy(SCORES, np.array([1, 1, 0, 5]), 1)
    with pytest.raises(InputError, match="rows"):
        topk_accuracy(SCORES, np.array([1, 1, 0]), 1)
    with pytest.raises(InputError, match="k must be"):
        topk_accuracy(SCORES, LABELS, 0)
    bad = SCORES.copy()
    bad[2, 1] = np.nan
    with pytest.raises(InputError, match="1 of 4 rows"):
        topk_accuracy(bad, LABELS, 1)


def test_average_precision_hand_worked():
    # Positives at ranks 1, 3 and 5: precision 1/1, 2/3, 3/5.
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    t = np.array([1, 0, 1, 0, 1])
    assert average_precision(s, t) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    # Same order however the rows are stored.
    perm = np.array([3, 0, 4, 2, 1])
    assert average_precision(s[perm], t[perm]) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)


def test_average_precision_ties_enter_together():
    # Threshold 0.8 admits a positive and a negative at once: precision 1/3 (not 1/2)
    # for the first half of recall, then 2/4 for the second half: 1/6 + 1/4 = 5/12.
    s = np.array([0.9, 0.8, 0.8, 0.1])
    t = np.array([0, 1, 0, 1])
    assert average_precision(s, t) == pytest.approx(5 / 12)
    assert np.isnan(average_precision(s, np.zeros(4)))


def test_average_precision_equals_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    for trial in range(100):
        n = int(rng.integers(2, 60))
        s = rng.integers(0, 6, n).astype(float) if trial % 2 else rng.random(n)
        t = rng.random(n) < 0.3
        if not t.any():
            continue
        assert average_precision(s, t) == pytest.approx(sk.average_precision_score(t, s), abs=1e-12)


def test_mean_average_precision_skips_classes_without_positives():
    s = np.array([[0.9, 0.1, 0.5], [0.8, 0.7, 0.4], [0.7, 0.2, 0.3], [0.6, 0.9, 0.2], [0.5, 0.3, 0.1]])
    t = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0]])
    # class 0: positives at ranks 1, 3 and 5 (as above); class 1: its two positives score
    # 0.9 and 0.7, above every negative, AP 1; class 2 has no positive and is skipped.
    value, skipped = mean_average_precision(s, t)
    assert skipped == 1
    assert value == pytest.approx(((1 + 2 / 3 + 3 / 5) / 3 + 1.0) / 2)
    none, skipped = mean_average_precision(s, np.zeros_like(t))
    assert np.isnan(none) and skipped == 3
    with pytest.raises(InputError, match="0/1"):
        mean_average_precision(s, t * 2)


def test_mean_average_precision_equals_sklearn_per_class_mean():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(2)
    s = rng.normal(size=(200, 12))
    t = rng.random((200, 12)) < 0.1
    t[:, 3] = False
    value, skipped = mean_average_precision(s, t)
    expected = np.mean([sk.average_precision_score(t[:, c], s[:, c]) for c in range(12) if c != 3])
    assert skipped == 1
    assert value == pytest.approx(expected, abs=1e-12)


def test_average_by_video_hand_worked_and_changes_top1():
    # Clips of videos 3 (label 1), 7 (label 0) and 9 (label 1), stored shuffled.
    video = np.array([7, 3, 7, 9, 3, 7])
    clips = np.array(
        [
            [0.90, 0.10],  # 7: right
            [0.20, 0.80],  # 3: right
            [0.40, 0.60],  # 7: wrong
            [0.30, 0.70],  # 9: right
            [0.60, 0.40],  # 3: wrong
            [0.45, 0.55],  # 7: wrong
        ]
    )
    label_of = {3: 1, 7: 0, 9: 1}
    ids, mean = average_by_video(clips, video)
    assert ids.tolist() == [3, 7, 9]
    np.testing.assert_allclose(mean, [[0.4, 0.6], [1.75 / 3, 1.25 / 3], [0.3, 0.7]])
    clip_labels = np.array([label_of[v] for v in video])
    video_labels = np.array([label_of[v] for v in ids])
    assert topk_accuracy(clips, clip_labels, 1) == pytest.approx(0.5)
    assert topk_accuracy(mean, video_labels, 1) == pytest.approx(1.0)


def test_average_by_video_keeps_float32_and_checks_lengths():
    ids, mean = average_by_video(np.ones((4, 3), dtype=np.float32), np.array([1, 1, 2, 2]))
    assert mean.dtype == np.float32 and mean.shape == (2, 3)
    with pytest.raises(InputError, match="one entry per clip"):
        average_by_video(np.ones((4, 3)), np.array([1, 2]))


def test_confusion_matrix_and_per_class_accuracy():
    pred = np.array([0, 1, 1, 2, 2, 2, 0])
    labels = np.array([0, 1, 2, 2, 2, 0, 0])
    cm = confusion_matrix(pred, labels, 4)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, [[2, 0, 1, 0], [0, 1, 0, 0], [0, 1, 2, 0], [0, 0, 0, 0]])
    correct, totals = per_class_accuracy(pred, labels, 4)
    np.testing.assert_array_equal(correct, [2, 1, 2, 0])
    np.testing.assert_array_equal(totals, [3, 1, 3, 0])
    np.testing.assert_array_equal(np.diag(cm), correct)
    np.testing.assert_array_equal(cm.sum(axis=1), totals)
    with pytest.raises(InputError, match="predictions"):
        confusion_matrix(np.array([0, 4]), np.array([0, 1]), 4)
