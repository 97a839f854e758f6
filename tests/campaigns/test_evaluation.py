from datetime import timedelta

import numpy as np
import pytest
from django.core.exceptions import ValidationError

from behavior.core.outreach import in_holdout
from behavior.models import Contact, ContactPolicy
from campaigns.models import Assignment, Campaign, Coupon
from campaigns.services import campaign_create, campaigns_evaluate
from tests.campaigns.conftest import NOW, offer
from tests.factories import EventFactory, ProductFactory

pytestmark = pytest.mark.sqlite


def _treated(campaign) -> set[int]:
    return set(campaign.assignments.filter(group="treatment").values_list("customer_id", flat=True))


def test_the_audience_gets_offers_once_per_period_and_without_consent_nothing(scored_customers):
    likely = scored_customers([0.9, 0.8, 0.7, 0.6, 0.5])
    unlikely = scored_customers([0.1, 0.2, None])
    no_consent = scored_customers([0.95], consent=False)
    campaign = offer()

    [outcome] = campaigns_evaluate(now=NOW)

    assert _treated(campaign) == {c.pk for c in likely}
    assert outcome.matched == outcome.reached == 5 and outcome.control == 0
    coupons = Coupon.objects.filter(assignment__campaign=campaign)
    assert coupons.count() == 5 and len(set(coupons.values_list("code", flat=True))) == 5
    assert all(len(code) == 12 and code.isalnum() for code in coupons.values_list("code", flat=True))
    assert not Assignment.objects.filter(customer__in=unlikely + no_consent).exists()
    assert Contact.objects.filter(source=f"campaign {campaign.pk}").count() == 5

    # The same scoring run again (a redelivered task): nothing new.
    again = campaigns_evaluate(now=NOW)[0]
    assert again.already_reached == again.matched == 5 and again.reached == 0
    assert Assignment.objects.count() == 5 and Coupon.objects.count() == 5 and Contact.objects.count() == 5


def test_the_holdout_is_stable_near_its_share_and_differs_between_campaigns():
    ids = np.arange(1, 100_001)
    first = in_holdout(7, ids, 10.0)
    assert abs(first.mean() - 0.10) < 0.005
    assert np.array_equal(first, in_holdout(7, ids, 10.0))
    assert np.array_equal(first[500:600], in_holdout(7, ids[500:600], 10.0))  # a customer's group ignores the others
    other = in_holdout(8, ids, 10.0)
    assert 0.005 < (first & other).mean() < 0.015  # independent groups: about 10% of 10%


def test_control_customers_get_nothing_but_are_recorded(scored_customers):
    scored_customers([0.9] * 400)
    campaign = offer(holdout_percent=25)

    [outcome] = campaigns_evaluate(now=NOW)

    control = campaign.assignments.filter(group="control")
    assert outcome.control == control.count() and 70 < control.count() < 130
    assert not Coupon.objects.filter(assignment__in=control).exists()
    assert not Contact.objects.filter(customer__in=control.values("customer")).exists()
    assert Coupon.objects.count() == outcome.reached == 400 - outcome.control


def test_the_contact_budget_is_shared_and_the_higher_priority_wins(scored_customers):
    ContactPolicy.objects.update_or_create(pk=1, defaults={"max_contacts": 1, "per_days": 7})
    customers = scored_customers([0.9, 0.8, 0.7])
    low = offer(name="low", priority=1)
    high = offer(name="high", priority=5)

    outcomes = {o.rule: o for o in campaigns_evaluate(now=NOW)}

    assert _treated(high) == {c.pk for c in customers} and not _treated(low)
    assert outcomes[low.pk].out_of_budget == 3 and outcomes[high.pk].reached == 3


def test_caps_take_the_likeliest_buyers_and_never_overshoot(scored_customers):
    customers = scored_customers([0.55, 0.9, 0.6, 0.99, 0.7])
    campaign = offer(max_assignments=2)

    [outcome] = campaigns_evaluate(now=NOW)

    assert _treated(campaign) == {customers[3].pk, customers[1].pk}
    assert outcome.over_cap == 3
    later = NOW.replace(day=NOW.day + 7)  # a new period: the cap is for the campaign's life
    assert campaigns_evaluate(now=later)[0].reached == 0 and len(_treated(campaign)) == 2


def test_likely_buyers_can_be_left_out(scored_customers):
    customers = scored_customers([0.95, 0.6])
    campaign = offer(skip_likely_buyers_above=0.9)
    campaigns_evaluate(now=NOW)
    assert _treated(campaign) == {customers[1].pk}


def test_paused_drafts_and_out_of_schedule_campaigns_assign_nothing(scored_customers):
    scored_customers([0.9])
    offer(status=Campaign.Status.PAUSED)
    offer(status=Campaign.Status.DRAFT)
    offer(starts_at=NOW.replace(day=NOW.day + 1))
    assert campaigns_evaluate(now=NOW) == []


def test_a_bad_condition_is_refused_naming_the_node(db):
    campaign = Campaign(name="x", kind="ad", condition={"all": [
        {"field": "score.purchase_intent", "op": "gte", "value": 0.5},
        {"any": [{"field": "customer.country", "op": "gte", "value": "DE"}]},
    ]})
    with pytest.raises(ValidationError) as error:
        campaign.full_clean()
    assert "all[1].any[0]" in str(error.value.message_dict["condition"])


def test_a_price_offer_needs_a_sensible_discount(db):
    with pytest.raises(ValidationError) as error:
        campaign_create(name="x", kind="price_offer", condition={"field": "customer.country", "op": "eq",
                                                                 "value": "DE"}, discount_value=120, scope="category")
    assert set(error.value.message_dict) >= {"discount_value", "scope_value"}
    assert not Campaign.objects.exists()  # the campaign and its settings, or neither


def test_an_ad_fills_its_slots_with_recommended_products(scored_customers):
    [alice] = scored_customers([0.9])
    shoes = ProductFactory.create_batch(6, category="shoes")
    ProductFactory(category="hats", active=False)
    EventFactory(customer=alice, type="product_view", product=shoes[0], category="shoes",
                 occurred_at=NOW - timedelta(days=1))
    campaign = offer(kind="ad", headline="Picked for you", products_per_ad=3)

    campaigns_evaluate(now=NOW)

    [assignment] = campaign.assignments.all()
    assert len(assignment.products) == 3 and len({p["product"] for p in assignment.products}) == 3
    assert assignment.products[0] == {"product": shoes[0].external_id, "name": shoes[0].name,
                                      "why": "recently viewed and not bought"}
    assert not Coupon.objects.exists()
