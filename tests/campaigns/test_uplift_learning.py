"""A campaign learns whom its action persuades from its own treatment and control groups."""

import io
from datetime import timedelta
from decimal import Decimal
from uuid import uuid4

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from behavior.models import Customer, Event, ModelVersion
from behavior.services.registry import uplift_version_load
from campaigns.actions.base import CampaignError
from campaigns.models import Assignment
from campaigns.selectors import MIN_HISTORY, campaign_history, campaign_targeting
from campaigns.uplift import campaign_uplift_learn
from tests.campaigns.conftest import NOW, offer

ASSIGNED = NOW - timedelta(days=30)
# Who buys within the week after the assignment, treated and not. Persuadables browse without buying and
# buy far more often with the offer; sure things bought twice last month and buy again either way (a
# response model ranks them first); lost causes looked once, long ago. Each does the same again before NOW,
# when a campaign targets them.
KINDS = {"persuadable": (0.45, 0.05), "sure thing": (0.95, 0.95), "lost cause": (0.03, 0.03)}


def campaign_with_history(per_kind: int, seed: int = 1, kinds: dict[str, tuple[float, float]] = KINDS):
    rng = np.random.default_rng(seed)
    campaign = offer(holdout_percent=50)
    customers = Customer.objects.bulk_create([Customer(external_id=f"{kind}-{campaign.pk}-{i}", marketing_consent=True)
                                              for kind in kinds for i in range(per_kind)])
    events, assignments, truth = [], [], {}

    def event(customer, type, at, **fields):
        events.append(Event(event_id=uuid4(), customer=customer, type=type, occurred_at=at, received_at=at, **fields))

    for customer in customers:
        kind = customer.external_id.split("-")[0]
        for before in (ASSIGNED, NOW):  # each kind behaves alike before the assignment and before now
            if kind == "persuadable":
                for day in range(1, 6):
                    event(customer, "product_view", before - timedelta(days=day), category="shoes")
            elif kind == "sure thing":
                for day in (5, 20):
                    event(customer, "purchase", before - timedelta(days=day), price=Decimal("30"), quantity=1,
                          order_id=f"{customer.pk}-{before:%m%d}-{day}")
            else:
                event(customer, "product_view", before - timedelta(days=80), category="hats")
        treated = rng.random() < 0.5
        if rng.random() < kinds[kind][0 if treated else 1]:
            event(customer, "purchase", ASSIGNED + timedelta(days=2), price=Decimal("40"), quantity=1,
                  order_id=f"{customer.pk}-after")
        assignments.append(Assignment(campaign=campaign, customer=customer, period=campaign.period_at(ASSIGNED),
                                      group="treatment" if treated else "control", assigned_at=ASSIGNED,
                                      expires_at=ASSIGNED + timedelta(days=7)))
        truth[customer.pk] = kind
    Event.objects.bulk_create(events)
    Assignment.objects.bulk_create(assignments)
    return campaign, truth


@pytest.mark.sqlite
def test_the_history_holds_each_assignment_with_the_features_it_had_and_its_outcome(db):
    campaign, truth = campaign_with_history(per_kind=20)

    history = campaign_history(campaign=campaign, now=NOW)

    assert len(history.X) == 60 and set(history.customer_ids) == set(truth)
    kinds = np.array([truth[c] for c in history.customer_ids])
    # What they did before the assignment, not the purchase after it.
    assert (history.X["product_view_7d"].to_numpy()[kinds == "persuadable"] == 5).all()
    assert (history.X["purchase_30d"].to_numpy()[kinds == "sure thing"] == 2).all()
    bought_after = set(Event.objects.filter(order_id__endswith="-after").values_list("customer_id", flat=True))
    assert {int(c) for c in history.customer_ids[history.converted]} == bought_after
    # An assignment whose window has not closed yet is not history.
    assert len(campaign_history(campaign=campaign, now=ASSIGNED + timedelta(days=3)).X) == 0


def test_the_learnt_model_finds_the_persuadables_and_beats_the_response_ranking(db):
    campaign, truth = campaign_with_history(per_kind=1000)

    version = campaign_uplift_learn(campaign=campaign, now=NOW)

    m = version.metrics
    assert version.target == campaign.uplift_target and version.kind == ModelVersion.Kind.UPLIFT
    assert version.status == ModelVersion.Status.CHAMPION, m
    assert m["qini"] > m["response_qini"] + 0.03 and m["qini_interval"][1] > m["response_qini"]
    # Among the 30% it ranks highest, treatment adds some 40 points; the response model's top is sure things.
    assert m["top_uplift_interval"][0] > 0.15 and m["response_top_uplift"] < m["top_uplift_interval"][0]
    assert m["validation_assignments"] < m["assignments"] and len(m["qini_curve"]) <= 50

    history = campaign_history(campaign=campaign, now=NOW)
    predicted = uplift_version_load(version)(history.X)  # the stored artifact, read back
    kinds = np.array([truth[c] for c in history.customer_ids])
    by_kind = {kind: predicted[kinds == kind].mean() for kind in KINDS}
    # The true gap is 40 points; learners shrink it, by how much depends on which one wins on the held-out rows
    # (they split by customer id, which differs between databases): the ranking is the claim.
    assert by_kind["persuadable"] > max(by_kind["sure thing"], by_kind["lost cause"]) + 0.15
    top_third = kinds[np.argsort(-predicted)[: len(kinds) // 3]]
    assert (top_third == "persuadable").mean() > 0.8

    # Learning again on the same history: no better than the champion, so it stays a candidate no more.
    again = campaign_uplift_learn(campaign=campaign, now=NOW)
    assert again.status == ModelVersion.Status.RETIRED and again.metrics["champion_version"] == version.pk
    assert ModelVersion.objects.get(target=campaign.uplift_target, status="champion") == version


def test_where_the_offer_adds_in_proportion_to_buying_anyway_the_response_ranking_serves(db):
    # The offer doubles each kind's chance to buy: those likeliest to buy anyway gain most, so the response
    # ranking is the right one, and no uplift learner beats it beyond noise.
    campaign, _ = campaign_with_history(per_kind=500, kinds={"persuadable": (0.30, 0.15), "sure thing": (0.70, 0.35),
                                                             "lost cause": (0.04, 0.02)})

    version = campaign_uplift_learn(campaign=campaign, now=NOW)

    assert version.status == ModelVersion.Status.RETIRED and version.metrics["serves"] == "response ranking"
    assert not ModelVersion.objects.filter(target=campaign.uplift_target, status="champion").exists()
    campaign.uplift_top_percent = 30  # were it to target by uplift, its condition would choose, and say why
    targeting = campaign_targeting(campaign)
    assert targeting.model is None
    assert f"the response ranking beat every uplift learner on the customers it held out (model version " \
           f"{version.pk})" in targeting.says


def test_too_little_history_says_what_is_short_and_registers_nothing(db):
    campaign, _ = campaign_with_history(per_kind=30)

    with pytest.raises(CampaignError, match=f"it needs at least {MIN_HISTORY}"):
        campaign_uplift_learn(campaign=campaign, now=NOW)
    assert not ModelVersion.objects.filter(kind=ModelVersion.Kind.UPLIFT).exists()


def test_the_command_prints_both_rankings_and_the_verdict_or_what_is_short(db):
    campaign, _ = campaign_with_history(per_kind=1000)
    out = io.StringIO()

    call_command("campaign_learn_uplift", str(campaign.pk), stdout=out)

    text = out.getvalue()
    assert "uplift model:   Qini" in text and "response model: Qini" in text and "uplift in its top 30%" in text
    version = ModelVersion.objects.get(target=campaign.uplift_target)
    assert f"model version {version.pk}: champion" in text
    with pytest.raises(CommandError, match="no campaign 999"):
        call_command("campaign_learn_uplift", "999")
    small, _ = campaign_with_history(per_kind=30, seed=2)
    with pytest.raises(CommandError, match="too little history"):
        call_command("campaign_learn_uplift", str(small.pk))
