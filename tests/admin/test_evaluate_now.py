"""A campaign manager evaluates a campaign now from its page, and the page says when it is next evaluated."""

import re
from datetime import timedelta

from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from behavior.models import Contact, ContactPolicy, ModelVersion, ScoringRun
from campaigns.models import Assignment, Coupon
from tests.admin.conftest import price_offer
from tests.campaigns.test_first_day import LAPSED
from tests.factories import CustomerFactory, EventFactory


def lapsed_customers(n: int) -> list:
    """Customers with consent whose only purchase was 45 days ago: the win-back offer's audience."""
    customers = CustomerFactory.create_batch(n)
    for c in customers:
        EventFactory(customer=c, type="purchase", order_id=f"o-{c.pk}", price="20.00", quantity=1,
                     occurred_at=timezone.now() - timedelta(days=45))
    return customers


def test_evaluate_now_mints_coupons_holding_out_the_control_group_within_the_contact_budget(client_of):
    customers = lapsed_customers(40)
    ContactPolicy.objects.update_or_create(pk=1, defaults={"max_contacts": 1, "per_days": 7})
    reached_yesterday = {c.pk for c in customers[:8]}  # by another rule: no budget left this week
    Contact.objects.bulk_create(Contact(customer_id=pk, source="support rule 1",
                                        contacted_at=timezone.now() - timedelta(days=1)) for pk in reached_yesterday)
    campaign = price_offer(name="Come back", condition=LAPSED, holdout_percent=30, status="active")
    client = client_of("Campaign managers")
    url = f"/admin/campaigns/campaign/{campaign.pk}/"

    assert ">Evaluate now</button>" in client.get(f"{url}change/").content.decode()
    page = client.post(f"{url}evaluate/", follow=True).content.decode()

    control = set(Assignment.objects.filter(campaign=campaign, group="control").values_list("customer", flat=True))
    treated = set(Coupon.objects.filter(assignment__campaign=campaign).values_list("customer", flat=True))
    assert 4 <= len(control) <= 20  # about 30% of 40
    assert treated == {c.pk for c in customers} - control - reached_yesterday
    out_of_budget = len(reached_yesterday - control)
    assert (f"Come back: 40 matched, 0 of them assigned earlier this period; {len(control)} held out as control, "
            f"{len(treated)} reached, {out_of_budget} out of contact budget, 0 over the cap") in page
    assert Contact.objects.filter(source=f"campaign {campaign.pk}").count() == len(treated)
    assert not ModelVersion.objects.exists() and not ScoringRun.objects.exists()

    again = client.post(f"{url}evaluate/", follow=True).content.decode()
    assert f"40 matched, {len(control) + len(treated)} of them assigned earlier this period" in again
    assert Coupon.objects.count() == len(treated)
    assert client_of("Support agents").post(f"{url}evaluate/").status_code == 403


def test_only_the_chosen_campaign_is_evaluated_now_and_only_if_live(client_of):
    lapsed_customers(3)
    paused = price_offer(name="Paused", condition=LAPSED, status="paused")
    price_offer(name="Live, not chosen", condition=LAPSED, status="active")
    client = client_of("Campaign managers")

    page = client.post("/admin/campaigns/campaign/", {"action": "evaluate_now", "_selected_action": [paused.pk]},
                       follow=True).content.decode()

    assert "Paused: only live campaigns are evaluated, and this one is paused" in page
    assert not Assignment.objects.exists()
    change = client.get(f"/admin/campaigns/campaign/{paused.pk}/change/").content.decode()
    assert "None while it is paused" in change and "Evaluate now</button>" not in change


def test_the_campaign_page_says_when_it_is_next_evaluated(client_of):
    campaign = price_offer(condition=LAPSED, status="active")
    url = f"/admin/campaigns/campaign/{campaign.pk}/change/"
    schedule = PeriodicTask.objects.filter(name="Evaluate campaigns")
    client = client_of("Campaign managers")

    schedule.update(last_run_at=timezone.now() - timedelta(minutes=20))
    page = client.get(url).content.decode()
    assert re.search(r"At \d{4}-\d\d-\d\d \d\d:\d\d UTC, in (39|40).minutes \(the schedule &#x27;Evaluate campaigns"
                     r"&#x27;\); and after each scoring run", page)

    schedule.update(last_run_at=timezone.now() - timedelta(hours=3))
    assert "Due since" in client.get(url).content.decode()  # nothing sent it: beat is not running
    schedule.update(enabled=False)
    assert "No schedule runs it" in client.get(url).content.decode()
