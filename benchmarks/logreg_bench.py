"""fc-only logistic regression: our torch L-BFGS fit against scikit-learn's, same problem, one process.

Synthetic frozen-feature stand-ins (seeded): one Gaussian mean per class plus isotropic
noise, pushed through a fixed random mixing matrix (correlated features, as a network's
are) with per-dimension scales and offsets; the noise level makes the task neither
trivial nor hopeless. Both fits solve the same objective (see ``weaksup/eval/logreg.py``):

* ``weaksup``: ``fit_logreg`` on the raw float32 features (it standardises them itself;
  that and the copy to torch are inside its timing), float32, ``penalty``;
* ``scikit-learn``: ``LogisticRegression(solver="lbfgs", C=sklearn_C(penalty, rows))`` on the
  same features standardised with the same mean/std beforehand (outside its timing), kept
  float32 (scikit-learn's lbfgs then computes the loss in float32 too: its fastest setting).

Both stop when the largest entry of the gradient of the mean objective is <= ``--tol``
(scikit-learn's ``gtol``), or after ``--max-iter`` iterations: equivalent criteria. Each
final point is scored with the same float64 objective, and both models' top-1 accuracy on
a held-out test set from the same distribution. The two fits alternate for ``--repeat``
rounds and the best time of each counts (the cores may be shared with other jobs).

    python benchmarks/logreg_bench.py                          # 100,000 x 512, 400 classes
    python benchmarks/logreg_bench.py --rows 20000 --dims 128 --classes 50
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from weaksup.eval.logreg import LogRegConfig, fit_logreg, sklearn_C


def make_data(rows: int, test_rows: int, dims: int, classes: int, noise: float, seed: int):
    """Train and test features (float32) and labels from the same class-mean + noise model."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(classes, dims)).astype(np.float32)
    mix = (np.eye(dims) + rng.normal(scale=0.5 / np.sqrt(dims), size=(dims, dims))).astype(np.float32)
    scale = rng.lognormal(sigma=0.7, size=dims).astype(np.float32)
    offset = rng.normal(scale=2.0, size=dims).astype(np.float32)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, classes, n)
        z = means[y] + noise * rng.standard_normal((n, dims), dtype=np.float32)
        return (z @ mix) * scale + offset, y

    return draw(rows), draw(test_rows)


def objective64(W: np.ndarray, b: np.ndarray, Xs: np.ndarray, y: np.ndarray, penalty: float) -> float:
    """The shared objective in float64, on standardised features (for comparing end points)."""
    total = 0.0
    for s in range(0, len(Xs), 20000):
        z = Xs[s : s + 20000].astype(np.float64) @ W.T.astype(np.float64) + b.astype(np.float64)
        zmax = z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z - zmax).sum(axis=1)) + zmax[:, 0]
        total += float((lse - z[np.arange(len(z)), y[s : s + 20000]]).sum())
    return total / len(Xs) + 0.5 * penalty * float(np.square(W.astype(np.float64)).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--test-rows", type=int, default=20_000)
    ap.add_argument("--dims", type=int, default=512)
    ap.add_argument("--classes", type=int, default=400)
    ap.add_argument("--noise", type=float, default=6.0, help="noise std relative to the class-mean spread")
    ap.add_argument("--penalty", type=float, default=1e-3)
    ap.add_argument("--tol", type=float, default=1e-4, help="max |gradient| at which both solvers stop")
    ap.add_argument("--max-iter", type=int, default=1000)
    ap.add_argument("--history", type=int, default=LogRegConfig.history_size, help="our L-BFGS memory")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=2, help="alternating rounds; the best time of each counts")
    ap.add_argument("--skip-sklearn", action="store_true")
    args = ap.parse_args()

    from sklearn.linear_model import LogisticRegression

    (X, y), (Xt, yt) = make_data(args.rows, args.test_rows, args.dims, args.classes, args.noise, args.seed)
    cfg = LogRegConfig(tol=args.tol, max_iter=args.max_iter, history_size=args.history)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; data {X.shape} {X.dtype}, "
        f"penalty {args.penalty:g} (sklearn C = {sklearn_C(args.penalty, args.rows):.4g}), tol {args.tol:g}"
    )

    fit_logreg(X[:2000], y[:2000], num_classes=args.classes, penalty=args.penalty, cfg=cfg)  # warm-up
    Xs = None
    t_ours, t_sk = [], []
    for round_ in range(args.repeat):  # alternate, so load from other jobs hits both alike
        t0 = time.perf_counter()
        ours = fit_logreg(X, y, num_classes=args.classes, penalty=args.penalty, cfg=cfg)
        t_ours.append(time.perf_counter() - t0)
        if Xs is None:
            Xs = ((X - ours.mean) / ours.std).astype(np.float32)
            Xts = ((Xt - ours.mean) / ours.std).astype(np.float32)
        print(f"round {round_ + 1}: weaksup {t_ours[-1]:.1f} s", end="", flush=True)
        if args.skip_sklearn:
            print()
            continue
        sk = LogisticRegression(
            C=sklearn_C(args.penalty, args.rows), solver="lbfgs", tol=args.tol, max_iter=args.max_iter
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a ConvergenceWarning shows in n_iter_ == max_iter
            t0 = time.perf_counter()
            sk.fit(Xs, y)
            t_sk.append(time.perf_counter() - t0)
        print(f", sklearn {t_sk[-1]:.1f} s", flush=True)

    acc_ours = float((ours.predict(Xt) == yt).mean())
    f_ours = objective64(ours.W, ours.b, Xs, y, args.penalty)
    print(
        f"weaksup: best {min(t_ours):.1f} s, {ours.iterations} iterations, {ours.function_evals} evaluations, "
        f"max|grad| {ours.grad_max:.2g}, converged {ours.converged}, objective {f_ours:.6f}, test top-1 {acc_ours:.4f}"
    )
    if args.skip_sklearn:
        return
    acc_sk = float((sk.predict(Xts) == yt).mean())
    f_sk = objective64(sk.coef_, sk.intercept_, Xs, y, args.penalty)
    print(
        f"sklearn: best {min(t_sk):.1f} s, {int(sk.n_iter_[0])} iterations, objective {f_sk:.6f}, test top-1 "
        f"{acc_sk:.4f}"
    )
    t_ours_best, t_sk_best = min(t_ours), min(t_sk)

    print()
    print(
        "| rows | dims | classes | weaksup s | sklearn s | speed-up | weaksup top-1 | sklearn top-1 "
        "| diff (points) | iterations (ours / sklearn) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    print(
        f"| {args.rows:,} | {args.dims} | {args.classes} | {t_ours_best:.1f} | {t_sk_best:.1f} | "
        f"{t_sk_best / t_ours_best:.1f}× | "
        f"{100 * acc_ours:.2f}% | {100 * acc_sk:.2f}% | {100 * (acc_ours - acc_sk):+.2f} | "
        f"{ours.iterations} / {int(sk.n_iter_[0])} |"
    )


if __name__ == "__main__":
    main()
