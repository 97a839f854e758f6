"""Rules act from a shop's first day: the hourly schedule evaluates campaigns without any model or scoring run."""

import time
from datetime import timedelta

from django.utils import timezone

from behavior.models import Contact, Customer, ModelVersion, Score, ScoringRun
from campaigns.models import Assignment, Coupon
from campaigns.tasks import evaluate_campaigns
from tests.campaigns.conftest import offer
from tests.factories import CustomerFactory, EventFactory

# Consent, and no purchase for a month: a win-back offer that needs no score.
LAPSED = {"all": [{"field": "customer.marketing_consent", "op": "eq", "value": True},
                  {"field": "customer.days_since_last_purchase", "op": "gte", "value": 30}]}


def new_shop() -> set[str]:
    """A shop's first customers, who bought (or not) some days ago; returns those the win-back offer is for."""
    now = timezone.now()
    purchases = {"lapsed-45": ([45], True), "lapsed-40": ([60, 40], True), "recent": ([50, 5], True),
                 "lapsed-no-consent": ([50], False), "never-bought": ([], True)}
    for external_id, (days_ago, consent) in purchases.items():
        customer = CustomerFactory(external_id=external_id, marketing_consent=consent)
        EventFactory(customer=customer, type="page_view", occurred_at=now - timedelta(days=70))
        for days in days_ago:
            EventFactory(customer=customer, type="purchase", order_id=f"{external_id}-{days}", price="20.00",
                         quantity=1, occurred_at=now - timedelta(days=days))
    return {"lapsed-45", "lapsed-40"}


def _coupon_owners() -> set[str]:
    return set(Coupon.objects.values_list("customer__external_id", flat=True))


def test_a_rule_only_campaign_mints_coupons_on_its_schedule_with_no_model_and_no_scoring_run(db):
    lapsed = new_shop()
    offer(name="Come back", condition=LAPSED)

    evaluate_campaigns()  # as beat sends it: no run
    evaluate_campaigns()  # the next hour, in the same period: nothing twice

    assert _coupon_owners() == lapsed
    assert Coupon.objects.count() == Assignment.objects.count() == Contact.objects.count() == 2
    assert not Assignment.objects.exclude(run=None).exists()
    assert not ModelVersion.objects.exists() and not ScoringRun.objects.exists() and not Score.objects.exists()


def test_a_shop_evaluated_range_by_range_on_a_worker_gets_the_same_coupons(workers):
    lapsed = new_shop()
    offer(name="Come back", condition=LAPSED)
    workers.start(FORESIGHT_AUDIENCE_CHUNK_CUSTOMERS="2")  # 5 customers: three ranges, then one assignment

    assert evaluate_campaigns.delay().get(timeout=60) is None  # handed to the ranges' chord
    deadline = time.monotonic() + 60
    while Coupon.objects.count() < len(lapsed) and time.monotonic() < deadline:
        time.sleep(0.2)

    assert _coupon_owners() == lapsed and Customer.objects.count() == 5
    assert Assignment.objects.count() == 2 and not ScoringRun.objects.exists()


def test_with_tasks_in_process_the_ranges_are_evaluated_here_and_nothing_is_sent(db, settings):
    settings.FORESIGHT_TASKS_IN_PROCESS = True  # and no worker: a chord sent to the broker would assign nothing
    settings.FORESIGHT_AUDIENCE_CHUNK_CUSTOMERS = 2
    lapsed = new_shop()
    offer(name="Come back", condition=LAPSED)

    assert evaluate_campaigns() is None  # three ranges, then one assignment, all before it returns

    assert _coupon_owners() == lapsed and Assignment.objects.count() == 2
