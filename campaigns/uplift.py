"""Learning whom a campaign's action persuades, from its own treatment and control groups.

Each assignment whose attribution window has closed, with the features the customer had when assigned
(campaign_history), trains an uplift model (behavior.core.uplift) registered under the campaign's
uplift_target; it becomes champion only if it ranks unseen customers better than a response model does.
Targeting by it is read side (campaigns.selectors.campaign_targeting, uplift_choose).
"""

from __future__ import annotations

import logging
from datetime import datetime

import numpy as np
from django.utils import timezone

from behavior.core.outreach import in_holdout
from behavior.core.uplift import (
    VALIDATION_SHARE,
    Estimate,
    qini_curve,
    qini_interval,
    response_ranking,
    top_uplift,
    uplift_fit,
)
from behavior.models import ModelVersion
from behavior.services.registry import uplift_version_promote_if_better, uplift_version_register
from campaigns.actions.base import CampaignError
from campaigns.models import Campaign
from campaigns.selectors import MIN_CONVERSIONS, MIN_HISTORY, campaign_history

log = logging.getLogger(__name__)


def campaign_uplift_learn(*, campaign: Campaign, now: datetime | None = None, seed: int = 0) -> ModelVersion:
    """Learn whom the campaign's action persuades from its own treatment and control groups, and register it.

    A learner is chosen and fitted on the assignments of 70% of the customers; the other 30%, unseen, measure
    it: the Qini coefficient and the observed uplift among the 30% it ranks highest, with 95% intervals, beside
    a response model (how likely a treated customer is to convert) fitted and measured on the same rows. The
    30% are the same customers every time (a stable hash), so no champion was ever fitted on them either.
    """
    now = now or timezone.now()
    history = campaign_history(campaign=campaign, now=now)
    _enough_history(history)
    held = in_holdout(campaign.uplift_target, history.customer_ids, VALIDATION_SHARE * 100)
    X, treated, y = history.X, history.treated, history.converted.astype(np.float64)
    model = uplift_fit(X[~held], treated[~held], y[~held], seed=seed)
    response = response_ranking(X[~held], treated[~held], y[~held], seed=seed)
    y_held, treated_held = y[held], treated[held]
    metrics = {"assignments": len(y), "validation_assignments": int(held.sum()), "learners_qini": model.validation}
    for prefix, ranking in (("", model.predict), ("response_", response)):
        ranked = ranking(X[held])
        metrics |= _ranking_metrics(prefix, qini_interval(y_held, ranked, treated_held, seed=seed),
                                    top_uplift(y_held, ranked, treated_held), qini_curve(y_held, ranked, treated_held))
    version = uplift_version_register(target=campaign.uplift_target, model=model.predict, learner=model.learner,
                                      feature_names=list(X.columns), metrics=metrics, validated_at=now)
    uplift_version_promote_if_better(candidate=version, X_valid=X[held], treated=treated_held, y=y_held)
    version.refresh_from_db()
    return version


def _enough_history(history) -> None:
    for name, group in (("treatment", history.treated), ("control", ~history.treated)):
        assigned, converted = int(group.sum()), int(history.converted[group].sum())
        if assigned < MIN_HISTORY or converted < MIN_CONVERSIONS:
            raise CampaignError(
                f"too little history to learn whom the campaign persuades: its {name} group has {assigned:,} "
                f"assignments with a closed attribution window and {converted:,} conversions; it needs at least "
                f"{MIN_HISTORY:,} and {MIN_CONVERSIONS:,}")


def _ranking_metrics(prefix: str, qini: Estimate, top: Estimate, curve: tuple[np.ndarray, np.ndarray]) -> dict:
    """A ranking's figures as stored: its Qini curve cut to at most 50 points (for the chart)."""
    x, gain = curve
    keep = np.unique(np.linspace(0, len(x) - 1, min(len(x), 50)).round().astype(int))
    return {f"{prefix}qini": qini.value, f"{prefix}qini_interval": [qini.low, qini.high],
            f"{prefix}top_uplift": _finite(top.value), f"{prefix}top_uplift_interval": [_finite(top.low),
                                                                                      _finite(top.high)],
            f"{prefix}qini_curve": [[float(a), float(b)] for a, b in zip(x[keep], gain[keep], strict=True)]}


def ranking_in_words(metrics: dict, prefix: str = "") -> str:
    """A ranking's validation figures (prefix "" the uplift model's, "response_" the response model's)."""
    low, high = metrics[f"{prefix}qini_interval"]
    top, (top_low, top_high) = metrics[f"{prefix}top_uplift"], metrics[f"{prefix}top_uplift_interval"]
    top_words = "-" if top is None else f"{top:+.1%} [{top_low:+.1%}, {top_high:+.1%}]"
    return f"Qini {metrics[f'{prefix}qini']:+.3f} [{low:+.3f}, {high:+.3f}], uplift in its top 30% {top_words}"


def _finite(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def uplift_learn_all(now: datetime | None = None) -> dict[int, str]:
    """Learn again for every campaign that targets by uplift and has not ended: what came of each, in words."""
    now = now or timezone.now()
    said = {}
    for campaign in Campaign.objects.exclude(status=Campaign.Status.ENDED).order_by("pk"):
        if not campaign.targets_by_uplift:
            continue
        try:
            version = campaign_uplift_learn(campaign=campaign, now=now)
        except CampaignError as error:
            said[campaign.pk] = str(error)
        except Exception as error:  # one campaign's failure leaves the others to learn
            log.exception("campaign %s could not learn whom it persuades", campaign.pk)
            said[campaign.pk] = f"failed: {error}"
        else:
            said[campaign.pk] = f"model version {version.pk}: {version.status}"
    return said
