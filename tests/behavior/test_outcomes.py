"""Kept scores: the first run of a day keeps a copy, checked against what customers did once the horizon passed."""

from datetime import timedelta

import numpy as np
import pytest
from django.db.models import Max

from behavior.models import Event, ModelVersion, PastScore, ScoringRun
from behavior.services.outcomes import scoring_runs_check_outcomes
from behavior.services.scoring import scoring_chunk_score, scoring_cycle_run
from tests.behavior.test_scoring import END, _expected_rows, _population, _shop_with_champions

pytestmark = pytest.mark.sqlite
AS_OF = END - timedelta(days=14)  # both horizons (7 and 14 days) end by END, the simulation's last day


@pytest.fixture
def shop(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return _shop_with_champions()


@pytest.mark.django_db
def test_the_days_first_run_keeps_its_scores_and_learns_how_they_turned_out(shop, admin_client):
    kept = scoring_cycle_run(as_of=AS_OF)
    later = scoring_cycle_run(as_of=AS_OF + timedelta(hours=1))
    rows = _expected_rows(AS_OF)
    chunk = kept.chunk_rows.get()
    scoring_chunk_score(run=kept, first=chunk.first, last=chunk.last)  # a chunk scored again keeps nothing twice

    assert (kept.keeps_scores, later.keeps_scores) == (True, False)
    assert PastScore.objects.filter(run=kept).count() == rows and PastScore.objects.count() == rows

    # After 10 days the purchase horizon (7 days) has passed, the support one (14 days) not yet.
    assert scoring_runs_check_outcomes(now=AS_OF + timedelta(days=10)).checked == [(kept.pk, "purchase_intent")]
    assert scoring_runs_check_outcomes(now=END).checked == [(kept.pk, "support_risk")]
    assert scoring_runs_check_outcomes(now=END).checked == []  # once

    outcome = ScoringRun.objects.get(pk=kept.pk).outcomes["purchase_intent"]
    active = _population("purchase_intent", AS_OF)  # judged on the population it scored
    buyers = (Event.objects.filter(type="purchase", occurred_at__gte=AS_OF, occurred_at__lt=AS_OF + timedelta(days=7),
                                   customer__in=active).values("customer").distinct().count())
    assert (outcome["n"], outcome["positives"], outcome["horizon_days"]) == (len(active), buyers, 7)
    assert outcome["population"] == "customers active in the last 90 days"
    assert outcome["roc_auc"] > 0.6  # the kept scores line up with the customers who then bought
    assert sum(b["count"] for b in outcome["calibration"]) == len(active)

    # Beside the best simple rule on the same customers: at least as good a rule as plain recency, computed here.
    last_seen = dict(Event.objects.filter(customer__in=active, occurred_at__lt=AS_OF).values("customer")
                     .annotate(last=Max("occurred_at")).values_list("customer", "last"))
    week = (AS_OF, AS_OF + timedelta(days=7))
    bought = set(Event.objects.filter(type="purchase", occurred_at__range=week, customer__in=active)
                 .exclude(occurred_at=week[1]).values_list("customer", flat=True))
    recency = np.array([-(AS_OF - last_seen[c]).total_seconds() for c in sorted(active)])
    label = np.array([c in bought for c in sorted(active)])
    pairs = recency[label][:, None] - recency[~label][None, :]
    recency_auc = ((pairs > 0).sum() + 0.5 * (pairs == 0).sum()) / pairs.size  # Mann-Whitney, by hand
    assert outcome["rule_roc_auc"] >= recency_auc - 0.005
    gain, low, high = outcome["versus_rule"]
    assert gain == pytest.approx(outcome["roc_auc"] - outcome["rule_roc_auc"]) and low < gain < high
    assert outcome["below_rule"] == (gain < 0)
    version = ModelVersion.objects.get(pk=outcome["model_version"])
    assert version.metrics["delivered"]["run"] == kept.pk and version.delivered.startswith(
        f"ROC-AUC {outcome['roc_auc']:.3f} [") and outcome["rule"] in version.delivered

    page = admin_client.get(f"/admin/behavior/scoringrun/{kept.pk}/change/").content.decode()
    assert "purchase intent: what customers did within 7 days" in page and "Calibration" in page
    assert 'name="outcomes"' not in page and 'name="stage_seconds"' not in page  # charts, not JSON to edit
    assert "Not kept" in admin_client.get(f"/admin/behavior/scoringrun/{later.pk}/change/").content.decode()


@pytest.mark.django_db
def test_kept_scores_are_forgotten_after_the_keeping_days_and_their_outcomes_stay(shop, settings):
    settings.FORESIGHT_KEEP_SCORES_DAYS = 30
    run = scoring_cycle_run(as_of=AS_OF)

    assert scoring_runs_check_outcomes(now=AS_OF + timedelta(days=29)).forgotten_scores == 0
    report = scoring_runs_check_outcomes(now=AS_OF + timedelta(days=31))

    run.refresh_from_db()
    assert report.forgotten_scores == _expected_rows(AS_OF) and not PastScore.objects.exists()
    assert not run.keeps_scores and set(run.outcomes) == {"purchase_intent", "support_risk"}
