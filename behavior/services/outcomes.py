"""How kept scores turned out: a run's probabilities against what its customers then did.

The first scoring run of each day keeps a copy of its scores (PastScore). Once a target's
horizon has passed since the run's `as_of`, its kept scores are compared with the labels the
training code would give those customers at that moment (behavior.core.features.build_labels), and
the metrics training reports (ROC-AUC, PR-AUC beside the base rate, precision and recall at
the model's threshold, Brier score, calibration table) are stored on the run. Validation
metrics say how a model did on the past before it served; these say how it did while serving.
Beside them, on the same customers, the best of the simple rules (the transparent scorers whose
ranking needs no fitting, as they stood at the run): the model version keeps its latest delivered
figure and is flagged when it ranked below that rule, and the next training replaces a flagged
champion even if it ranks the validation rows better.
Kept scores older than FORESIGHT_KEEP_SCORES_DAYS are forgotten; their outcomes stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.utils import timezone

from behavior.conf import foresight_settings
from behavior.core.features import TargetDefinition, build_features, build_labels
from behavior.core.scorers import scorers_needing_no_fit
from behavior.core.training import roc_auc, roc_auc_difference, roc_auc_interval, score_metrics
from behavior.models import ModelVersion, PastScore, ScoringRun
from behavior.selectors import customers_frame, events_frame, past_scores

# A version stored without a threshold has its precision and recall read at this probability.
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class OutcomesReport:
    checked: list[tuple[int, str]]  # (run, target) pairs whose outcomes were stored now
    forgotten_scores: int


def scoring_runs_check_outcomes(*, now: datetime | None = None) -> OutcomesReport:
    """Store the outcomes of every kept run and target whose horizon has passed; forget old kept scores."""
    now = now or timezone.now()
    checked = []
    for run in ScoringRun.objects.filter(keeps_scores=True, status=ScoringRun.Status.SUCCEEDED).order_by("as_of"):
        versions = ModelVersion.objects.in_bulk(run.model_versions.values())
        for name, version_id in run.model_versions.items():
            version = versions.get(version_id)
            if version is None or name in run.outcomes:
                continue
            definition = TargetDefinition.from_dict(version.definition)
            if run.as_of + definition.horizon > now:
                continue
            run.outcomes[name] = outcome = _outcome(run, definition, version)
            ScoringRun.objects.filter(pk=run.pk).update(outcomes=run.outcomes)
            _delivered_record(version, run, outcome)
            checked.append((run.pk, name))
    kept_since = now - timedelta(days=foresight_settings.KEEP_SCORES_DAYS)
    old = ScoringRun.objects.filter(keeps_scores=True, as_of__lt=kept_since)
    forgotten, _ = PastScore.objects.filter(run__in=old).delete()
    old.update(keeps_scores=False)
    return OutcomesReport(checked=checked, forgotten_scores=forgotten)


def _outcome(run: ScoringRun, definition: TargetDefinition, version: ModelVersion) -> dict:
    """Kept scores are those of the target's population at the run, so these are population metrics."""
    probability = past_scores(run_id=run.pk, target=definition.name)
    events = events_frame(since=run.as_of, until=run.as_of + definition.horizon)
    labels = build_labels(events, run.as_of, definition, customer_ids=probability.index)
    threshold = version.threshold if version.threshold is not None else DEFAULT_THRESHOLD
    y, p = labels.to_numpy(), probability.to_numpy()
    metrics = score_metrics(y, p, threshold)
    return {**metrics.as_dict(), "roc_auc_interval": _finite(roc_auc_interval(y, p)), "model_version": version.pk,
            "horizon_days": definition.horizon.days, "population": definition.population_label,
            **_beside_the_best_rule(run, definition, probability.index, y, p)}


def _beside_the_best_rule(run: ScoringRun, definition: TargetDefinition, customers, y: np.ndarray,
                          p: np.ndarray) -> dict:
    """The simple rule that ranked these customers best, from their features at the run, and the model's ROC-AUC
    less the rule's with a paired bootstrap interval. Picking the rule after the fact favours the rule: a model
    flagged below it may be close, never one that beat it."""
    if not len(customers) or y.all() or not y.any():
        return {}
    X = build_features(events_frame(until=run.as_of), run.as_of, customers_frame(), norms=run.norms).reindex(customers)
    rules = {s.label: s.rule(X, definition, {}) for s in scorers_needing_no_fit(definition)}
    best = max(rules, key=lambda label: np.nan_to_num(roc_auc(y, rules[label]), nan=-1.0))
    difference = roc_auc_difference(y, p, rules[best])
    return {"rule": best, "rule_roc_auc": _finite([roc_auc(y, rules[best])])[0],
            "versus_rule": _finite(difference), "below_rule": bool(difference[0] < 0)}


def _delivered_record(version: ModelVersion, run: ScoringRun, outcome: dict) -> None:
    """The version's latest delivered figure beside what it promised on validation, for the admin, `targets` and
    the API; runs are checked oldest first, so the newest stays."""
    keep = ("roc_auc", "roc_auc_interval", "n", "positives", "rule", "rule_roc_auc", "versus_rule", "below_rule")
    delivered = {"run": run.pk, "as_of": run.as_of.isoformat(), **{k: outcome[k] for k in keep if k in outcome}}
    version.metrics = {**version.metrics, "delivered": delivered}
    ModelVersion.objects.filter(pk=version.pk).update(metrics=version.metrics)


def _finite(values) -> list[float | None]:
    return [None if v is None or np.isnan(v) else float(v) for v in values]
