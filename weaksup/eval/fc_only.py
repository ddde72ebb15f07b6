"""``eval fc-only``: an L2-regularised logistic regression on frozen features (paper Sec. 4).

The paper's protocol, made exact: the regressor is a real regularised logistic regression
(multinomial for single-label targets, one sigmoid per class for multi-label ones) fitted
to convergence by full-batch L-BFGS, not an SGD-trained linear head; its penalty is chosen
on a random stratified 10% of the training videos held out, then the regressor is refitted
on all of them with that penalty. When 10% would be a handful of videos (fewer than 50, or
fewer than 5 per class on average) the penalty is chosen by stratified 5-fold
cross-validation over all the training videos instead (fewer folds if a class has fewer
than 5 videos; the score is the mean top-1 / mAP over the folds). Ties go to the weaker
penalty; a search that cannot tell the penalties apart says so in a RuntimeWarning and in
the protocol (``penalty_search_warning``, also in ``warnings``). The protocol records the
scheme used (``penalty_search_scheme``: "held-out 10%" or "5-fold CV"). The regressor is
fitted on video-level features (clip features averaged by ``extract``) and tested at
video level; clip-level figures apply the same regressor to each clip's features on their
own.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from weaksup.devices import uses_cuda
from weaksup.errors import InputError
from weaksup.eval.features import ClassSpace, check_same_protocol, class_space, multi_hot, read_features
from weaksup.eval.label_maps import read_label_map
from weaksup.eval.logreg import LogRegConfig, select_penalty
from weaksup.eval.report import Predictions, network_name, write_report
from weaksup.outputs import require_local_output


@dataclass(frozen=True)
class FcOnlyConfig:
    """The fc-only protocol's settings; ``penalties`` None means LogRegConfig's default grid.

    ``holdout_fraction``, ``folds``, ``min_holdout_rows``, ``min_holdout_per_class`` and
    ``cross_validate`` choose how the penalty is searched (see :class:`LogRegConfig`).
    """

    penalties: tuple[float, ...] | None = None
    holdout_fraction: float = 0.1
    folds: int = 5
    min_holdout_rows: int = 50
    min_holdout_per_class: float = 5.0
    cross_validate: bool | None = None
    multilabel: bool = False
    label_map: Path | None = None
    max_iter: int = 500
    device: str = "auto"
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def eval_fc_only(train: Path, test: Path, out: Path, cfg: FcOnlyConfig = FcOnlyConfig()) -> dict[str, Any]:
    """Fit on ``train`` features, test on ``test`` features, write the report into ``out``; returns metrics."""
    require_local_output(out)
    started = time.perf_counter()
    tr = read_features(train)
    te = read_features(test)
    notes = check_same_protocol(tr, te)
    for note in notes:
        warnings.warn(note, RuntimeWarning, stacklevel=2)
    label_map = read_label_map(cfg.label_map) if cfg.label_map is not None else None
    device = "cuda" if uses_cuda(cfg.device) else "cpu"
    lr_kwargs: dict[str, Any] = {
        "holdout_fraction": cfg.holdout_fraction,
        "folds": cfg.folds,
        "min_holdout_rows": cfg.min_holdout_rows,
        "min_holdout_per_class": cfg.min_holdout_per_class,
        "cross_validate": cfg.cross_validate,
        "max_iter": cfg.max_iter,
        "multilabel": cfg.multilabel,
        "seed": cfg.seed,
        "device": device,
    }
    if cfg.penalties is not None:
        lr_kwargs["penalties"] = tuple(cfg.penalties)
    lr_cfg = LogRegConfig(**lr_kwargs)

    if cfg.multilabel:
        space, y_train, y_test, test_truth = _multilabel_space(tr, te)
    else:
        space = class_space(tr, te, label_map)
        y_train, y_test = space.train, space.test
        test_truth = {"labels": y_test}
    num_classes = len(space.names)
    search = select_penalty(tr.features, y_train, num_classes=num_classes, cfg=lr_cfg)  # warns if it cannot choose
    model = search.model
    if search.warning is not None:
        notes = [*notes, search.warning]

    videos = Predictions(model.predict_proba(te.features), **test_truth)
    clips = None
    if te.clip_features is not None:
        lengths = [len(m) for m in te.clip_features]
        clip_x = np.concatenate(te.clip_features)
        clip_truth = {k: np.repeat(v, lengths, axis=0) for k, v in test_truth.items()}
        clips = Predictions(model.predict_proba(clip_x), **clip_truth)
    protocol = {
        "method": "fc-only: L2 logistic regression on frozen features (L-BFGS, full batch)",
        "objective": "multi-label: per-class sigmoid + logistic loss"
        if cfg.multilabel
        else "multinomial softmax cross-entropy",
        "penalty": search.penalty,
        "penalty_search": [
            {"penalty": s.penalty, f"heldout_{search.metric}": s.score, "iterations": s.iterations}
            | ({f"fold_{search.metric}": list(s.fold_scores)} if s.fold_scores else {})
            for s in search.table
        ],
        "penalty_search_scheme": search.scheme,
        "penalty_search_rows": {"fit": search.fit_rows, "validation": search.holdout_rows},
        "penalty_search_warning": search.warning,
        "holdout_fraction": cfg.holdout_fraction,
        "standardized": lr_cfg.standardize,
        "iterations": model.iterations,
        "converged": model.converged,
        "label_map": space.label_map,
        "features": (tr.protocol or {}) | {"train_table": str(train), "test_table": str(test)},
        "clips": (tr.protocol or {}).get("num_clips"),
        "checkpoint": (tr.protocol or {}).get("checkpoint"),
        "warnings": notes,
        "device": device,
        **cfg.extra,
    }
    counts = {
        "train_videos": len(tr),
        "train_rejected": tr.rejected,
        "test_videos": len(te),
        "test_rejected": te.rejected,
        "wall_s": round(time.perf_counter() - started, 2),
    }
    return write_report(
        out,
        videos=videos,
        clips=clips,
        class_names=space.names,
        protocol=protocol,
        counts=counts,
        video_ids=list(te.video_ids),
        title=f"{network_name(protocol['checkpoint'])}, fc-only: {Path(train).name} -> {Path(test).name}",
    )


def _multilabel_space(tr, te) -> tuple[ClassSpace, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Multi-label targets from ``label_ids`` in the tables' shared numbering."""
    for fs in (tr, te):
        if fs.multi is None:
            raise InputError(f"{fs.path}: multi-label evaluation needs label_ids on every row (matched_label_ids)")
    num_classes = 1 + max(max((max(ids) for ids in fs.multi if ids), default=-1) for fs in (tr, te))
    if num_classes < 2:
        raise InputError(f"{tr.path}: multi-label evaluation needs at least 2 classes")
    y_train = multi_hot(tr.multi, num_classes, tr.path)
    y_test = multi_hot(te.multi, num_classes, te.path)
    untrained = np.flatnonzero((y_test.sum(axis=0) > 0) & (y_train.sum(axis=0) == 0))
    if len(untrained):
        raise InputError(
            f"{te.path}: test label id {int(untrained[0])} has no positive training example in {tr.path}"
            f" ({len(untrained)} such labels)"
        )
    names = [str(i) for i in range(num_classes)]
    space = ClassSpace(
        names, np.zeros(0, np.int64), np.zeros(0, np.int64), f"label_ids numbering shared by {tr.path} and {te.path}"
    )
    return space, y_train, y_test, {"targets": y_test}
