from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Sum

from behavior.core.proportions import newcombe_interval
from behavior.models import ModelVersion, Score
from behavior.services.customers import customer_erase
from campaigns.admin import _extra_in_words, _rate_bar
from campaigns.models import Assignment, Coupon
from campaigns.selectors import CampaignResults, GroupResult, campaign_dry_run, campaign_preview, campaign_results
from campaigns.services import campaigns_evaluate
from tests.campaigns.conftest import NOW, offer
from tests.factories import CustomerFactory, EventFactory, ModelVersionFactory

pytestmark = pytest.mark.sqlite


def _buy(customer, when):
    EventFactory(customer=customer, type="purchase", occurred_at=when, order_id=f"o-{customer.pk}-{when:%j}",
                 price="50.00", quantity=1)


def test_results_compare_treatment_and_control_within_the_attribution_window(scored_customers):
    scored_customers([0.9] * 400)
    campaign = offer(holdout_percent=50, attribution_days=7)
    campaigns_evaluate(now=NOW)
    treatment = list(Assignment.objects.filter(group="treatment").select_related("customer"))
    control = list(Assignment.objects.filter(group="control").select_related("customer"))
    for a in treatment[: len(treatment) // 2]:  # half of the treated buy within the window
        _buy(a.customer, NOW + timedelta(days=2))
    for a in control[: len(control) // 5]:  # a fifth of the control group does
        _buy(a.customer, NOW + timedelta(days=3))
    for a in control[len(control) // 5:]:  # purchases before assignment or after the window do not count
        _buy(a.customer, NOW - timedelta(days=1))
        _buy(a.customer, NOW + timedelta(days=8))
    Coupon.objects.filter(assignment__in=treatment[:10]).update(redeemed_at=NOW, discount_amount="5.00")

    r = campaign_results(campaign=campaign)

    assert r.treatment.customers == len(treatment) and r.control.customers == len(control)
    assert r.treatment.converted == len(treatment) // 2 and r.control.converted == len(control) // 5
    # The difference of two proportions with its 95% hybrid score interval (checked against Newcombe's own table in
    # tests/behavior/test_proportions.py), from the counts made above.
    nt, nc = len(treatment), len(control)
    pt, pc = (nt // 2) / nt, (nc // 5) / nc
    assert r.uplift == pytest.approx(pt - pc)
    assert r.uplift_interval == pytest.approx(newcombe_interval(nt // 2, nt, nc // 5, nc))
    low, high = r.uplift_interval
    assert r.redemptions == 10 and r.discount_spent == Decimal("50.00")
    assert r.extra_conversions == pytest.approx(r.uplift * len(treatment))
    assert r.extra_conversions_interval == pytest.approx((low * len(treatment), high * len(treatment)))
    assert r.cost_per_extra_conversion == (Decimal("50.00") / Decimal(str(r.uplift * len(treatment)))).quantize(
        Decimal("0.01"))
    cheapest, dearest = r.cost_interval  # more extra conversions, each cheaper
    assert cheapest == (Decimal("50.00") / Decimal(str(high * len(treatment)))).quantize(Decimal("0.01"))
    assert cheapest < r.cost_per_extra_conversion < dearest


def test_a_redeemed_coupon_is_a_conversion_even_without_a_purchase_event(scored_customers):
    scored_customers([0.9] * 40)
    campaign = offer(holdout_percent=0, attribution_days=7)
    campaigns_evaluate(now=NOW)
    first, second, late, *_ = Assignment.objects.filter(group="treatment").order_by("pk")
    Coupon.objects.filter(assignment__in=[first, second]).update(redeemed_at=NOW + timedelta(days=1),
                                                                 discount_amount="5.00")
    _buy(first.customer, NOW + timedelta(days=1))  # the shop sent this order's purchase too: one conversion
    Coupon.objects.filter(assignment=late).update(redeemed_at=NOW + timedelta(days=9), discount_amount="5.00")

    r = campaign_results(campaign=campaign)

    assert r.treatment.converted == 2 and r.redemptions == 3  # the redemption after the window is not one


def test_the_preview_counts_the_audience_holdout_and_expected_cost(scored_customers):
    scored_customers([0.9] * 50 + [0.5] * 50 + [0.1] * 100)
    campaign = offer(status="draft", holdout_percent=20, discount_kind="fixed", discount_value="5.00")

    p = campaign_preview(campaign=campaign, now=NOW)
    assert not Assignment.objects.exists()  # a preview assigns nothing
    campaign.status = "active"
    campaign.save()
    campaigns_evaluate(now=NOW)  # the same moment: the same customers held out, now stored as assignments

    treated = Assignment.objects.filter(group="treatment").values("customer")
    assert p.audience == 100 and 5 < p.holdout < 40 and p.treated == 100 - p.holdout == treated.count()
    # Treated customers times their chance of buying: the sum of their purchase intents.
    intents = Score.objects.filter(customer__in=treated, target="purchase_intent").aggregate(s=Sum("probability"))
    assert p.expected_redemptions == pytest.approx(intents["s"])
    assert p.expected_cost == (Decimal(str(p.expected_redemptions)) * 5).quantize(Decimal("0.01"))


def test_erasing_a_customer_erases_their_assignments_coupons_and_contacts(scored_customers):
    [alice, bob] = scored_customers([0.9, 0.9])
    offer()
    campaigns_evaluate(now=NOW)

    customer_erase(customer=alice)

    assert not Assignment.objects.filter(customer_id=alice.pk).exists()
    assert not Coupon.objects.filter(customer_id=alice.pk).exists()
    assert Coupon.objects.filter(customer=bob).exists()


def test_a_dry_run_replays_the_audience_and_what_it_bought_without_assigning(db):
    ModelVersionFactory(target="purchase_intent", status=ModelVersion.Status.CHAMPION)
    buyers = CustomerFactory.create_batch(4)
    browser = CustomerFactory()
    start = NOW - timedelta(days=30)
    for c in buyers:  # an order before the replay: they are in the audience (feature.orders >= 1)
        _buy(c, start - timedelta(days=3))
    _buy(buyers[0], start + timedelta(days=2))  # bought again within 7 days of the first evaluation
    _buy(buyers[1], start + timedelta(days=9))  # ... of the second one
    EventFactory(customer=browser, type="product_view", occurred_at=start - timedelta(days=1))
    campaign = offer(status="draft", condition={"field": "feature.orders", "op": "gte", "value": 1},
                     discount_kind="percent", discount_value=10, min_order=20)

    first, second = campaign_dry_run(campaign=campaign, start=start, end=start + timedelta(days=14))

    assert (first.audience, first.treated, first.bought_anyway) == (4, 4, 1)
    assert first.conversion == 0.25 and first.discount_on_their_orders == Decimal("5.00")
    assert (second.at, second.audience, second.bought_anyway) == (start + timedelta(days=7), 4, 1)
    assert not Assignment.objects.exists()
    call_command("campaign_dry_run", campaign.pk, "--from", start.isoformat(), "--to",
                 (start + timedelta(days=14)).isoformat(), stdout=(out := StringIO()))
    assert "had it run every 7 days" in out.getvalue() and "25.0%" in out.getvalue()


def test_the_page_says_what_an_uncertain_campaign_added_and_cost(settings):
    settings.FORESIGHT_CURRENCY = "USD"
    results = CampaignResults(
        treatment=GroupResult(100, 12), control=GroupResult(100, 9), uplift=0.03, uplift_interval=(-0.06, 0.12),
        redemptions=4, discount_spent=Decimal("20.00"), extra_conversions=3.0, extra_conversions_interval=(-6.0, 12.0),
        cost_per_extra_conversion=Decimal("6.67"), cost_interval=(Decimal("1.67"), None))
    assert _extra_in_words(results) == ("+3.0 extra conversions [-6.0, +12.0], 6.67 USD per extra conversion "
                                        "[1.67 USD, no upper bound]")  # it may have added none at all
    without_control = CampaignResults(
        treatment=GroupResult(100, 12), control=GroupResult(0, 0), uplift=None, uplift_interval=None, redemptions=0,
        discount_spent=Decimal(0), extra_conversions=None, extra_conversions_interval=None,
        cost_per_extra_conversion=None, cost_interval=None)
    assert _extra_in_words(without_control) == "extra conversions: none to measure without a control group"


def _groups(campaign, *, treated: tuple[int, int], control: tuple[int, int]) -> None:
    """Assignments made by hand at NOW: (customers, of them converted) in each group; the converted bought the
    next day."""
    for group, (customers, converted) in (("treatment", treated), ("control", control)):
        made = CustomerFactory.create_batch(customers)
        Assignment.objects.bulk_create([
            Assignment(campaign=campaign, customer=c, period=0, group=group, assigned_at=NOW,
                       expires_at=NOW + timedelta(days=7)) for c in made])
        for c in made[:converted]:
            _buy(c, NOW + timedelta(days=1))


def test_extra_conversions_carry_the_control_groups_uncertainty(db):
    # Newcombe (1998), "Interval estimation for the difference between independent proportions", Statistics in
    # Medicine 17, 873-890, Table II example (a): 56 of 70 against 48 of 80, a difference of 0.2000 with the 95%
    # hybrid score interval 0.0524 to 0.3339 (the Wald interval, 0.0575 to 0.3425, is narrower).
    campaign = offer(attribution_days=7)
    _groups(campaign, treated=(70, 56), control=(80, 48))

    r = campaign_results(campaign=campaign)

    assert (r.treatment.converted, r.control.converted) == (56, 48)
    assert r.uplift_interval == pytest.approx((0.0524, 0.3339), abs=5e-5)
    # 70 treated: 14 extra conversions, and 70 x the difference's interval.
    assert r.extra_conversions == pytest.approx(14.0)
    assert r.extra_conversions_interval == pytest.approx((70 * 0.0524, 70 * 0.3339), abs=70 * 5e-5)
    assert _extra_in_words(r).startswith("+14.0 extra conversions [+3.7, +23.4], ")


def test_no_conversion_is_not_certainty(db):
    campaign = offer(attribution_days=7)
    _groups(campaign, treated=(100, 0), control=(60, 0))

    r = campaign_results(campaign=campaign)

    # Wilson's upper bound at 0 of n is z^2 / (n + z^2): 3.8415 / 103.8415 and 3.8415 / 63.8415, by hand.
    assert _extra_in_words(r) == "+0.0 extra conversions [-6.0, +3.7]"  # was "+0.0 extra conversions [+0.0, +0.0]"
    assert r.treatment.rate_interval == pytest.approx((0, 0.03699), abs=5e-6)
    assert r.uplift_interval == pytest.approx((-0.06017, 0.03699), abs=5e-6)
    # The page's bar: "control (0 of 5)" is no longer 0.0% [0.0%, 0.0%].
    bar = _rate_bar("control", GroupResult(customers=5, converted=0))
    assert (bar.label, bar.value, bar.low, bar.high) == ("control (0 of 5)", 0, 0, pytest.approx(0.43448, abs=5e-6))
    every = _rate_bar("treatment", GroupResult(customers=10, converted=10))
    assert (every.low, every.high) == (pytest.approx(0.72247, abs=5e-6), 1)


def test_too_early_to_tell_below_fifty_customers_in_a_group(db):
    # The README states the minimum: 50 treated and 50 in the control group.
    campaign = offer(attribution_days=7)
    _groups(campaign, treated=(60, 18), control=(5, 0))

    r = campaign_results(campaign=campaign)

    assert _extra_in_words(r) == ("extra conversions: too early to tell with 60 treated and 5 in the control group "
                                  "(it takes 50 in each to tell)")
    _groups(campaign, treated=(0, 0), control=(45, 3))  # 50 in the control group now
    assert _extra_in_words(campaign_results(campaign=campaign)).startswith("+")
