"""How good a model is over time: a stored version on a time window, and a backtest of the training recipe.

Both read the shop once as frames and score customers at cutoffs whose whole label window is
in the stored history, each beside the transparent baseline on the same rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from behavior.features import TARGETS, training_frame
from behavior.models import ModelVersion
from behavior.selectors import customers_frame, events_frame
from behavior.services.registry import model_version_load
from behavior.training import baseline_scores, best_f1_threshold, choose_cutoffs, predict, score_metrics, train


class EvaluationError(Exception):
    """The evaluation cannot be done, said in words an operator understands."""


@dataclass
class CutoffMetrics:
    cutoff: pd.Timestamp
    rows: int
    positives: int
    roc_auc: float
    pr_auc: float
    baseline_roc_auc: float
    baseline_pr_auc: float
    f1: float


def model_version_evaluate(*, version: ModelVersion, start: datetime, end: datetime, step_days: int = 7
                           ) -> list[CutoffMetrics]:
    """The version's metrics at cutoffs from `start` to `end`, `step_days` apart."""
    target = TARGETS[version.target]
    events, customers = events_frame(), customers_frame()
    cutoffs = list(pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq=pd.Timedelta(days=step_days)))
    _check_labels_known(cutoffs, events, target.horizon)
    booster = model_version_load(version)
    results = []
    for cutoff in cutoffs:
        X, y, _ = training_frame(events, [cutoff], target, customers)
        scores = predict(booster, X) if booster is not None else baseline_scores(X, target.name)
        results.append(_compare(cutoff, y, scores, baseline_scores(X, target.name), version.threshold))
    return results


def backtest(*, target_name: str, cutoffs: list[datetime],
             on_progress: Callable[[str], None] | None = None) -> list[CutoffMetrics]:
    """At each cutoff: train as `train --as-of cutoff` would, then score the customers there."""
    target = TARGETS[target_name]
    events, customers = events_frame(), customers_frame()
    cutoffs = [pd.Timestamp(c) for c in cutoffs]
    _check_labels_known(cutoffs, events, target.horizon)
    first_event = events["occurred_at"].min()
    results = []
    for cutoff in cutoffs:
        try:
            training, validation = choose_cutoffs(first_event, cutoff, target)
        except ValueError as error:
            raise EvaluationError(f"cannot train {target_name} before {cutoff:%Y-%m-%d}: {error}") from error
        if on_progress:
            on_progress(f"{cutoff:%Y-%m-%d}: training on {len(training)} cutoffs, validating at {validation:%Y-%m-%d}")
        X_train, y_train, _ = training_frame(events, training, target, customers)
        X_valid, y_valid, _ = training_frame(events, [validation], target, customers)
        model = train(X_train, y_train, X_valid, y_valid)
        X, y, _ = training_frame(events, [cutoff], target, customers)
        results.append(_compare(cutoff, y, predict(model.booster, X), baseline_scores(X, target_name),
                                model.threshold))
    return results


def _check_labels_known(cutoffs: list[pd.Timestamp], events: pd.DataFrame, horizon: pd.Timedelta) -> None:
    if not cutoffs:
        raise EvaluationError("no cutoff in the given window")
    last = events["occurred_at"].max() if not events.empty else None
    late = [c for c in cutoffs if last is None or c + horizon > last]
    if late:
        raise EvaluationError(f"the outcome after {late[0]:%Y-%m-%d} is not known yet: the stored history ends "
                              f"{'nowhere' if last is None else f'{last:%Y-%m-%d %H:%M}'}, and labels need "
                              f"{horizon.days} days after a cutoff")


def _compare(cutoff, y: pd.Series, scores: np.ndarray, baseline: np.ndarray, threshold: float | None
             ) -> CutoffMetrics:
    labels = np.asarray(y, dtype=bool)
    model = score_metrics(labels, scores, threshold if threshold is not None else best_f1_threshold(labels, scores))
    base = score_metrics(labels, baseline, best_f1_threshold(labels, baseline))
    return CutoffMetrics(cutoff=cutoff, rows=len(labels), positives=int(labels.sum()), roc_auc=model.roc_auc,
                         pr_auc=model.pr_auc, baseline_roc_auc=base.roc_auc, baseline_pr_auc=base.pr_auc, f1=model.f1)
