"""How kept scores turned out: a run's probabilities against what its customers then did.

The first scoring run of each day keeps a copy of its scores (PastScore). Once a target's
horizon has passed since the run's `as_of`, its kept scores are compared with the labels the
training code would give those customers at that moment (behavior.core.features.build_labels), and
the metrics training reports (ROC-AUC, PR-AUC beside the base rate, precision and recall at
the model's threshold, Brier score, calibration table) are stored on the run. Validation
metrics say how a model did on the past before it served; these say how it did while serving.
Kept scores older than FORESIGHT_KEEP_SCORES_DAYS are forgotten; their outcomes stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from behavior.conf import foresight_settings
from behavior.core.features import TargetDefinition, build_labels
from behavior.core.training import score_metrics
from behavior.models import ModelVersion, PastScore, ScoringRun
from behavior.selectors import events_frame, past_scores

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
            run.outcomes[name] = _outcome(run, definition, version)
            ScoringRun.objects.filter(pk=run.pk).update(outcomes=run.outcomes)
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
    metrics = score_metrics(labels.to_numpy(), probability.to_numpy(), threshold)
    return {**metrics.as_dict(), "model_version": version.pk, "horizon_days": definition.horizon.days,
            "population": definition.population_label}
