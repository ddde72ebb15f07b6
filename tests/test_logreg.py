"""fc-only logistic regression: same optimum as scikit-learn, penalty search, multi-label, input checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from weaksup.errors import InputError
from weaksup.eval import logreg
from weaksup.eval.logreg import (
    LogRegConfig,
    LogRegModel,
    PenaltyScore,
    choose_penalty,
    fit_logreg,
    holdout_split,
    search_scheme,
    select_penalty,
    sklearn_C,
    stratified_folds,
)
from weaksup.eval.metrics import mean_average_precision

GRID = (1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5)


def gaussian_classes(n: int, d: int, c: int, seed: int, spread: float = 1.0, noise: float = 2.0):
    """Class means plus noise, with uneven feature scales and offsets (so standardising matters)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(c, d)) * spread
    y = rng.integers(0, c, n)
    X = (mu[y] + rng.normal(size=(n, d)) * noise) * rng.uniform(0.5, 3, d) + rng.normal(size=d) * 5
    return X.astype(np.float32), y


def standardised(X: np.ndarray, model: LogRegModel) -> np.ndarray:
    return (X - model.mean) / model.std


@pytest.fixture(scope="module")
def multiclass():
    return gaussian_classes(3000, 32, 5, seed=0)


def test_sklearn_C_mapping():
    assert sklearn_C(1e-3, 2000) == pytest.approx(0.5)
    with pytest.raises(InputError):
        sklearn_C(0.0, 10)


def test_matches_sklearn_multinomial(multiclass):
    lm = pytest.importorskip("sklearn.linear_model")
    X, y = multiclass
    penalty = 1e-3
    ours = fit_logreg(X, y, num_classes=5, penalty=penalty, cfg=LogRegConfig(tol=1e-5, max_iter=500))
    assert ours.converged and ours.grad_max <= 1e-5
    Xs = standardised(X, ours)
    np.testing.assert_allclose(ours.mean, X.astype(np.float64).mean(0), rtol=1e-5, atol=1e-4)
    sk = lm.LogisticRegression(C=sklearn_C(penalty, len(X)), solver="lbfgs", tol=1e-8, max_iter=5000).fit(Xs, y)
    scale = np.abs(sk.coef_).max()
    assert np.abs(ours.W - sk.coef_).max() <= 1e-3 * scale
    # The softmax is unchanged by adding a constant to every bias (which is not penalised).
    db = (ours.b - ours.b.mean()) - (sk.intercept_ - sk.intercept_.mean())
    assert np.abs(db).max() <= 5e-3 * max(1.0, np.abs(sk.intercept_).max())
    acc_ours = (ours.predict(X) == y).mean()
    acc_sk = (sk.predict(Xs) == y).mean()
    assert abs(acc_ours - acc_sk) <= 0.005
    assert 0.6 < acc_ours < 0.99  # a problem where the fit matters
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(Xs), atol=2e-3)


def test_float64_reaches_a_tight_tolerance(multiclass):
    X, y = multiclass
    a = fit_logreg(X, y, num_classes=5, penalty=1e-3, cfg=LogRegConfig(tol=1e-8, dtype="float64", max_iter=500))
    b = fit_logreg(X, y, num_classes=5, penalty=1e-3, cfg=LogRegConfig(tol=1e-5))
    assert a.converged and a.grad_max <= 1e-8
    assert a.objective <= b.objective + 1e-9
    assert b.objective - a.objective < 1e-6


def test_warm_start_takes_fewer_iterations(multiclass):
    X, y = multiclass
    cfg = LogRegConfig(tol=1e-5)
    strong = fit_logreg(X, y, num_classes=5, penalty=1e-2, cfg=cfg)
    cold = fit_logreg(X, y, num_classes=5, penalty=1e-3, cfg=cfg)
    warm = fit_logreg(X, y, num_classes=5, penalty=1e-3, cfg=cfg, init=strong)
    assert cold.converged and warm.converged
    assert warm.iterations < cold.iterations
    assert warm.objective == pytest.approx(cold.objective, abs=1e-6)
    again = fit_logreg(X, y, num_classes=5, penalty=1e-3, cfg=cfg, init=(warm.W, warm.b))
    assert again.iterations == 0 and again.function_evals == 1


def test_init_from_another_standardisation_keeps_the_scores(multiclass):
    X, y = multiclass
    model = fit_logreg(X, y, num_classes=5, penalty=1e-3)
    subset = X[::3]  # other mean and std
    problem = logreg._Problem(subset, y[::3], 5, LogRegConfig())
    Wb = problem.to_init(model).numpy()
    mapped = LogRegModel(W=Wb[:, :-1], b=Wb[:, -1], mean=problem.mean, std=problem.std, penalty=1e-3)
    np.testing.assert_allclose(mapped.decision_function(X[:200]), model.decision_function(X[:200]), atol=1e-3)


@pytest.mark.parametrize("tol", [1e-4, 1e-5])
def test_fast_matmul_gives_the_same_fit(monkeypatch, tol):
    # The reduced-precision matmul path (where the hardware has it), forced on a small problem.
    monkeypatch.setattr(logreg, "_FAST_MIN_WORK", 0)
    X, y = gaussian_classes(4000, 48, 16, seed=3, spread=0.5, noise=1.5)
    fast = fit_logreg(X, y, num_classes=16, penalty=1e-3, cfg=LogRegConfig(tol=tol))
    exact = fit_logreg(X, y, num_classes=16, penalty=1e-3, cfg=LogRegConfig(tol=tol, fast_matmul=False))
    assert fast.converged and exact.converged and fast.grad_max <= tol
    assert fast.objective == pytest.approx(exact.objective, rel=1e-4)
    assert (fast.predict(X) == exact.predict(X)).mean() > 0.99


def test_penalty_search_picks_a_weak_penalty_on_clean_data():
    # The classes differ along x0 - x1, hidden under a big nuisance shared by x0 and x1:
    # a strong penalty pulls W towards the class-mean direction (x0 alone) and fails.
    rng = np.random.default_rng(1)
    n = 600
    y = rng.integers(0, 3, n)
    e = rng.normal(size=n) * 3
    X = np.column_stack([1.5 * y + e + 0.1 * rng.normal(size=n), e + 0.1 * rng.normal(size=n), rng.normal(size=(n, 3))])
    result = select_penalty(X, y, num_classes=3, cfg=LogRegConfig(penalties=GRID, holdout_fraction=0.25))
    assert [row.penalty for row in result.table] == sorted(GRID, reverse=True)
    assert result.scores[1.0] < 0.7
    assert max(result.scores.values()) >= 0.98
    assert result.penalty <= 1e-3
    # ties go to the weaker penalty: the chosen one is the last (smallest) with the best score
    best = max(result.scores.values())
    assert result.penalty == min(row.penalty for row in result.table if row.score == best)
    assert result.metric == "top1" and result.holdout_rows == 150 and result.fit_rows == 450
    assert result.scheme == "held-out 25%" and result.folds == 0 and len(result.validation) == 1
    assert result.model.penalty == result.penalty and result.model.converged
    assert (result.model.predict(X) == y).mean() >= 0.98


def test_penalty_search_picks_a_strong_penalty_on_noisy_few_sample_data():
    # Few rows, many dimensions, weak isotropic signal: the class-mean direction (what a
    # strong penalty gives) is what generalises; weak penalties fit the noise.
    rng = np.random.default_rng(3)
    c, d, n = 3, 300, 240
    mu = rng.normal(size=(c, d)) * 0.15
    y = np.repeat(np.arange(c), n // c)
    X = mu[y] + rng.normal(size=(n, d))
    result = select_penalty(X, y, num_classes=c, cfg=LogRegConfig(penalties=GRID, holdout_fraction=0.25))
    assert result.penalty >= 1e-1
    assert result.scores[result.penalty] >= result.scores[1e-5] + 0.1
    assert result.holdout_rows == 60


def test_multilabel_matches_per_class_sklearn():
    lm = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(4)
    n, d, c = 1500, 16, 4
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 2, d) + 1.0
    w = rng.normal(size=(c, d))
    Y = (rng.random((n, c)) < 1 / (1 + np.exp(-(X @ w.T / 2 - 1)))).astype(np.int64)
    penalty = 1e-3
    cfg = LogRegConfig(multilabel=True, tol=1e-5, max_iter=500)
    ours = fit_logreg(X, Y, num_classes=c, penalty=penalty, cfg=cfg)
    assert ours.converged
    Xs = standardised(X, ours)
    scores_sk = np.empty((n, c))
    for k in range(c):
        sk = lm.LogisticRegression(C=sklearn_C(penalty, n), tol=1e-8, max_iter=5000).fit(Xs, Y[:, k])
        assert np.abs(ours.W[k] - sk.coef_[0]).max() <= 1e-3 * np.abs(sk.coef_).max()
        assert ours.b[k] == pytest.approx(sk.intercept_[0], abs=1e-3)
        scores_sk[:, k] = sk.decision_function(Xs)
    map_ours, _ = mean_average_precision(ours.decision_function(X), Y)
    map_sk, _ = mean_average_precision(scores_sk, Y)
    assert abs(map_ours - map_sk) <= 0.01
    proba = ours.predict_proba(X)
    assert proba.shape == (n, c) and (proba > 0).all() and (proba < 1).all()
    result = select_penalty(X, Y, num_classes=c, cfg=LogRegConfig(multilabel=True, penalties=(1e-1, 1e-3)))
    assert result.metric == "mAP" and set(result.scores) == {1e-1, 1e-3}


def test_bad_input_raises_input_error(multiclass):
    X, y = multiclass
    X = X[:100].copy()
    y = y[:100]
    X[[3, 10, 50], 2] = np.nan
    X[70, 0] = np.inf
    with pytest.raises(InputError, match=r"NaN/inf in 4 of 100 rows \(first at row 3\)"):
        fit_logreg(X, y, num_classes=5, penalty=1e-3)
    with pytest.raises(InputError, match=r"NaN/inf in 4 of 100 rows"):
        select_penalty(X, y, num_classes=5)
    X = np.nan_to_num(X, nan=0.0, posinf=0.0)
    with pytest.raises(InputError, match="100 rows but labels have 99"):
        fit_logreg(X, y[:99], num_classes=5, penalty=1e-3)
    with pytest.raises(InputError, match=r"outside \[0, 5\)"):
        fit_logreg(X, np.where(y == 0, 7, y), num_classes=5, penalty=1e-3)
    with pytest.raises(InputError, match="1 class present"):
        fit_logreg(X, np.zeros(100, dtype=int), num_classes=5, penalty=1e-3)
    with pytest.raises(InputError, match="integer class ids"):
        fit_logreg(X, y + 0.5, num_classes=5, penalty=1e-3)
    with pytest.raises(InputError, match="penalty"):
        fit_logreg(X, y, num_classes=5, penalty=-1.0)
    with pytest.raises(InputError, match="multi-label targets must have shape"):
        fit_logreg(X, y, num_classes=5, penalty=1e-3, cfg=LogRegConfig(multilabel=True))
    with pytest.raises(InputError, match="dtype"):
        fit_logreg(X, y, num_classes=5, penalty=1e-3, cfg=LogRegConfig(dtype="float16"))
    with pytest.raises(InputError, match="too few"):
        select_penalty(
            X[:4], np.array([0, 0, 1, 1]), num_classes=2, cfg=LogRegConfig(holdout_fraction=0.1, cross_validate=False)
        )
    with pytest.raises(InputError, match=r"too few .*2-fold CV.*fold 1 of 2 has 1 class present"):
        select_penalty(X[:2], np.array([0, 1]), num_classes=2)
    with pytest.raises(InputError, match="folds"):
        select_penalty(X, y, num_classes=5, cfg=LogRegConfig(folds=1))


def test_holdout_split_is_stratified_and_seeded():
    y = np.array([0] * 50 + [1] * 30 + [2] * 9 + [3] * 1 + [4] * 2)
    fit, hold = holdout_split(y, 0.2, seed=5)
    assert len(hold) == round(0.2 * len(y)) and len(fit) + len(hold) == len(y)
    assert not set(fit) & set(hold)
    held = np.bincount(y[hold], minlength=5)
    assert held[0] == 10 and held[1] == 6 and held[3] == 0
    for k in range(5):
        assert (y[fit] == k).sum() >= 1
    again = holdout_split(y, 0.2, seed=5)
    assert np.array_equal(again[1], hold)
    assert not np.array_equal(holdout_split(y, 0.2, seed=6)[1], hold)


def test_choose_penalty_breaks_ties_toward_the_weaker_penalty():
    def table(*pairs):
        return [PenaltyScore(p, s, 1, True) for p, s in pairs]

    # two penalties share the best score: the smaller wins, wherever it sits in the table
    assert choose_penalty(table((1e-1, 0.5), (1e-3, 0.75), (1e-5, 0.75)), 0.01) == (1e-5, False)
    assert choose_penalty(table((1e-5, 0.75), (1e-3, 0.75), (1e-1, 0.5)), 0.01) == (1e-5, False)
    # float noise is still a tie (a mean over folds summed in another order)
    assert choose_penalty(table((1e-1, 0.7), (1e-2, 0.1 + 0.2 + 0.4)), 0.01)[0] == 1e-2
    # a strictly better strong penalty still wins
    assert choose_penalty(table((1e-1, 0.8), (1e-3, 0.75)), 0.01) == (1e-1, False)
    # all equal, or apart by less than one row's worth: cannot tell, weakest chosen
    assert choose_penalty(table((1e-1, 0.5), (1e-3, 0.5), (1e-5, 0.5)), 0.1) == (1e-5, True)
    assert choose_penalty(table((1e-1, 0.55), (1e-3, 0.5)), 0.1) == (1e-1, True)
    assert choose_penalty(table((1e-1, 0.6), (1e-3, 0.5)), 0.1) == (1e-1, False)  # exactly one row apart
    # mAP (resolution 0): only equal scores cannot tell
    assert choose_penalty(table((1e-1, 0.9193), (1e-3, 0.9187)), 0.0) == (1e-1, False)
    assert choose_penalty(table((1e-1, 0.9193), (1e-3, 0.9193)), 0.0) == (1e-3, True)
    # NaN scores (mAP with no positives) never win; all NaN cannot tell
    assert choose_penalty(table((1e-1, float("nan")), (1e-3, 0.2), (1e-5, 0.1)), 0.01) == (1e-3, False)
    assert choose_penalty(table((1e-1, float("nan")), (1e-3, float("nan"))), 0.01) == (1e-3, True)
    # one penalty: nothing to tell apart
    assert choose_penalty(table((1e-3, 0.5)), 0.1) == (1e-3, False)


def test_search_scheme_rule():
    big = np.repeat(np.arange(3), 400)  # 120 held out, 40 per class
    assert search_scheme(big, LogRegConfig()) == 0
    assert search_scheme(big, LogRegConfig(cross_validate=True)) == 5
    assert search_scheme(np.repeat(np.arange(3), 100), LogRegConfig()) == 5  # 30 held out < 50
    assert search_scheme(np.repeat(np.arange(100), 30), LogRegConfig()) == 5  # 300 held out, 3 per class < 5
    assert search_scheme(np.repeat(np.arange(100), 30), LogRegConfig(min_holdout_per_class=2)) == 0
    assert search_scheme(np.repeat(np.arange(4), 10), LogRegConfig(cross_validate=False)) == 0
    # fewer folds when a class has fewer rows than that, never fewer than 2
    assert search_scheme(np.array([0] * 30 + [1] * 3), LogRegConfig()) == 3
    assert search_scheme(np.array([0] * 30 + [1]), LogRegConfig()) == 2
    assert search_scheme(np.array([0] * 30 + [1] * 20), LogRegConfig(folds=10)) == 10


def test_stratified_folds_are_even_stratified_and_seeded():
    y = np.array([0] * 23 + [1] * 11 + [2] * 3 + [3] * 1)
    fold = stratified_folds(y, 5, seed=2)
    sizes = np.bincount(fold, minlength=5)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == len(y)
    for k in range(4):
        per = np.bincount(fold[y == k], minlength=5)
        assert per.max() - per.min() <= 1  # a class splits as evenly as it can
    assert np.array_equal(stratified_folds(y, 5, seed=2), fold)
    assert not np.array_equal(stratified_folds(y, 5, seed=3), fold)


def separable_classes(n_per_class: int, c: int, d: int = 6, seed: int = 0):
    """Classes far apart (10 noise sigmas): every penalty of the grid classifies them all right."""
    rng = np.random.default_rng(seed)
    mu = np.eye(c, d) * 10
    y = np.repeat(np.arange(c), n_per_class)
    return (mu[y] + rng.normal(size=(len(y), d))).astype(np.float32), y


def test_small_training_set_is_cross_validated():
    # 72 videos: 10% would be 7 held-out rows. A noisy task, so that penalties score apart.
    X, y = gaussian_classes(72, 8, 4, seed=7, spread=1.0, noise=1.0)
    result = select_penalty(X, y, num_classes=4, cfg=LogRegConfig(penalties=GRID))
    assert result.scheme == "5-fold CV" and result.folds == 5 and len(result.validation) == 5
    # every row validated exactly once, and folds stratified by class
    rows = np.concatenate(result.validation)
    assert np.array_equal(np.sort(rows), np.arange(len(y)))
    for k in range(4):
        per_fold = [int((y[v] == k).sum()) for v in result.validation]
        assert max(per_fold) - min(per_fold) <= 1
    assert result.holdout_rows == 72 and result.fit_rows == 72 - max(len(v) for v in result.validation)
    for row in result.table:
        assert len(row.fold_scores) == 5
        assert row.score == pytest.approx(np.mean(row.fold_scores))
    # the fold scores are the scores of fits on the other folds, warm-started strongest first
    v0 = result.validation[0]
    fit0 = np.setdiff1d(np.arange(len(y)), v0)
    previous = None
    for row in result.table:
        model = fit_logreg(X[fit0], y[fit0], num_classes=4, penalty=row.penalty, cfg=LogRegConfig(), init=previous)
        previous = model
        assert row.fold_scores[0] == pytest.approx((model.predict(X[v0]) == y[v0]).mean(), abs=1 / len(v0) + 1e-9)
    best = max(result.scores.values())
    assert result.penalty == min(p for p, s in result.scores.items() if s == best)
    assert result.model.penalty == result.penalty and result.model.converged


def test_search_that_cannot_tell_penalties_apart_warns_and_picks_the_weakest():
    X, y = separable_classes(10, 4)  # 40 rows, every penalty scores 100% on every fold
    with pytest.warns(RuntimeWarning, match="could not tell the 6 penalties apart"):
        result = select_penalty(X, y, num_classes=4, cfg=LogRegConfig(penalties=GRID))
    assert set(result.scores.values()) == {1.0}
    assert result.penalty == min(GRID)  # not the strongest, which can collapse onto one class
    assert result.warning is not None and "5-fold CV" in result.warning
    assert (result.model.predict(X) == y).all()


@pytest.mark.filterwarnings("ignore:the penalty search:RuntimeWarning")
def test_penalty_search_is_deterministic_given_the_seed():
    X, y = gaussian_classes(90, 8, 3, seed=11, spread=0.8, noise=1.0)
    cfg = LogRegConfig(penalties=(1e-1, 1e-2, 1e-3), seed=4)
    a = select_penalty(X, y, num_classes=3, cfg=cfg)
    b = select_penalty(X, y, num_classes=3, cfg=cfg)
    assert a.scheme == "5-fold CV"
    assert all(np.array_equal(u, v) for u, v in zip(a.validation, b.validation))
    assert a.table == b.table and a.penalty == b.penalty
    np.testing.assert_array_equal(a.model.W, b.model.W)
    other = select_penalty(X, y, num_classes=3, cfg=LogRegConfig(penalties=(1e-1, 1e-2, 1e-3), seed=5))
    assert not all(np.array_equal(u, v) for u, v in zip(a.validation, other.validation))


def test_model_round_trips_through_json_and_tensors(multiclass):
    X, y = multiclass
    model = fit_logreg(X, y, num_classes=5, penalty=1e-3)
    plain = json.loads(json.dumps(model.to_dict()))
    back = LogRegModel.from_dict(plain)
    np.testing.assert_array_equal(back.decision_function(X[:50]), model.decision_function(X[:50]))
    assert back.iterations == model.iterations and back.converged == model.converged
    tensors = model.to_dict(tensors=True)
    assert isinstance(tensors["W"], torch.Tensor)
    np.testing.assert_array_equal(LogRegModel.from_dict(tensors).W, model.W)
    proba = model.predict_proba(X[:50])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(proba.argmax(axis=1), model.predict(X[:50]))
    # batching does not change the scores
    np.testing.assert_allclose(
        model.decision_function(X[:50], batch_rows=7), model.decision_function(X[:50]), rtol=1e-6, atol=1e-6
    )
    with pytest.raises(InputError, match="format"):
        LogRegModel.from_dict({"W": [[1.0]]})
    with pytest.raises(InputError, match="shape"):
        model.decision_function(X[:, :5])
