"""Support rules act from a shop's first day: the hourly schedule opens tickets without any model or scoring run."""

from datetime import timedelta

from django.utils import timezone

from behavior.models import ModelVersion, ScoringRun
from support.models import Ticket
from support.tasks import open_support_tickets
from tests.factories import CustomerFactory, EventFactory
from tests.support.conftest import delivered_order, late_order, support_rule

PAST_DUE = {"field": "feature.orders_open_past_due", "op": "gte", "value": 1}  # no score in it


def test_a_rule_on_an_order_already_late_opens_a_ticket_on_the_schedule_without_a_scoring_run(db):
    now = timezone.now()
    late, waiting, delivered, asked = (CustomerFactory(external_id=name)
                                       for name in ("late", "waiting", "delivered", "asked"))
    late_order(late, "4412", days_late=2, now=now)
    late_order(waiting, "4413", days_late=-3, now=now)  # promised in three days
    delivered_order(delivered, "4414", days_ago=1, now=now)
    EventFactory(customer=asked, type="support_contact", order_id="4415", occurred_at=now - timedelta(hours=2))
    rule = support_rule(name="Late orders", condition=PAST_DUE)

    open_support_tickets()  # as beat sends it: no run
    open_support_tickets()  # the next hour: nothing twice

    proactive = Ticket.objects.filter(origin="proactive")
    assert list(proactive.values_list("customer__external_id", "rule", "facts__order_id")) == [
        ("late", rule.pk, "4412")]
    assert list(Ticket.objects.filter(origin="customer").values_list("customer__external_id", flat=True)) == ["asked"]
    assert not ModelVersion.objects.exists() and not ScoringRun.objects.exists()


def test_a_support_lead_opens_a_rules_tickets_now(admin_client):
    late_order(CustomerFactory(external_id="late"), "4412", days_late=2, now=timezone.now())
    rule = support_rule(name="Late orders", condition=PAST_DUE)
    support_rule(name="Every late order again", condition=PAST_DUE)  # not chosen: opens nothing

    page = admin_client.post("/admin/support/supportrule/", {"action": "open_tickets_now",
                                                             "_selected_action": [rule.pk]}, follow=True)

    said = "Late orders: 1 matched, 0 of them with a ticket of this rule already; 1 tickets opened"
    assert said in page.content.decode()
    assert list(Ticket.objects.values_list("rule", flat=True)) == [rule.pk]
    change = admin_client.get(f"/admin/support/supportrule/{rule.pk}/change/").content.decode()
    assert "Opens its tickets next" in change and "the schedule &#x27;Open proactive support tickets&#x27;" in change
