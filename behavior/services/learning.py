"""Training the behaviour models: read the shop once, train each target, register and promote.

The numeric work is behavior.features and behavior.training; this module only reads the database
as two frames (events and customers), calls them, and writes ModelVersion rows through the registry.
A shop with too few positives gets the transparent heuristic scorer (behavior.training.baseline_scores).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from django.utils import timezone

from behavior.features import FEATURES, TARGETS, Target, training_frame
from behavior.models import Customer, ModelVersion
from behavior.selectors import customers_frame, events_frame
from behavior.services.registry import model_version_promote_if_better, model_version_register
from behavior.training import (
    MIN_POSITIVES,
    Metrics,
    baseline_scores,
    best_f1_threshold,
    choose_cutoffs,
    enough_positives,
    evaluate,
    predict,
    roc_auc_interval,
    score_metrics,
    train,
)

Progress = Callable[[str], None]

# A bigger shop trains on a fixed sample of its customers: on a simulated shop of 200,000, halving the
# customers cost 0.003 ROC-AUC and halved the time, which otherwise grows with the shop (bench/scoring).
TRAINING_CUSTOMERS = 250_000


class TrainingError(Exception):
    """Training cannot be done, said in words an operator understands."""


@dataclass
class TrainingOutcome:
    target: str
    version_id: int
    kind: str  # ModelVersion.Kind
    promoted: bool
    status: str  # the version's status after training, e.g. "retired": the champion was at least as good
    roc_auc: float | None
    roc_auc_interval: tuple[float | None, float | None]
    pr_auc: float | None
    base_rate: float | None
    baseline_roc_auc: float | None
    baseline_pr_auc: float | None
    threshold: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    rows: int  # training rows (customer x cutoff)
    positives: int  # positive training rows
    validation_rows: int
    seconds: float  # the whole target: features, training, evaluation and registry
    note: str = ""


def models_train(
    *, as_of: datetime | None = None, targets: Iterable[str] | None = None, on_progress: Progress | None = None,
    max_customers: int = TRAINING_CUSTOMERS,
) -> list[TrainingOutcome]:
    """Train, register and (if better) promote a model per target from the events before `as_of` (default now)."""
    say = on_progress or (lambda message: None)
    as_of = as_of or timezone.now()
    if timezone.is_naive(as_of):
        raise TrainingError("as_of must be timezone-aware")
    names = list(targets or TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise TrainingError(f"unknown target(s) {unknown}; known: {sorted(TARGETS)}")

    every = max(1, math.ceil(Customer.objects.count() / max_customers))
    sample = f" (one customer in every {every})" if every > 1 else ""
    say(f"reading events before {as_of:%Y-%m-%d %H:%M} UTC and customers{sample}")
    events = events_frame(until=as_of, sample_every=every)
    customers = customers_frame(sample_every=every)
    if events.empty:
        raise TrainingError(f"no customer events before {as_of:%Y-%m-%d %H:%M}: nothing to train on")
    say(f"read {len(events):,} events of {len(customers):,} customers")
    first_event = events["occurred_at"].min()
    return [_target_train(TARGETS[n], events, customers, first_event, as_of, say) for n in names]


def _target_train(
    target: Target, events: pd.DataFrame, customers: pd.DataFrame, first_event: datetime, as_of: datetime,
    say: Progress,
) -> TrainingOutcome:
    started = time.perf_counter()
    try:
        cutoffs, validation = choose_cutoffs(first_event, as_of, target)
    except ValueError as error:
        raise TrainingError(
            f"cannot train {target.name} on the events from {first_event:%Y-%m-%d} to {as_of:%Y-%m-%d}: {error}"
        ) from error

    say(f"{target.name}: building features at {len(cutoffs)} training cutoffs "
        f"({cutoffs[0]:%Y-%m-%d} .. {cutoffs[-1]:%Y-%m-%d}) and validation at {validation:%Y-%m-%d}")
    X_train, y_train, _ = training_frame(events, cutoffs, target, customers)
    X_valid, y_valid, _ = training_frame(events, [validation], target, customers)
    baseline = _baseline_metrics(X_valid, y_valid, target.name)
    common = dict(target=target.name, feature_names=list(FEATURES), trained_from=cutoffs[0], validated_at=validation)
    sizes = dict(rows=len(y_train), positives=int(y_train.sum()), validation_rows=len(y_valid))

    metrics: Metrics | None
    interval: tuple[float | None, float | None]
    if enough_positives(y_train) and enough_positives(y_valid):
        say(f"{target.name}: training XGBoost on {sizes['rows']:,} rows ({sizes['positives']:,} positive)")
        model = train(X_train, y_train, X_valid, y_valid)
        say(f"{target.name}: trained {model.best_iteration + 1} trees in {model.training_seconds:.1f} s; evaluating")
        metrics = evaluate(model, X_valid, y_valid)
        interval = roc_auc_interval(np.asarray(y_valid), predict(model.booster, X_valid))
        stored = {**metrics.as_dict(), "roc_auc_interval": _none_if_nan(interval),
                  "training_seconds": model.training_seconds, "best_iteration": model.best_iteration,
                  "training_rows": sizes["rows"], "training_positives": sizes["positives"],
                  "baseline": baseline.as_dict() if baseline else None}
        version = model_version_register(booster=model.booster, metrics=stored, threshold=model.threshold,
                                         params=model.params, **common)
        say(f"{target.name}: comparing candidate #{version.pk} with the champion on the validation rows")
        promoted = model_version_promote_if_better(candidate=version, X_valid=X_valid, y_valid=y_valid)
        note = "" if promoted else "the champion was at least as good on the same validation rows: kept it"
    else:
        say(f"{target.name}: {sizes['positives']} positive training rows, {int(y_valid.sum())} in validation "
            f"(at least {MIN_POSITIVES} each needed): registering the heuristic scorer")
        metrics, interval = baseline, (None, None)
        if baseline is not None:
            interval = roc_auc_interval(np.asarray(y_valid), baseline_scores(X_valid, target.name))
        stored = {**(baseline.as_dict() if baseline else {}), "roc_auc_interval": _none_if_nan(interval),
                  "training_rows": sizes["rows"], "training_positives": sizes["positives"],
                  "baseline": baseline.as_dict() if baseline else None}
        version = model_version_register(booster=None, metrics=stored,
                                         threshold=baseline.threshold if baseline else None, **common)
        # The heuristic serves only a shop that has no champion yet; a trained champion is not replaced by it.
        has_champion = ModelVersion.objects.filter(target=target.name, status=ModelVersion.Status.CHAMPION).exists()
        promoted = not has_champion and model_version_promote_if_better(
            candidate=version, X_valid=X_valid, y_valid=y_valid
        )
        note = ("too few positives to train: the heuristic scorer serves" if promoted
                else "too few positives to train: heuristic registered as a candidate, the champion stays")

    version.refresh_from_db(fields=["status"])
    m = metrics.as_dict() if metrics else {}
    low, high = _none_if_nan(interval)
    return TrainingOutcome(
        target=target.name, version_id=version.pk, kind=version.kind, promoted=promoted, status=version.status,
        roc_auc=m.get("roc_auc"), roc_auc_interval=(low, high), pr_auc=m.get("pr_auc"),
        base_rate=m.get("base_rate"), baseline_roc_auc=baseline.as_dict()["roc_auc"] if baseline else None,
        baseline_pr_auc=baseline.as_dict()["pr_auc"] if baseline else None, threshold=version.threshold,
        precision=m.get("precision"), recall=m.get("recall"), f1=m.get("f1"),
        seconds=time.perf_counter() - started, note=note, **sizes,
    )


def _baseline_metrics(X_valid: pd.DataFrame, y_valid: pd.Series, target_name: str) -> Metrics | None:
    """The heuristic's metrics on the validation rows (threshold: its best F1 there), or None without rows."""
    if y_valid.empty:
        return None
    scores = baseline_scores(X_valid, target_name)
    return score_metrics(np.asarray(y_valid), scores, best_f1_threshold(np.asarray(y_valid), scores))


def _none_if_nan(values) -> list[float | None]:
    return [None if v is None or np.isnan(v) else float(v) for v in values]
