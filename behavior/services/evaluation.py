"""How good a model is over time: a stored version on a time window, and a backtest of the training recipe.

Both read the shop once as frames and score the target's population at cutoffs whose whole label
window is in the stored history, each beside the plain recency/frequency rule on the same rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from behavior.core.features import TargetDefinition, training_frame
from behavior.core.scorers import SCORERS
from behavior.core.training import best_f1_threshold, choose_cutoffs, score_metrics
from behavior.models import ModelVersion, Target
from behavior.selectors import customers_frame, events_frame
from behavior.services.learning import candidate_predict, candidates_fit
from behavior.services.registry import LoadedModel


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
    """The version's metrics on its target's population at cutoffs from `start` to `end`, `step_days` apart."""
    model = LoadedModel(version)
    events, customers = events_frame(), customers_frame()
    cutoffs = list(pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq=pd.Timedelta(days=step_days)))
    _check_labels_known(cutoffs, events, model.definition.horizon)
    results = []
    for cutoff in cutoffs:
        X, y, _ = training_frame(events, [cutoff], model.definition, customers)
        results.append(_compare(cutoff, model.definition, X, y.to_numpy(), model.predict(X), version.threshold))
    return results


def backtest(*, target_name: str, cutoffs: list[datetime],
             on_progress: Callable[[str], None] | None = None) -> list[CutoffMetrics]:
    """At each cutoff: choose and fit a scorer as `train --as-of cutoff` would, then score the population there."""
    target = Target.objects.filter(name=target_name).first()
    if target is None:
        raise EvaluationError(f"no target {target_name!r}; see `manage.py targets`")
    definition = target.definition()
    events, customers = events_frame(), customers_frame()
    cutoffs = [pd.Timestamp(c) for c in cutoffs]
    _check_labels_known(cutoffs, events, definition.horizon)
    first_event = events["occurred_at"].min()
    results = []
    for cutoff in cutoffs:
        try:
            split = choose_cutoffs(first_event, cutoff, definition)
        except ValueError as error:
            raise EvaluationError(f"cannot train {target_name} before {cutoff:%Y-%m-%d}: {error}") from error
        if on_progress:
            on_progress(f"{cutoff:%Y-%m-%d}: training on {len(split.training)} cutoffs, validating on "
                        f"{len(split.validation)} up to {split.validation[-1]:%Y-%m-%d}")
        known = events[events["occurred_at"] < cutoff]
        X_train, y_train, _ = training_frame(known, split.training, definition, customers)
        X_valid, y_valid, _ = training_frame(known, split.validation, definition, customers)
        if not y_train.any() or not y_valid.any():
            raise EvaluationError(f"no positive {target_name} rows to learn from before {cutoff:%Y-%m-%d}")
        chosen, _, because = candidates_fit(definition, X_train, y_train.to_numpy(), X_valid, y_valid.to_numpy())
        if on_progress:
            on_progress(f"{cutoff:%Y-%m-%d}: {because}")
        X, y, _ = training_frame(events, [cutoff], definition, customers)
        results.append(_compare(cutoff, definition, X, y.to_numpy(), candidate_predict(chosen, definition, X),
                                chosen.threshold))
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


def _compare(cutoff, definition: TargetDefinition, X: pd.DataFrame, labels: np.ndarray, scores: np.ndarray,
             threshold: float | None) -> CutoffMetrics:
    """The scores beside the recency/frequency rule (its ranking needs no fitting) on the same rows."""
    baseline = SCORERS["recency_frequency"].rule(X, definition, {})
    model = score_metrics(labels, scores, threshold if threshold is not None else best_f1_threshold(labels, scores))
    base = score_metrics(labels, baseline, best_f1_threshold(labels, baseline))
    return CutoffMetrics(cutoff=cutoff, rows=len(labels), positives=int(labels.sum()), roc_auc=model.roc_auc,
                         pr_auc=model.pr_auc, baseline_roc_auc=base.roc_auc, baseline_pr_auc=base.pr_auc, f1=model.f1)
