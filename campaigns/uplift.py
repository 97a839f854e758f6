"""Learning whom a campaign's action persuades, from its own treatment and control groups.

Each assignment whose attribution window has closed, with the features the customer had when assigned
(campaign_history), trains uplift models (behavior.core.uplift); the best is registered under the campaign's
uplift_target and becomes champion only if it ranks unseen customers better than the response ranking beyond
noise. When none does, the response ranking serves, and a response ranking is what the campaign's condition
already is when it keeps to a band of purchase intent: the campaign has no uplift champion, its condition picks
its audience, and its page says why (campaigns.selectors.campaign_targeting). No response score stands in for an
uplift in the expected-gain arithmetic (uplift_choose): it is not a change in the chance to buy.
"""

from __future__ import annotations

import logging
from datetime import datetime

import numpy as np
from django.db import transaction
from django.utils import timezone

from behavior.core.outreach import in_holdout
from behavior.core.training import ModelArtifactError
from behavior.core.uplift import (
    LEARNERS,
    RESPONSE,
    VALIDATION_SHARE,
    Blend,
    Estimate,
    qini_curve,
    ranking_choose,
    rankings_compare,
    rankings_fit,
    top_uplift,
)
from behavior.models import ModelVersion
from behavior.services.registry import uplift_version_load, uplift_version_promote_if_better, uplift_version_register
from campaigns.actions.base import CampaignError
from campaigns.models import Campaign
from campaigns.selectors import MIN_CONVERSIONS, MIN_HISTORY, campaign_history

log = logging.getLogger(__name__)


# The learners a campaign can keep: those whose model is one Blend of boosters reading the features as they are
# (the S-learner's booster reads treatment columns too, which the registry's stored feature names do not hold).
CAMPAIGN_LEARNERS = tuple(name for name in LEARNERS if name != "S-learner")


def campaign_uplift_learn(*, campaign: Campaign, now: datetime | None = None, seed: int = 0) -> ModelVersion:
    """Learn whom the campaign's action persuades from its own treatment and control groups, and register it.

    Every uplift learner, the response ranking (how likely a treated customer is to convert) and chance are fitted
    on the assignments of 70% of the customers and compared on the other 30%, unseen, by a paired bootstrap of the
    Qini coefficient. The best uplift learner is registered with its figures beside the response ranking's (the Qini
    and the observed uplift among the 30% each ranks highest, with 95% intervals); it becomes champion only if it
    beat the response ranking beyond noise and ranks better than the current champion. Otherwise the response
    ranking serves (metrics["serves"]): the version is retired, and so is a champion that does not beat the response
    ranking beyond noise on these customers either. The 30% are the same customers every time (a stable hash), so
    no champion was ever fitted on them.
    """
    now = now or timezone.now()
    history = campaign_history(campaign=campaign, now=now)
    _enough_history(history)
    held = in_holdout(campaign.uplift_target, history.customer_ids, VALIDATION_SHARE * 100)
    X, treated, y = history.X, history.treated, history.converted.astype(np.float64)
    fitted = rankings_fit(X[~held], treated[~held], y[~held], seed=seed, names=CAMPAIGN_LEARNERS)
    y_held, treated_held = y[held], treated[held]
    scores = {name: ranking(X[held]) for name, ranking in fitted.items()}
    comparison = rankings_compare(y_held, treated_held, scores, seed=seed)
    serves, why = ranking_choose(comparison)
    kept = serves if serves in LEARNERS else max((n for n in fitted if n in LEARNERS),
                                                 key=lambda name: comparison.qini[name].value)
    metrics = {"assignments": len(y), "validation_assignments": int(held.sum()),
               "learners_qini": {name: q.value for name, q in comparison.qini.items()}, "serves": serves, "why": why,
               "over_response": _interval(comparison.over_response[kept])}
    for prefix, name in (("", kept), ("response_", RESPONSE)):
        metrics |= _ranking_metrics(prefix, comparison.qini[name], top_uplift(y_held, scores[name], treated_held),
                                    qini_curve(y_held, scores[name], treated_held))
    model = fitted[kept]
    assert isinstance(model, Blend)  # every one of CAMPAIGN_LEARNERS is
    version = uplift_version_register(target=campaign.uplift_target, model=model, learner=kept,
                                      feature_names=list(X.columns), metrics=metrics, validated_at=now)
    if serves == kept:
        uplift_version_promote_if_better(candidate=version, X_valid=X[held], treated=treated_held, y=y_held)
    else:
        _response_serves(version, X[held], treated_held, y_held, scores[RESPONSE], seed)
    version.refresh_from_db()
    return version


@transaction.atomic
def _response_serves(version: ModelVersion, X_held, treated: np.ndarray, y: np.ndarray, response: np.ndarray,
                     seed: int) -> None:
    """No uplift learner beat the response ranking: the new version is retired, and so is the champion unless it
    beats the response ranking beyond noise on these customers (a model that cannot rank them cannot either)."""
    ModelVersion.objects.filter(pk=version.pk).update(status=ModelVersion.Status.RETIRED)
    champion = ModelVersion.objects.select_for_update().filter(target=version.target,
                                                              status=ModelVersion.Status.CHAMPION).first()
    if champion is None:
        return
    try:
        theirs = uplift_version_load(champion)(X_held.reindex(columns=champion.feature_names))
    except (ModelArtifactError, KeyError, ValueError):
        theirs = None
    if theirs is not None:
        over = rankings_compare(y, treated, {RESPONSE: response, "champion": theirs}, seed=seed).over_response
        version.metrics = {**version.metrics, "champion_version": champion.pk,
                           "champion_over_response": _interval(over["champion"])}
        ModelVersion.objects.filter(pk=version.pk).update(metrics=version.metrics)
        if over["champion"].low > 0:
            return
    ModelVersion.objects.filter(pk=champion.pk).update(status=ModelVersion.Status.RETIRED)


def _interval(estimate: Estimate) -> list[float]:
    return [estimate.value, estimate.low, estimate.high]


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
