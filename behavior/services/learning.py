"""Training the behaviour models: read the shop once, train each target, register and promote.

The numeric work is behavior.core.features, behavior.core.training and behavior.core.scorers; this module reads the
database as two frames (events and customers), builds the features once per cutoff for every target,
and writes ModelVersion rows through the registry. For each target the candidates are XGBoost (when
there are enough positives to learn from) and the transparent scorers that fit it, all judged on the
same pooled validation rows of the target's population; XGBoost serves only when it beats the best
transparent scorer beyond the noise of a paired bootstrap, so a small shop gets the simpler rule. The chosen
learner is then fitted again on every labelled cutoff, validation ones included, so that what serves has seen
the newest labels; its figures stay those of the choice. A history too short to validate on (or without
positives on both sides of the split) is served from its first event by a transparent scorer marked unvalidated.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np
import pandas as pd
import xgboost as xgb
from django.utils import timezone

from behavior.core.features import TargetDefinition, build_features, build_labels, longest_window, model_features
from behavior.core.scorers import (
    SCORERS,
    Scorer,
    scorer_first,
    scorer_fit,
    scorer_fit_unvalidated,
    scorer_predict,
    scorers_for,
    scorers_needing_no_fit,
)
from behavior.core.training import (
    MIN_POSITIVES,
    HistoryTooShort,
    Metrics,
    best_f1_threshold,
    choose_cutoffs,
    labelled_cutoffs,
    predict,
    roc_auc,
    roc_auc_difference,
    roc_auc_interval,
    score_metrics,
    train,
)
from behavior.models import Customer, ModelVersion, Target
from behavior.selectors import customers_frame, events_frame
from behavior.services.registry import (
    model_version_promote_if_better,
    model_version_promote_unvalidated,
    model_version_register,
)

Progress = Callable[[str], None]

# A bigger shop trains on a fixed sample of its customers: on a simulated shop of 200,000, halving the
# customers cost 0.003 ROC-AUC and halved the time, which otherwise grows with the shop (bench/scoring).
TRAINING_CUSTOMERS = 250_000
BOOTSTRAP_SAMPLES = 500
# A young shop's labels choose among the rules only from this many positives on; below, the target's first rule.
CHOICE_POSITIVES = 10


class TrainingError(Exception):
    """Training cannot be done, said in words an operator understands."""


@dataclass
class Candidate:
    kind: str  # ModelVersion.Kind
    label: str
    scores: np.ndarray  # on the validation rows
    metrics: Metrics
    interval: tuple[float, float]
    params: dict = field(default_factory=dict)
    booster: xgb.Booster | None = None
    threshold: float | None = None

    def summary(self) -> dict:
        m = self.metrics.as_dict()
        return {"kind": self.kind, "label": self.label, "roc_auc": m["roc_auc"],
                "roc_auc_interval": _none_if_nan(self.interval), "pr_auc": m["pr_auc"],
                "top_precision": m["top_precision"], "top_lift": m["top_lift"]}


@dataclass
class TrainingOutcome:
    target: str
    population: str
    status: str  # the version's status after training
    version_id: int | None = None
    kind: str = ""
    promoted: bool = False
    metrics: dict = field(default_factory=dict)  # the served candidate's, on the population
    candidates: list[dict] = field(default_factory=list)
    chosen_because: str = ""
    all_customers: dict = field(default_factory=dict)
    rows: int = 0  # training rows (customer x cutoff)
    positives: int = 0
    validation_rows: int = 0
    validation_positives: int = 0
    validation_cutoffs: int = 0
    seconds: float = 0.0
    note: str = ""
    unvalidated: bool = False  # served before the history could validate a choice
    fitted_rows: int = 0  # the rows the served model was fitted on: training and validation ones
    fitted_cutoffs: int = 0


class _Rows:
    """One target's stacked rows: its population at the training and at the validation cutoffs, labelled.

    A history too short to validate on has only training cutoffs (`labelled_cutoffs`) and, at `now` (the as-of
    time), the population that will be scored, unlabelled.
    """

    def __init__(self, definition: TargetDefinition, training: list[pd.Timestamp], validation: list[pd.Timestamp],
                 *, between: list[pd.Timestamp] | None = None, history_before: float = 0.0,
                 now: pd.Timestamp | None = None, why_unvalidated: str = ""):
        self.definition, self.training, self.validation = definition, training, validation
        self.between = between or []  # labelled cutoffs between the two sides: for the final fit only
        self.history_before = history_before  # days of history before the first training cutoff
        self.now, self.why_unvalidated = now, why_unvalidated
        self.train: list[tuple[pd.DataFrame, pd.Series]] = []
        self.valid: list[tuple[pd.DataFrame, pd.Series]] = []
        self.gap: list[tuple[pd.DataFrame, pd.Series]] = []
        self.everyone: tuple[pd.DataFrame, pd.Series] | None = None  # all active customers, newest validation cutoff
        self.scored_now: pd.DataFrame | None = None

    @property
    def cutoffs(self) -> set[pd.Timestamp]:
        return {*self.training, *self.between, *self.validation, *([self.now] if self.now is not None else [])}

    def add(self, events: pd.DataFrame, cutoff: pd.Timestamp, X: pd.DataFrame) -> None:
        inside = self.definition.in_population(X)
        if cutoff == self.now:
            self.scored_now = X[inside]
            return
        if self.validation and cutoff == self.validation[-1]:
            active = X[X["days_since_event"].notna()]
            self.everyone = active, build_labels(events, cutoff, self.definition, customer_ids=active.index)
        rows = X[inside]
        labels = build_labels(events, cutoff, self.definition, customer_ids=rows.index)
        index = pd.MultiIndex.from_product([[cutoff], rows.index], names=["cutoff", "customer_id"])
        part = (rows.set_axis(index), labels.set_axis(index))
        (self.valid if cutoff in self.validation else self.gap if cutoff in self.between else self.train).append(part)

    @property
    def labelled(self) -> list[tuple[pd.DataFrame, pd.Series]]:
        """Every labelled cutoff's rows, oldest first: what the chosen learner is fitted on at the end."""
        return self.train + self.gap + self.valid

    @staticmethod
    def stacked(parts: list[tuple[pd.DataFrame, pd.Series]]) -> tuple[pd.DataFrame, np.ndarray]:
        if not parts:
            return pd.DataFrame(), np.zeros(0)
        return pd.concat([x for x, _ in parts]), np.concatenate([y.to_numpy() for _, y in parts])


def models_train(
    *, as_of: datetime | None = None, targets: Iterable[str] | None = None, on_progress: Progress | None = None,
    max_customers: int = TRAINING_CUSTOMERS,
) -> list[TrainingOutcome]:
    """Train, register and (if better) promote a scorer per target from the events before `as_of` (default now).

    Every target gets a scorer: a validated choice where the history allows one, else an unvalidated rule.
    """
    say = on_progress or (lambda message: None)
    as_of = as_of or timezone.now()
    if timezone.is_naive(as_of):
        raise TrainingError("as_of must be timezone-aware")
    defined = {t.name: t.definition() for t in Target.objects.all()}
    names = list(targets or defined)
    unknown = [n for n in names if n not in defined]
    if unknown:
        raise TrainingError(f"unknown target(s) {unknown}; defined: {sorted(defined)} (see `manage.py targets`)")

    every = max(1, math.ceil(Customer.objects.count() / max_customers))
    sample = f" (one customer in every {every})" if every > 1 else ""
    say(f"reading events before {as_of:%Y-%m-%d %H:%M} UTC and customers{sample}")
    events = events_frame(until=as_of, sample_every=every)
    if events.empty:
        raise TrainingError(f"no customer events before {as_of:%Y-%m-%d %H:%M}: nothing to train on")
    customers = customers_frame(sample_every=every)
    say(f"read {len(events):,} events of {len(customers):,} customers")
    first_event = events["occurred_at"].min()
    history_days = (pd.Timestamp(as_of) - first_event) / pd.Timedelta(days=1)

    rows: dict[str, _Rows] = {}
    for name in names:
        definition = defined[name]
        try:
            split = choose_cutoffs(first_event, as_of, definition)
            rows[name] = _Rows(definition, split.training, split.validation, between=split.between,
                               history_before=split.history_days)
        except HistoryTooShort as error:
            rows[name] = _Rows(definition, labelled_cutoffs(first_event, as_of, definition), [],
                               now=pd.Timestamp(as_of).tz_convert("UTC"), why_unvalidated=str(error))
    cutoffs = sorted({c for r in rows.values() for c in r.cutoffs})
    started = time.perf_counter()
    for i, cutoff in enumerate(cutoffs, 1):
        X = build_features(events, cutoff, customers)
        for r in rows.values():
            if cutoff in r.cutoffs:
                r.add(events, cutoff, X)
        say(f"features at {i}/{len(cutoffs)} cutoffs ({cutoff:%Y-%m-%d}), {time.perf_counter() - started:.0f} s")
    return [_target_train(rows[name], history_days, say) for name in names]


def _target_train(rows: _Rows, history_days: float, say: Progress) -> TrainingOutcome:
    started = time.perf_counter()
    X_train, y_train = rows.stacked(rows.train)
    X_valid, y_valid = rows.stacked(rows.valid)
    problem = rows.why_unvalidated or _too_little(y_train, "training") or _too_little(y_valid, "validation")
    if problem:
        outcome = _unvalidated_train(rows, history_days, problem, say)
    else:
        outcome = _validated_train(rows, X_train, y_train, X_valid, y_valid, say)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _validated_train(rows: _Rows, X_train: pd.DataFrame, y_train: np.ndarray, X_valid: pd.DataFrame,
                     y_valid: np.ndarray, say: Progress) -> TrainingOutcome:
    definition = rows.definition
    outcome = TrainingOutcome(
        definition.name, definition.population_label, "", rows=len(y_train), positives=int(y_train.sum()),
        validation_rows=len(y_valid), validation_positives=int(y_valid.sum()), validation_cutoffs=len(rows.validation),
    )
    say(f"{definition.name}: {len(y_train):,} training rows ({int(y_train.sum()):,} positive) at "
        f"{len(rows.training)} cutoffs, {len(y_valid):,} validation rows ({int(y_valid.sum()):,} positive) at "
        f"{len(rows.validation)} cutoffs; population: {definition.population_label}")
    chosen, candidates, because = candidates_fit(definition, X_train, y_train, X_valid, y_valid, say)
    say(f"{definition.name}: {because}")
    X_all, y_all = rows.stacked(rows.labelled)
    say(f"{definition.name}: fitting {chosen.label} again on all {len(y_all):,} rows, validation ones included")
    served = learner_refit(chosen, definition, X_all, y_all, X_valid, y_valid)
    features = model_features(definition.horizon)

    common = {"population": definition.population_label, "chosen_because": because,
              "training_rows": outcome.rows, "training_positives": outcome.positives,
              "validation_cutoffs": [f"{c:%Y-%m-%d}" for c in rows.validation]}
    # Every candidate is kept as a version, so that what it lost to can be read, compared and replayed later;
    # only the chosen one competes with the champion, fitted again on the validation rows too.
    versions = {}
    for c in candidates:
        fitted = served if c is chosen else c
        extra = {"fitted_rows": len(y_all), "fitted_through": f"{rows.validation[-1]:%Y-%m-%d}"} if c is chosen else {}
        versions[c.kind] = model_version_register(
            definition=definition, kind=c.kind, booster=fitted.booster,
            feature_names=features if fitted.booster is not None else [],
            metrics={**c.metrics.as_dict(), "roc_auc_interval": _none_if_nan(c.interval), **common, **extra},
            threshold=fitted.threshold, params=fitted.params, trained_from=rows.training[0],
            validated_at=rows.validation[-1])
    summaries = [{**c.summary(), "version": versions[c.kind].pk} for c in candidates]
    for c in candidates:
        v = versions[c.kind]
        v.metrics = {**v.metrics, "candidates": summaries,
                     **({"all_customers": _all_customers(rows, c)} if c is chosen else {})}
        v.status = ModelVersion.Status.CANDIDATE if c is chosen else ModelVersion.Status.RETIRED
        v.save(update_fields=["metrics", "status"])
    version = versions[chosen.kind]
    stored = version.metrics
    note = _history_note(definition, rows.history_before)
    promoted = model_version_promote_if_better(candidate=version, X_valid=X_valid, y_valid=y_valid,
                                               roc_auc_valid=chosen.metrics.roc_auc)
    version.refresh_from_db(fields=["status", "metrics"])
    if not promoted:
        note = "; ".join(filter(None, [note, "the champion ranked the same validation rows at least as well: kept it"]))
    outcome.status, outcome.version_id, outcome.kind = version.status, version.pk, chosen.kind
    outcome.promoted = promoted
    outcome.metrics, outcome.candidates, outcome.chosen_because = stored, summaries, because
    outcome.all_customers, outcome.note = stored["all_customers"], note
    outcome.fitted_rows, outcome.fitted_cutoffs = len(y_all), len(rows.labelled)
    return outcome


def _unvalidated_train(rows: _Rows, history_days: float, why: str, say: Progress) -> TrainingOutcome:
    """The best rule a young shop's labels can pick (or the target's first rule), its probability curve fitted on
    what is labelled so far, registered as unvalidated: it serves until a validated choice replaces it."""
    definition = rows.definition
    X, y = rows.stacked(rows.train + rows.valid)
    now = rows.scored_now if rows.scored_now is not None else X
    positives = int(y.sum())
    scorer, picked = _unvalidated_choice(definition, X, y)
    params = scorer_fit_unvalidated(scorer, X, y, now, definition)
    reference = X if len(X) else now
    p = scorer_predict(scorer, reference, definition, params) if len(reference) else np.zeros(0)
    # With no outcome to choose on, the top tenth get reasons: campaigns read the highest scores first.
    threshold = best_f1_threshold(y, p) if 0 < positives < len(y) else float(np.quantile(p, 0.9)) if len(p) else 0.5
    days = round(history_days)
    because = (f"unvalidated: {days} day{'s' * (days != 1)} of history, {positives:,} "
               f"positive{'s' * (positives != 1)} so far among {len(y):,} labelled rows; {scorer.label} serves "
               f"({scorer.how}){picked} until the history can validate a choice ({why})")
    say(f"{definition.name}: {because}")
    version = model_version_register(
        definition=definition, kind=scorer.name, booster=None, feature_names=[], threshold=threshold, params=params,
        metrics={"unvalidated": True, "chosen_because": because, "population": definition.population_label,
                 "history_days": round(history_days, 1), "labelled_rows": len(y), "positives": positives},
        trained_from=rows.training[0] if rows.training else None)
    promoted = model_version_promote_unvalidated(candidate=version)
    version.refresh_from_db(fields=["status"])
    return TrainingOutcome(
        definition.name, definition.population_label, version.status, version_id=version.pk, kind=scorer.name,
        promoted=promoted, metrics=version.metrics, chosen_because=because, rows=len(y), positives=positives,
        unvalidated=True, fitted_rows=len(y), fitted_cutoffs=len(rows.train),
        note="" if promoted else "a validated champion serves: kept it")


def _unvalidated_choice(definition: TargetDefinition, X: pd.DataFrame, y: np.ndarray) -> tuple[Scorer, str]:
    """The rule that ranks the labelled rows best once they hold CHOICE_POSITIVES positives, else the first rule.

    Only rules whose ranking needs no fitting compete, so ranking the rows they are chosen on flatters none of them.
    """
    positives = int(y.sum())
    if positives < CHOICE_POSITIVES or positives == len(y):
        return scorer_first(definition), ""
    aucs = {s.name: roc_auc(y, s.rule(X, definition, {})) for s in scorers_needing_no_fit(definition)}
    best = max(aucs, key=lambda name: np.nan_to_num(aucs[name], nan=-1.0))
    return SCORERS[best], f", the best of {len(aucs)} rules on the labelled rows (ROC-AUC {aucs[best]:.3f})"


def candidates_fit(
    definition: TargetDefinition, X_train: pd.DataFrame, y_train: np.ndarray, X_valid: pd.DataFrame,
    y_valid: np.ndarray, say: Progress = lambda message: None,
) -> tuple[Candidate, list[Candidate], str]:
    """Every candidate fitted on the training rows and judged on the validation rows: (served, all, why)."""
    customers = X_valid.index.get_level_values("customer_id").to_numpy()
    candidates = _transparent_candidates(definition, X_train, y_train, X_valid, y_valid, customers, say)
    if y_train.sum() >= MIN_POSITIVES:
        features = model_features(definition.horizon)
        say(f"{definition.name}: training XGBoost on {len(features)} features")
        model = train(X_train[features], y_train, X_valid[features], y_valid)
        p = predict(model.booster, X_valid)
        candidates.append(Candidate(ModelVersion.Kind.XGBOOST, "XGBoost", p,
                                    score_metrics(y_valid, p, model.threshold),
                                    roc_auc_interval(y_valid, p, groups=customers, n_boot=BOOTSTRAP_SAMPLES),
                                    params={**model.params, "best_iteration": model.best_iteration},
                                    booster=model.booster, threshold=model.threshold))
    chosen, because = _choose(candidates, y_valid, customers, int(y_train.sum()))
    return chosen, candidates, because


def learner_refit(chosen: Candidate, definition: TargetDefinition, X_all: pd.DataFrame, y_all: np.ndarray,
                  X_valid: pd.DataFrame, y_valid: np.ndarray) -> Candidate:
    """The chosen learner fitted again on every labelled row (X_all: training and validation cutoffs), so that the
    served model has seen the newest labels. XGBoost keeps the threshold chosen on validation, where it was unseen;
    a rule's ranking does not change, so its threshold is found again on the validation rows for its new curve."""
    if chosen.booster is not None:
        features = model_features(definition.horizon)
        model = train(X_all[features], y_all, X_valid[features], y_valid)
        return replace(chosen, booster=model.booster, params={**model.params, "best_iteration": model.best_iteration})
    scorer = SCORERS[chosen.kind]
    params = scorer_fit(scorer, X_all, y_all, definition)
    threshold = best_f1_threshold(y_valid, scorer_predict(scorer, X_valid, definition, params))
    return replace(chosen, params=params, threshold=threshold)


def candidate_predict(candidate: Candidate, definition: TargetDefinition, X: pd.DataFrame) -> np.ndarray:
    if candidate.booster is not None:
        return predict(candidate.booster, X)
    return scorer_predict(SCORERS[candidate.kind], X, definition, candidate.params)


def _transparent_candidates(definition, X_train, y_train, X_valid, y_valid, customers, say) -> list[Candidate]:
    out = []
    for scorer in scorers_for(definition):
        try:
            params = scorer_fit(scorer, X_train, y_train, definition)
        except ValueError as error:
            say(f"{definition.name}: {scorer.label} left out: {error}")
            continue
        p = scorer_predict(scorer, X_valid, definition, params)
        threshold = best_f1_threshold(y_valid, p)
        out.append(Candidate(scorer.name, scorer.label, p, score_metrics(y_valid, p, threshold),
                             roc_auc_interval(y_valid, p, groups=customers, n_boot=BOOTSTRAP_SAMPLES),
                             params=params, threshold=threshold))
    return out


def _choose(candidates: list[Candidate], y: np.ndarray, customers: np.ndarray, positives: int
            ) -> tuple[Candidate, str]:
    """The best transparent scorer by ROC-AUC, unless XGBoost beats it beyond the paired bootstrap's interval."""
    transparent = [c for c in candidates if c.booster is None]
    best = max(transparent, key=lambda c: np.nan_to_num(c.metrics.roc_auc, nan=-1.0))
    boosted = next((c for c in candidates if c.booster is not None), None)
    if boosted is None:
        return best, (f"{best.label} serves: the best transparent scorer (ROC-AUC {best.metrics.roc_auc:.3f}); "
                      f"XGBoost needs at least {MIN_POSITIVES} positive training rows, these hold {positives}")
    gain, low, high = roc_auc_difference(y, boosted.scores, best.scores, groups=customers, n_boot=BOOTSTRAP_SAMPLES)
    versus = f"ROC-AUC {boosted.metrics.roc_auc:.3f} against {best.label}'s {best.metrics.roc_auc:.3f}, " \
             f"difference {gain:+.3f} [95%: {low:+.3f}, {high:+.3f}]"
    if low > 0:
        return boosted, f"XGBoost serves: it beats the best transparent scorer beyond noise ({versus})"
    return best, f"{best.label} serves: XGBoost does not beat it beyond noise ({versus})"


def _all_customers(rows: _Rows, chosen: Candidate) -> dict:
    """The served scorer on every active customer at the newest validation cutoff: for scale, not for judging."""
    if rows.everyone is None or chosen.threshold is None:
        return {}
    X, y = rows.everyone
    m = score_metrics(y.to_numpy(), candidate_predict(chosen, rows.definition, X), chosen.threshold).as_dict()
    return {k: m[k] for k in ("roc_auc", "pr_auc", "base_rate", "top_precision", "top_lift", "n", "positives")}


def _too_little(y: np.ndarray, part: str) -> str:
    positives = int(np.sum(y))
    if len(y) == 0:
        return f"no {part} rows in the population"
    if positives == 0:
        return f"no positive among the {len(y):,} {part} rows"
    if positives == len(y):
        return f"every one of the {len(y):,} {part} rows is positive"
    return ""


def _history_note(definition: TargetDefinition, history_before: float) -> str:
    needed = longest_window(definition.horizon)
    if history_before >= needed:
        return ""
    return (f"features look back up to {needed} days for a {definition.horizon.days}-day horizon, but the first "
            f"training cutoff has {history_before:.0f} days of history: the longest windows are partly empty")


def _none_if_nan(values) -> list[float | None]:
    return [None if v is None or np.isnan(v) else float(v) for v in values]
