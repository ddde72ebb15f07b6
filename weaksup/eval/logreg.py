"""L2-regularised logistic regression on frozen features ("fc-only" transfer), in torch.

The paper's fc-only numbers train a linear classifier on features of a frozen network.
This fits it full-batch with L-BFGS on any torch device, in float32 by default, so a few
hundred thousand clips x 512 features x 400 classes fit in a minute on a CPU and in
seconds on a GPU, without scikit-learn.

Objective (identical to scikit-learn's ``LogisticRegression`` with ``solver="lbfgs"``)::

    f(W, b) = 1/n * sum_i loss(W x_i + b, y_i) + penalty/2 * ||W||_F^2      (b not penalised)

with ``loss`` the softmax cross-entropy (single-label, multinomial) or, for multi-label
targets, the sum over classes of the per-class logistic loss (one-vs-rest: the objective
separates by class, so one L-BFGS over all classes has the same minimiser as C separate
fits). scikit-learn minimises ``C * sum_i loss + 1/2 ||W||^2``, which is this objective
times ``C * n``; hence ``C = 1 / (penalty * n)`` (:func:`sklearn_C`). scikit-learn stops
when the largest gradient entry of the same mean objective is ``<= tol``; so does this
module, which makes equal ``tol`` values equivalent.

The solver is ``torch.optim.LBFGS`` (strong-Wolfe line search) with three changes of its
own, none of which moves the minimiser: it works in preconditioned variables (features
whitened by their second moments, as a change of variables), its first step is the
Newton step at W = 0 instead of a tiny probe, and on hardware that has them it evaluates
with bf16 (CPU, AMX) or TF32 (CUDA) matmul inputs until close, finishing and checking the
stopping test in full float32.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch

from weaksup.errors import InputError
from weaksup.eval.metrics import mean_average_precision, topk_accuracy

FORMAT = "weaksup-logreg/1"
_DTYPES = {"float32": torch.float32, "float64": torch.float64}
# L-BFGS also stops when a step or the objective (summed in float64) stops changing by
# more than this: stagnation at the precision of the computation, not slow progress.
_TOL_CHANGE = {torch.float32: 1e-12, torch.float64: 1e-20}
# Reduced-precision matmuls (``fast_matmul``) stop after this many evaluations in a row
# fail to lower the objective: their rounding noise (gradient error 1e-6 to 1e-4, the
# smaller the more rows) has become the size of what is left to gain.
_FAST_STALL = 3
# ... and only on problems big enough for matmuls to dominate (rows x (dims+1) x classes).
_FAST_MIN_WORK = 1 << 27
# Below this much work per matmul (rows x (dims+1) x classes) a CPU fit runs on one thread.
_ONE_THREAD_WORK = 1 << 22


@dataclass(frozen=True)
class LogRegConfig:
    """How to fit: the penalty grid, how it is searched, the solver's limits, the device.

    The penalty search (:func:`select_penalty`) holds out ``holdout_fraction`` of the rows,
    unless that would hold out fewer than ``min_holdout_rows`` rows or fewer than
    ``min_holdout_per_class`` rows per class on average: then it cross-validates over
    ``folds`` stratified folds instead. ``cross_validate`` True or False forces one scheme.

    ``tol`` is scikit-learn's: stop when no gradient entry exceeds it. ``history_size``
    is L-BFGS's memory (scipy uses 10); a longer one costs a few vector operations per
    iteration, nothing next to the two (rows x dims x classes) matmuls. ``chunk_rows``
    bounds the (rows x classes) temporaries of one evaluation. ``fast_matmul`` allows
    bf16/TF32 matmul inputs (float32 accumulation) on large problems where the hardware
    has them; the returned model still passes the stopping test in full float32.
    """

    penalties: tuple[float, ...] = tuple(float(p) for p in np.logspace(-6, -1, 6))
    holdout_fraction: float = 0.1
    folds: int = 5
    min_holdout_rows: int = 50
    min_holdout_per_class: float = 5.0
    cross_validate: bool | None = None  # None: by the rule above
    max_iter: int = 200
    tol: float = 1e-4
    standardize: bool = True
    multilabel: bool = False
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    history_size: int = 50
    chunk_rows: int = 1 << 17
    fast_matmul: bool = True


def sklearn_C(penalty: float, n_rows: int) -> float:
    """scikit-learn's ``C`` for the same objective: ``C = 1 / (penalty * n_rows)``."""
    if penalty <= 0 or n_rows <= 0:
        raise InputError(f"penalty and n_rows must be positive, got {penalty} and {n_rows}")
    return 1.0 / (penalty * n_rows)


@dataclass(frozen=True, eq=False)
class LogRegModel:
    """A fitted linear classifier: scores are ``((x - mean) / std) @ W.T + b``."""

    W: np.ndarray  # (C, D), in standardised feature space
    b: np.ndarray  # (C,)
    mean: np.ndarray  # (D,); zeros when not standardised
    std: np.ndarray  # (D,); ones when not standardised
    penalty: float
    multilabel: bool = False
    iterations: int = 0
    function_evals: int = 0
    converged: bool = False
    objective: float = float("nan")
    grad_max: float = float("nan")

    @property
    def num_classes(self) -> int:
        return int(self.W.shape[0])

    @property
    def num_features(self) -> int:
        return int(self.W.shape[1])

    def decision_function(self, X: np.ndarray, batch_rows: int = 65536) -> np.ndarray:
        """Raw scores ``(N, C)`` float32, computed ``batch_rows`` rows at a time."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.num_features:
            raise InputError(f"features must have shape (rows, {self.num_features}), got {X.shape}")
        W = self.W.astype(np.float32, copy=False)
        out = np.empty((len(X), self.num_classes), dtype=np.float32)
        mean = self.mean.astype(np.float32, copy=False)
        std = self.std.astype(np.float32, copy=False)
        for start in range(0, len(X), batch_rows):
            xb = (X[start : start + batch_rows].astype(np.float32, copy=False) - mean) / std
            np.matmul(xb, W.T, out=out[start : start + batch_rows])
        out += self.b.astype(np.float32, copy=False)
        return out

    def predict_proba(self, X: np.ndarray, batch_rows: int = 65536) -> np.ndarray:
        """Softmax probabilities (single-label) or per-class sigmoids (multi-label)."""
        z = self.decision_function(X, batch_rows)
        if self.multilabel:
            # exp(-logaddexp(0, -z)) = sigmoid(z) without overflow for large |z|.
            return np.exp(-np.logaddexp(0.0, -z)).astype(np.float32)
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    def predict(self, X: np.ndarray, batch_rows: int = 65536) -> np.ndarray:
        """Class ids ``(N,)`` (single-label) or a 0/1 matrix (multi-label, score > 0)."""
        z = self.decision_function(X, batch_rows)
        return (z > 0).astype(np.int8) if self.multilabel else z.argmax(axis=1)

    def to_dict(self, tensors: bool = False) -> dict[str, Any]:
        """Plain lists and numbers (JSON-able), or torch tensors (``torch.save``/``weights_only``)."""

        def arr(a: np.ndarray) -> Any:
            return torch.from_numpy(np.ascontiguousarray(a)) if tensors else a.tolist()

        return {
            "format": FORMAT,
            "W": arr(self.W),
            "b": arr(self.b),
            "mean": arr(self.mean),
            "std": arr(self.std),
            "penalty": float(self.penalty),
            "multilabel": bool(self.multilabel),
            "iterations": int(self.iterations),
            "function_evals": int(self.function_evals),
            "converged": bool(self.converged),
            "objective": float(self.objective),
            "grad_max": float(self.grad_max),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LogRegModel":
        """Inverse of :meth:`to_dict` (either form)."""
        if d.get("format") != FORMAT:
            raise InputError(f"not a logistic regression model: format {d.get('format')!r}, expected {FORMAT!r}")

        def arr(key: str, ndim: int) -> np.ndarray:
            v = d[key]
            a = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
            a = a.astype(np.float32)
            if a.ndim != ndim:
                raise InputError(f"model field {key!r} must be {ndim}-D, got shape {a.shape}")
            return a

        try:
            W, b, mean, std = arr("W", 2), arr("b", 1), arr("mean", 1), arr("std", 1)
        except KeyError as e:
            raise InputError(f"model dict lacks field {e.args[0]!r}") from None
        if b.shape != (W.shape[0],) or mean.shape != (W.shape[1],) or std.shape != (W.shape[1],):
            raise InputError(f"model shapes disagree: W {W.shape}, b {b.shape}, mean {mean.shape}, std {std.shape}")
        return cls(
            W=W,
            b=b,
            mean=mean,
            std=std,
            penalty=float(d.get("penalty", float("nan"))),
            multilabel=bool(d.get("multilabel", False)),
            iterations=int(d.get("iterations", 0)),
            function_evals=int(d.get("function_evals", 0)),
            converged=bool(d.get("converged", False)),
            objective=float(d.get("objective", float("nan"))),
            grad_max=float(d.get("grad_max", float("nan"))),
        )


@dataclass(frozen=True)
class PenaltyScore:
    """One row of the penalty search: the validation score of the fits with this penalty.

    ``score`` is the held-out score, or with cross-validation the mean of ``fold_scores``;
    ``iterations`` add up over the folds and ``converged`` holds for all of them.
    """

    penalty: float
    score: float
    iterations: int
    converged: bool
    fold_scores: tuple[float, ...] = ()


@dataclass(frozen=True, eq=False)
class PenaltySearch:
    """The chosen penalty, every penalty's validation score, and the model refit on all rows.

    ``scheme`` says how penalties were scored ("held-out 10%" or "5-fold CV"); ``folds`` is
    the number of CV folds (0 for a single held-out split); ``validation`` holds the row
    indices scored by each fit (one array per fold, or the one held-out part).
    ``fit_rows`` is the size of the smallest fit part, ``holdout_rows`` the number of
    validation rows in all (every row, with cross-validation). ``warning`` is set (and was
    emitted as a RuntimeWarning) when the scores could not tell the penalties apart.
    """

    penalty: float
    metric: str  # "top1" (single-label) or "mAP" (multi-label)
    table: tuple[PenaltyScore, ...]
    model: LogRegModel
    fit_rows: int
    holdout_rows: int
    scheme: str = ""
    folds: int = 0
    validation: tuple[np.ndarray, ...] = ()
    warning: str | None = None
    scores: dict[float, float] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scores", {row.penalty: row.score for row in self.table})


# --------------------------------------------------------------------------- input checks


def _check_config(cfg: LogRegConfig) -> None:
    if cfg.dtype not in _DTYPES:
        raise InputError(f"dtype must be one of {sorted(_DTYPES)}, got {cfg.dtype!r}")
    if cfg.max_iter < 1 or cfg.tol < 0 or cfg.history_size < 1 or cfg.chunk_rows < 1:
        raise InputError(f"max_iter, history_size and chunk_rows must be >= 1 and tol >= 0, got {cfg}")
    if cfg.folds < 2 or cfg.min_holdout_rows < 0 or cfg.min_holdout_per_class < 0:
        raise InputError(f"folds must be >= 2 and min_holdout_rows, min_holdout_per_class >= 0, got {cfg}")
    try:
        torch.device(cfg.device)
    except RuntimeError:
        raise InputError(f"unknown torch device {cfg.device!r}") from None


def _check_penalty(penalty: float) -> float:
    p = float(penalty)
    if not math.isfinite(p) or p < 0:
        raise InputError(f"penalty must be a finite number >= 0, got {penalty}")
    return p


def _check_inputs(X: np.ndarray, y: np.ndarray, num_classes: int, multilabel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(X, y)``: X float (N, D) finite; y int (N,) or bool (N, C)."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise InputError(f"features must be a non-empty 2-D (rows, dims) array, got shape {X.shape}")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise InputError(f"features must be numeric, got dtype {X.dtype}")
    if np.issubdtype(X.dtype, np.floating):
        bad = np.zeros(len(X), dtype=bool)
        for start in range(0, len(X), 65536):  # bounded temporaries
            bad[start : start + 65536] = ~np.isfinite(X[start : start + 65536]).all(axis=1)
        if bad.any():
            raise InputError(
                f"features have NaN/inf in {int(bad.sum())} of {len(X)} rows (first at row {int(np.argmax(bad))})"
            )
    if num_classes < 2:
        raise InputError(f"num_classes must be >= 2, got {num_classes}")
    y = np.asarray(y)
    if len(y) != len(X):
        raise InputError(f"features have {len(X)} rows but labels have {len(y)}")
    if multilabel:
        if y.shape != (len(X), num_classes):
            raise InputError(f"multi-label targets must have shape ({len(X)}, {num_classes}), got {y.shape}")
        if y.dtype != bool and not np.isin(y, (0, 1)).all():
            raise InputError("multi-label targets must be 0/1")
        y = y.astype(bool)
        present = int(y.any(axis=0).sum())
    else:
        if y.ndim != 1:
            raise InputError(f"labels must be 1-D class ids, got shape {y.shape}")
        if not np.issubdtype(y.dtype, np.integer):
            if not np.issubdtype(y.dtype, np.floating) or not np.isfinite(y).all() or (y != np.round(y)).any():
                raise InputError(f"labels must be integer class ids, got dtype {y.dtype}")
        y = y.astype(np.int64)
        out = (y < 0) | (y >= num_classes)
        if out.any():
            raise InputError(f"{int(out.sum())} labels outside [0, {num_classes}), e.g. {int(y[out][0])}")
        present = int((np.bincount(y, minlength=num_classes) > 0).sum())
    if present < 2:
        raise InputError(f"labels have {present} class{'es' if present != 1 else ''} present; need at least 2")
    return X, y


# --------------------------------------------------------------------------- the solver


class _Converged(Exception):
    """Raised from the L-BFGS closure at the first point that passes the gradient test."""


class _Switch(Exception):
    """Raised from the fast-matmul L-BFGS closure when full float32 must take over."""


@contextmanager
def _fast_matmul(device: torch.device, on: bool) -> Iterator[None]:
    """float32 matmuls with reduced-precision inputs and float32 accumulation while ``on``.

    On a CPU with bf16 support that is oneDNN's bf16 mode (AMX tiles: about 2x the
    float32 speed here); on a CUDA GPU from Ampere on, TF32. Element-wise work, the
    accumulators and the parameters all stay float32.
    """
    if not on:
        yield
        return
    backend = torch.backends.mkldnn.matmul if device.type == "cpu" else torch.backends.cuda.matmul
    old = backend.fp32_precision
    backend.fp32_precision = "bf16" if device.type == "cpu" else "tf32"
    try:
        yield
    finally:
        backend.fp32_precision = old


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Run torch CPU ops on ``n`` threads (None: leave as is).

    For small problems: their ops take microseconds, and waking a second thread costs more
    than that (milliseconds when other jobs share the cores).
    """
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _fast_matmul_available(device: torch.device, dtype: torch.dtype) -> bool:
    if dtype != torch.float32:
        return False
    try:
        if device.type == "cpu":
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and hasattr(
                torch.backends.mkldnn.matmul, "fp32_precision"
            )
        if device.type == "cuda":
            return torch.cuda.get_device_capability(device)[0] >= 8 and hasattr(
                torch.backends.cuda.matmul, "fp32_precision"
            )
    except (RuntimeError, AttributeError):
        return False
    return False


class _Problem:
    """Standardised features ``[x, 1]`` and targets on the device; the objective and its gradient.

    Parameters travel as one ``(C, D+1)`` matrix ``Wb = [W | b]``: with the ones column in
    the features, the logits and the gradient (bias included) are one matmul each.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, num_classes: int, cfg: LogRegConfig) -> None:
        self.device = torch.device(cfg.device)
        self.dtype = _DTYPES[cfg.dtype]
        self.multilabel = cfg.multilabel
        self.chunk = cfg.chunk_rows
        self.n, self.d = X.shape
        self.c = num_classes
        self.fast = (
            cfg.fast_matmul
            and self.n * (self.d + 1) * self.c >= _FAST_MIN_WORK
            and _fast_matmul_available(self.device, self.dtype)
        )
        src = torch.from_numpy(np.ascontiguousarray(X))
        # Centre in the wider of the input and compute dtypes (float64 input with large
        # offsets keeps its precision); block sums (pairwise within a block, so accurate in
        # float32 too) are added up in float64.
        work = torch.promote_types(src.dtype if src.is_floating_point() else torch.float64, self.dtype)
        step = 32768
        self.Xa = torch.empty((self.n, self.d + 1), dtype=self.dtype, device=self.device)
        self.Xa[:, self.d] = 1.0
        X_ = self.Xa[:, : self.d]
        mean = torch.zeros(self.d, dtype=torch.float64, device=self.device)
        if cfg.standardize:
            for s in range(0, self.n, step):
                mean += src[s : s + step].to(self.device, work).sum(dim=0).double()
            mean /= self.n
        sq = torch.zeros(self.d, dtype=torch.float64, device=self.device)
        for s in range(0, self.n, step):
            block = src[s : s + step].to(self.device, work)
            if cfg.standardize:
                block = block - mean.to(work)
                sq += block.square().sum(dim=0).double()
            X_[s : s + step] = block
        std = torch.ones_like(mean)
        if cfg.standardize:
            std = (sq / self.n).sqrt_()
            std[std == 0] = 1.0
            X_.div_(std.to(self.dtype))
        self.mean, self.std = mean.cpu().numpy(), std.cpu().numpy()
        self.y = torch.from_numpy(y).to(self.device, self.dtype if self.multilabel else torch.int64)
        self._eig: tuple[torch.Tensor, torch.Tensor] | None = None
        self._logits: torch.Tensor | None = None
        self.threads = torch.get_num_threads() if self.device.type == "cpu" else None

    def objective(self, Wb: torch.Tensor, grad: torch.Tensor, penalty: float) -> float:
        """f(W, b) as defined in the module docstring; writes its gradient into ``grad`` (C, D+1)."""
        n, d = self.n, self.d
        if self._logits is None:  # reused: no (rows x classes) allocation per evaluation
            self._logits = torch.empty(min(n, self.chunk), self.c, dtype=self.dtype, device=self.device)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        for s in range(0, n, self.chunk):
            Xc = self.Xa[s : s + self.chunk]
            Z = torch.mm(Xc, Wb.t(), out=self._logits[: len(Xc)])  # becomes dloss/dlogits in place
            if self.multilabel:
                Yc = self.y[s : s + self.chunk]
                # logistic loss = softplus(-z) for a positive, softplus(z) for a negative
                total += torch.nn.functional.softplus(Z * (1 - 2 * Yc)).sum(dtype=torch.float64)
                Z.sigmoid_().sub_(Yc)
            else:
                yc = self.y[s : s + self.chunk, None]
                torch.log_softmax(Z, 1, out=Z)
                total -= Z.gather(1, yc).sum(dtype=torch.float64)
                Z.exp_().scatter_add_(1, yc, torch.full(yc.shape, -1.0, dtype=self.dtype, device=self.device))
            grad.addmm_(Z.t(), Xc, beta=0.0 if s == 0 else 1.0)
        grad.div_(n)
        W = Wb[:, :d]
        grad[:, :d].add_(W, alpha=penalty)
        return float(total / n + 0.5 * penalty * torch.sum(W * W, dtype=torch.float64))

    def _kappa(self) -> float:
        """Inverse curvature of the loss per logit at 0: softmax 1/C (off the all-ones direction), sigmoid 1/4."""
        return 4.0 if self.multilabel else float(self.c)

    def preconditioner(self, penalty: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``P = (S + k*penalty*I)^(-1/2)`` and its inverse, S the second moments of ``[x, 1]``.

        Near W = 0 the objective's Hessian is ``(S + k*penalty*I)/k`` on each class
        (k = C for the softmax, 4 for sigmoids), so in the variables ``V = Wb P^-1`` it is
        the identity over k: correlated features stop slowing L-BFGS down. S comes from at
        most 32,768 evenly spaced rows; any symmetric positive definite P leaves the
        minimiser unchanged, so its precision does not matter.
        """
        if self._eig is None:
            rows = torch.linspace(0, self.n - 1, min(self.n, 32768), device=self.device).long()
            Xs = self.Xa[rows]
            S = (Xs.t() @ Xs).double().cpu() / len(rows)
            with _threads(1):  # multi-threaded eigh slows down 10-50x on cores other jobs share
                e, V = torch.linalg.eigh(S)
            self._eig = (e.clamp_min(1e-6 * float(e.max())), V)
        e, V = self._eig
        e = e + self._kappa() * penalty
        P = (V * e.rsqrt()) @ V.t()
        P_inv = (V * e.sqrt()) @ V.t()
        return P.to(self.device, self.dtype), P_inv.to(self.device, self.dtype)

    def to_init(self, init: "LogRegModel | tuple[np.ndarray, np.ndarray] | None") -> torch.Tensor:
        """Starting ``[W | b]`` in this problem's standardised space (zeros when ``init`` is None).

        A model fitted with another mean/std is mapped exactly: with ``z = (x - m) / s`` and
        ``z' = (x - m') / s'``, ``W z + b = (W s'/s) z' + W (m' - m)/s + b``.
        """
        Wb = torch.zeros(self.c, self.d + 1, dtype=self.dtype, device=self.device)
        if init is None:
            return Wb
        if isinstance(init, LogRegModel):
            W0 = init.W.astype(np.float64)
            istd = init.std.astype(np.float64)
            W = W0 * (self.std / istd)
            b = init.b.astype(np.float64) + W0 @ ((self.mean - init.mean.astype(np.float64)) / istd)
        else:
            W, b = (np.asarray(a, dtype=np.float64) for a in init)
        if W.shape != (self.c, self.d) or b.shape != (self.c,):
            raise InputError(f"init has W {W.shape} and b {b.shape}; expected ({self.c}, {self.d}) and ({self.c},)")
        Wb[:, : self.d] = torch.from_numpy(W).to(Wb)
        Wb[:, self.d] = torch.from_numpy(b).to(Wb)
        return Wb

    def fit(
        self, penalty: float, cfg: LogRegConfig, init: "LogRegModel | tuple[np.ndarray, np.ndarray] | None" = None
    ) -> LogRegModel:
        """Minimise by L-BFGS over ``V`` with ``Wb = scale * V @ P`` (see :meth:`preconditioner`).

        The stopping test is scikit-learn's: the largest entry of the gradient with respect
        to W and b is <= tol, checked at every evaluated point (line-search trial points
        included). With fast matmuls a point must pass it again in full float32, which then
        takes over; if the fast evaluations stall first, a second L-BFGS run in full
        float32 starts from the best of them. Either way the model passes the test in float32.
        """
        P, P_inv = self.preconditioner(penalty)
        Wb = self.to_init(init)
        iterations = evals = 0
        f: float | None = None
        gmax: float | None = None
        converged = False
        for fast in (True, False) if self.fast else (False,):
            run = _Run(self, penalty, cfg, P, P_inv, fast)
            # L-BFGS's own work is vector operations of C*(D+1) entries: one thread is
            # faster for those; the objective goes back to all of them.
            with _threads(1 if self.device.type == "cpu" else None):
                Wb, f, gmax, converged = run.minimise(Wb, cfg.max_iter - iterations)
            iterations += run.iterations
            evals += run.evals
            if converged or iterations >= cfg.max_iter:
                break
        if f is None or gmax is None:  # the end point was only seen with fast matmuls
            run = _Run(self, penalty, cfg, P, P_inv, False)
            f, gmax = run.evaluate(Wb)
            evals += run.evals
            converged = gmax <= cfg.tol
        Wb_np = Wb.detach().cpu().numpy().astype(np.float32)
        return LogRegModel(
            W=np.ascontiguousarray(Wb_np[:, : self.d]),
            b=np.ascontiguousarray(Wb_np[:, self.d]),
            mean=self.mean.astype(np.float32),
            std=self.std.astype(np.float32),
            penalty=penalty,
            multilabel=self.multilabel,
            iterations=iterations,
            function_evals=evals,
            converged=converged,
            objective=f,
            grad_max=gmax,
        )


class _Run:
    """One L-BFGS run over ``V`` with ``Wb = scale * V @ P``, with fast or full float32 matmuls."""

    def __init__(
        self, problem: _Problem, penalty: float, cfg: LogRegConfig, P: torch.Tensor, P_inv: torch.Tensor, fast: bool
    ) -> None:
        self.pb, self.penalty, self.cfg, self.P, self.P_inv, self.fast = problem, penalty, cfg, P, P_inv, fast
        self.grad = torch.empty(problem.c, problem.d + 1, dtype=problem.dtype, device=problem.device)
        self.iterations = self.evals = 0
        self.best: tuple[float, torch.Tensor | None] = (math.inf, None)
        self.stall = 0

    def evaluate(self, Wb: torch.Tensor, fast: bool = False) -> tuple[float, float]:
        """Objective and largest gradient entry at ``Wb``; the gradient stays in ``self.grad``."""
        with torch.no_grad(), _fast_matmul(self.pb.device, fast), _threads(self.pb.threads):
            f = self.pb.objective(Wb, self.grad, self.penalty)
        self.evals += 1
        return f, float(self.grad.abs().max())

    def _check(self, Wb: torch.Tensor, f: float, gmax: float) -> tuple[float, float]:
        """Raise :class:`_Converged` or :class:`_Switch` if this point ends the run; else its (f, gmax).

        A fast point that passes the test is re-evaluated in full float32; if it then fails,
        the run goes on in full float32 (its L-BFGS memory is still good). If fast points
        stop lowering the objective (their rounding noise), the run ends so that a fresh
        full-float32 one can start from the best of them.
        """
        if self.fast:
            if f < self.best[0]:
                self.best, self.stall = (f, Wb), 0
            else:
                self.stall += 1
            if gmax <= self.cfg.tol:
                self.fast = False
                f, gmax = self.evaluate(Wb)
            elif self.stall >= _FAST_STALL:
                raise _Switch(self.best[1])
        if gmax <= self.cfg.tol:
            raise _Converged(Wb, f, gmax)
        return f, gmax

    def minimise(self, Wb0: torch.Tensor, max_iter: int) -> tuple[torch.Tensor, float | None, float | None, bool]:
        """``(Wb, f, gmax, converged)`` at the end; f and gmax are None if only seen with fast matmuls."""
        try:
            f, gmax = self._check(Wb0, *self.evaluate(Wb0, self.fast))
        except _Converged as done:
            return done.args[0], done.args[1], done.args[2], True
        except _Switch as switch:
            return switch.args[0], None, None, False
        # Scale V so that L-BFGS's first step (1/|g_V|_1 along -g_V when that is below 1,
        # else 1) is the Newton step of the loss at W = 0, k times the preconditioned
        # gradient: no line search crawling up from a tiny first step.
        kappa = self.pb._kappa()
        gP1 = float(self.grad.mm(self.P).abs().sum())
        scale = kappa * gP1 if kappa * gP1 * gP1 > 1 else math.sqrt(kappa)
        V = (Wb0.mm(self.P_inv) / scale).contiguous()
        # L-BFGS evaluates its starting point again: hand it back from here.
        cache = {"V": V.clone(), "f": f, "gmax": gmax, "g": self.grad.mm(self.P).mul_(scale)}

        def closure() -> float:
            if torch.equal(V, cache["V"]):
                V.grad = cache["g"].clone()
                return cache["f"]
            with torch.no_grad():
                Wb = V.mm(self.P).mul_(scale)
            f, gmax = self._check(Wb, *self.evaluate(Wb, self.fast))
            V.grad = self.grad.mm(self.P).mul_(scale)
            cache.update(V=V.clone(), f=f, gmax=gmax, g=V.grad.clone())
            return f

        opt = torch.optim.LBFGS(
            [V],
            lr=1.0,
            max_iter=max(1, max_iter),
            max_eval=4 * max_iter + 20,
            tolerance_grad=0.0,
            tolerance_change=_TOL_CHANGE[self.pb.dtype],
            history_size=self.cfg.history_size,
            line_search_fn="strong_wolfe",
        )
        try:
            opt.step(closure)
        except _Converged as done:
            return done.args[0], done.args[1], done.args[2], True
        except _Switch as switch:
            return switch.args[0], None, None, False
        finally:
            self.iterations = int(opt.state[V].get("n_iter", 0))
        with torch.no_grad():
            Wb = V.mm(self.P).mul_(scale)
        if self.fast:
            return Wb, None, None, False
        if not torch.equal(V, cache["V"]):
            cache["f"], cache["gmax"] = self.evaluate(Wb)
        return Wb, cache["f"], cache["gmax"], cache["gmax"] <= self.cfg.tol


# --------------------------------------------------------------------------- public API


def fit_logreg(
    X: np.ndarray,
    y: np.ndarray,
    *,
    num_classes: int,
    penalty: float,
    cfg: LogRegConfig = LogRegConfig(),
    init: LogRegModel | tuple[np.ndarray, np.ndarray] | None = None,
) -> LogRegModel:
    """Fit W, b minimising the module's objective with L2 strength ``penalty``.

    ``y`` is int class ids ``(N,)``, or a 0/1 matrix ``(N, num_classes)`` when
    ``cfg.multilabel``. ``init`` warm-starts from an earlier model (mapped to this fit's
    standardisation) or from raw ``(W, b)`` in this fit's standardised space.
    """
    _check_config(cfg)
    penalty = _check_penalty(penalty)
    X, y = _check_inputs(X, y, num_classes, cfg.multilabel)
    with _threads(_thread_limit(X.shape, num_classes, cfg)):
        return _Problem(X, y, num_classes, cfg).fit(penalty, cfg, init)


def _thread_limit(shape: tuple[int, ...], num_classes: int, cfg: LogRegConfig) -> int | None:
    small = shape[0] * (shape[1] + 1) * num_classes < _ONE_THREAD_WORK
    return 1 if small and torch.device(cfg.device).type == "cpu" else None


def holdout_split(keys: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split of row indices into (fit, held-out), both sorted.

    Each group of equal ``keys`` gives ``floor(fraction * size)`` rows, and the rows still
    needed to reach ``round(fraction * N)`` in all come from the groups with the largest
    remainders; a group never gives its last row, so every class with rows keeps one in
    the fit part.
    """
    if not 0 < fraction < 1:
        raise InputError(f"holdout fraction must be in (0, 1), got {fraction}")
    keys = np.asarray(keys)
    rng = np.random.default_rng(seed)
    order = np.argsort(keys, kind="stable")
    _, starts, sizes = np.unique(keys[order], return_index=True, return_counts=True)
    want = fraction * sizes
    take = np.minimum(np.floor(want).astype(np.int64), sizes - 1)
    missing = int(round(fraction * len(keys))) - int(take.sum())
    if missing > 0:
        room = take < sizes - 1
        rank = np.argsort(-(want - np.floor(want)), kind="stable")
        rank = rank[room[rank]][:missing]
        take[rank] += 1
    held = [rng.permutation(order[s : s + n])[:t] for s, n, t in zip(starts, sizes, take)]
    hold = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    mask = np.ones(len(keys), dtype=bool)
    mask[hold] = False
    return np.flatnonzero(mask), hold


def _score(model: LogRegModel, X: np.ndarray, y: np.ndarray) -> float:
    scores = model.decision_function(X)
    if model.multilabel:
        value, _ = mean_average_precision(scores, y)
        return value
    return topk_accuracy(scores, y, 1)


def stratified_folds(keys: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Seeded stratified k-fold assignment: the fold (0..k-1) of each row.

    The rows of each group of equal ``keys`` are shuffled and dealt round the folds, the deal
    carrying on from one group to the next: every group splits as evenly as it can (a
    group smaller than ``k`` lands in as many folds as it has rows) and fold sizes differ by
    at most one row.
    """
    if k < 2:
        raise InputError(f"k-fold cross-validation needs k >= 2, got {k}")
    keys = np.asarray(keys)
    rng = np.random.default_rng(seed)
    order = np.argsort(keys, kind="stable")
    _, starts, sizes = np.unique(keys[order], return_index=True, return_counts=True)
    fold = np.empty(len(keys), dtype=np.int64)
    dealt = 0
    for s, n in zip(starts, sizes):
        fold[rng.permutation(order[s : s + n])] = (dealt + np.arange(n)) % k
        dealt += n
    return fold


def _strata(y: np.ndarray, multilabel: bool) -> np.ndarray:
    """What splits are stratified by: the class, or (multi-label) each row's rarest positive class (-1: none)."""
    if not multilabel:
        return y
    freq = y.sum(axis=0).astype(np.float64)
    keys = np.where(y, freq, np.inf).argmin(axis=1)
    keys[~y.any(axis=1)] = -1
    return keys


def search_scheme(keys: np.ndarray, cfg: LogRegConfig) -> int:
    """How :func:`select_penalty` scores penalties: the number of CV folds, or 0 for one held-out split.

    The rule: a held-out split of ``holdout_fraction`` (rounded to whole rows) is used unless
    it would hold out fewer than ``cfg.min_holdout_rows`` rows (default 50) or fewer than
    ``cfg.min_holdout_per_class`` rows per class on average (default 5); then stratified
    ``cfg.folds``-fold cross-validation is used (default 5), with fewer folds if the
    smallest class has fewer rows than that (never fewer than 2). ``cfg.cross_validate``
    True or False overrides the rule.
    """
    keys = np.asarray(keys)
    counts = np.unique(keys[keys >= 0], return_counts=True)[1]
    if cfg.cross_validate is None:
        held = int(round(cfg.holdout_fraction * len(keys)))
        small = held < cfg.min_holdout_rows or held < cfg.min_holdout_per_class * max(1, len(counts))
    else:
        small = bool(cfg.cross_validate)
    if not small:
        return 0
    smallest = int(counts.min()) if len(counts) else len(keys)
    return max(2, min(cfg.folds, smallest, len(keys)))


def choose_penalty(table: "list[PenaltyScore] | tuple[PenaltyScore, ...]", resolution: float) -> tuple[float, bool]:
    """The best-scoring penalty, ties (within float noise) going to the WEAKER (smaller) one,
    and whether the scores fail to tell the penalties apart.

    They fail when every score is NaN, or when the best and worst finite scores are equal
    or differ by less than ``resolution``: for top-1 accuracy the least a single validation
    row can move a score (a held-out split: 1 / held-out rows; k folds: 1 / (k x rows of
    the largest fold)); for mAP, which has no such step, 0 (only equal scores fail). With
    one penalty there is nothing to tell apart.
    """
    if not table:
        raise InputError("the penalty grid is empty")
    finite = [row for row in table if not math.isnan(row.score)]
    if not finite:
        return min(row.penalty for row in table), len(table) > 1
    best = max(row.score for row in finite)
    slack = 1e-9 * max(1.0, abs(best))
    chosen = min(row.penalty for row in finite if row.score >= best - slack)
    spread = best - min(row.score for row in finite)
    return chosen, len(table) > 1 and (spread <= slack or spread < resolution * (1 - 1e-6))


def _penalty_grid(cfg: LogRegConfig) -> list[float]:
    """The checked penalties, strongest first (each split's fits warm-start down the grid)."""
    penalties = sorted({_check_penalty(p) for p in cfg.penalties}, reverse=True)
    if not penalties:
        raise InputError("the penalty grid is empty")
    if not 0 < cfg.holdout_fraction < 1:
        raise InputError(f"holdout fraction must be in (0, 1), got {cfg.holdout_fraction}")
    return penalties


def _search_splits(
    keys: np.ndarray, cfg: LogRegConfig, n_rows: int
) -> tuple[list[tuple[np.ndarray, np.ndarray]], int, str]:
    """The (fit, validation) row splits the penalties are scored on, the number of CV folds (0: held out) and the
    scheme's name."""
    folds = search_scheme(keys, cfg)
    if folds:
        fold = stratified_folds(keys, folds, cfg.seed)
        splits = [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(folds)]
        scheme = f"{folds}-fold CV"
    else:
        fit_idx, hold_idx = holdout_split(keys, cfg.holdout_fraction, cfg.seed)
        if len(hold_idx) == 0:
            raise InputError(
                f"{n_rows} rows are too few to hold out {cfg.holdout_fraction:g} of them for choosing the penalty"
            )
        splits = [(fit_idx, hold_idx)]
        scheme = f"held-out {100 * cfg.holdout_fraction:g}%"
    return splits, folds, scheme


def _check_splits(
    y: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]], folds: int, scheme: str, cfg: LogRegConfig, n_rows: int
) -> None:
    """Refuse a split whose fit part has fewer than 2 classes present or whose validation part is empty."""
    for i, (fit_idx, val_idx) in enumerate(splits):
        y_fit = y[fit_idx]
        present = int(y_fit.any(axis=0).sum()) if cfg.multilabel else len(np.unique(y_fit))
        if present < 2 or len(val_idx) == 0:
            where = f"fold {i + 1} of {folds}" if folds else "after holding out rows, the fit part"
            raise InputError(
                f"{n_rows} rows are too few to choose the penalty ({scheme}): {where} has {present} class"
                f"{'es' if present != 1 else ''} present to fit; need at least 2"
            )


def _score_penalties(
    X: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    cfg: LogRegConfig,
    splits: list[tuple[np.ndarray, np.ndarray]],
    penalties: list[float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[float, LogRegModel]]:
    """Fit every penalty on every split (warm-started down the grid) and score it on the split's validation rows;
    the scores, summed iterations, convergence, and the first split's models (to warm-start the refit)."""
    scores = np.full((len(splits), len(penalties)), np.nan)
    iterations = np.zeros(len(penalties), dtype=np.int64)
    converged = np.ones(len(penalties), dtype=bool)
    first: dict[float, LogRegModel] = {}
    for i, (fit_idx, val_idx) in enumerate(splits):
        problem = _Problem(X[fit_idx], y[fit_idx], num_classes, cfg)
        X_val, y_val = X[val_idx], y[val_idx]
        previous: LogRegModel | None = None
        for j, p in enumerate(penalties):
            model = problem.fit(p, cfg, previous)
            previous = model
            scores[i, j] = _score(model, X_val, y_val)
            iterations[j] += model.iterations
            converged[j] &= model.converged
            if i == 0:
                first[p] = model
        del problem
    return scores, iterations, converged, first


def _penalty_table(
    penalties: list[float], scores: np.ndarray, iterations: np.ndarray, converged: np.ndarray, folds: int
) -> list[PenaltyScore]:
    """One row per penalty: its mean validation score over the splits (NaN scores left out), and per-fold scores."""
    table = []
    for j, p in enumerate(penalties):
        col = scores[:, j]
        mean = float(np.mean(col[~np.isnan(col)])) if (~np.isnan(col)).any() else float("nan")
        table.append(
            PenaltyScore(p, mean, int(iterations[j]), bool(converged[j]), tuple(float(v) for v in col) if folds else ())
        )
    return table


def _unclear_warning(
    table: list[PenaltyScore], metric: str, resolution: float, scheme: str, n_rows: int, validated: int, chosen: float
) -> str:
    """The warning text when the validation scores cannot tell the penalties apart (and why)."""
    finite = [row.score for row in table if not math.isnan(row.score)]
    if not finite:
        spread = f"every validation {metric} is NaN"
    elif max(finite) - min(finite) <= 1e-9 * max(1.0, abs(max(finite))):
        spread = f"every validation {metric} is {max(finite):.4f}"
    else:
        spread = (
            f"validation {metric} from {min(finite):.4f} to {max(finite):.4f}, less than one row's"
            f" worth ({resolution:.4f})"
        )
    return (
        f"the penalty search ({scheme} on {n_rows} rows, {validated} validated) could not tell the"
        f" {len(table)} penalties apart: {spread}. Chose penalty {chosen:g} (the best score, ties"
        f" going to the weaker penalty), but more training rows would be needed to choose it."
    )


def select_penalty(
    X: np.ndarray, y: np.ndarray, *, num_classes: int, cfg: LogRegConfig = LogRegConfig()
) -> PenaltySearch:
    """Choose the L2 penalty on validation rows taken from the training rows, then refit on all of them.

    Penalties are scored either on one held-out part of the rows (``cfg.holdout_fraction``)
    or, when that part would be small, by stratified k-fold cross-validation (the mean score
    over the folds; every row is validated exactly once): see :func:`search_scheme` for the
    rule. Splits and folds are stratified by class (multi-label: by each row's rarest
    positive class) and seeded by ``cfg.seed``. In each split, penalties are fitted
    strongest first, each warm-started from the previous solution. The best validation
    top-1 accuracy (multi-label: mAP) wins, ties going to the WEAKER penalty (a strong one
    can collapse the model onto one class). When the scores cannot tell the penalties apart
    (:func:`choose_penalty`) a RuntimeWarning says so, and the result's ``warning`` keeps
    it. The final model is refit on every row, warm-started from the first split's fit
    with the chosen penalty.
    """
    _check_config(cfg)
    X, y = _check_inputs(X, y, num_classes, cfg.multilabel)
    penalties = _penalty_grid(cfg)
    keys = _strata(y, cfg.multilabel)
    splits, folds, scheme = _search_splits(keys, cfg, len(X))
    _check_splits(y, splits, folds, scheme, cfg, len(X))
    with _threads(_thread_limit(X.shape, num_classes, cfg)):
        scores, iterations, converged, first = _score_penalties(X, y, num_classes, cfg, splits, penalties)
        table = _penalty_table(penalties, scores, iterations, converged, folds)
        metric = "mAP" if cfg.multilabel else "top1"
        resolution = 0.0 if cfg.multilabel else min(1.0 / (len(splits) * len(val_idx)) for _, val_idx in splits)
        chosen, unclear = choose_penalty(table, resolution)
        validated = sum(len(val_idx) for _, val_idx in splits)
        warning = None
        if unclear:
            warning = _unclear_warning(table, metric, resolution, scheme, len(X), validated, chosen)
            warnings.warn(warning, RuntimeWarning, stacklevel=2)
        final = _Problem(X, y, num_classes, cfg).fit(chosen, cfg, first[chosen])
    return PenaltySearch(
        penalty=chosen,
        metric=metric,
        table=tuple(table),
        model=final,
        fit_rows=min(len(fit_idx) for fit_idx, _ in splits),
        holdout_rows=validated,
        scheme=scheme,
        folds=folds,
        validation=tuple(val_idx for _, val_idx in splits),
        warning=warning,
    )
