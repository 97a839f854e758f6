"""The support lead's admin: rules checked on save with a preview, the ticket queue, its actions."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from support.models import HelpdeskSettings, OutboxMessage, SupportRule, Ticket
from support.services.proactive import tickets_open_proactively
from tests.support.conftest import late_order, support_rule

pytestmark = pytest.mark.sqlite


def test_a_rule_with_a_bad_condition_is_not_saved_and_a_good_one_previews_its_tickets(admin_client, risky_customers):
    now = timezone.now()
    for i, customer in enumerate(risky_customers([0.9, 0.8, 0.1])):
        late_order(customer, f"o-{i}", days_late=2, now=now)
    form = {"name": "Late", "active": "on", "priority": 3, "group": "deliveries", "sla_hours": 8, "dedupe_days": 14,
            "subject": "Late order", "customer_message": "Ticket {ticket}",
            "condition": '{"all": [{"field": "score.support_risk", "op": "gte", "value": "high"}]}'}

    refused = admin_client.post("/admin/support/supportrule/add/", form)
    assert refused.status_code == 200 and "all[0].value: expected a finite number" in refused.content.decode()

    form["condition"] = '{"field": "score.support_risk", "op": "gte", "value": 0.6}'
    assert admin_client.post("/admin/support/supportrule/add/", form).status_code == 302
    rule = SupportRule.objects.get()
    page = admin_client.get(f"/admin/support/supportrule/{rule.pk}/change/").content.decode()
    assert "2 tickets: 2 customers match, 0 of them have a ticket of this rule already" in page


def test_the_queue_filters_overdue_tickets_and_its_actions_say_what_they_did(admin_client, risky_customers):
    now = timezone.now()
    for i, customer in enumerate(risky_customers([0.9, 0.8])):
        late_order(customer, f"o-{i}", days_late=2, now=now)
    support_rule(sla_hours=1)
    tickets_open_proactively(now=now - timedelta(hours=2))
    late, on_time = Ticket.objects.order_by("pk")
    Ticket.objects.filter(pk=on_time.pk).update(due_at=now + timedelta(hours=1))

    page = admin_client.get("/admin/support/ticket/", {"overdue": "yes", "group": "deliveries"}).content.decode()
    assert f"/admin/support/ticket/{late.pk}/change/" in page
    assert f"/admin/support/ticket/{on_time.pk}/change/" not in page
    assert re.search(r'class="ticket-overdue"[^>]*>overdue (1|2).hours?<', page)  # words, not a reassuring tick
    queue = admin_client.get("/admin/support/ticket/", {"overdue": "no"}).content.decode()
    assert "ticket-overdue" not in queue and re.search(r"<td class=\"field-due\">in (59.minutes|1.hour)", queue)

    solved = admin_client.post("/admin/support/ticket/", {"action": "solve", "_selected_action": [late.pk]},
                               follow=True)
    assert "1 ticket(s) now solved." in solved.content.decode()
    mixed = admin_client.post("/admin/support/ticket/", {"action": "mark_pending",
                                                                "_selected_action": [late.pk, on_time.pk]},
                                     follow=True).content.decode()
    assert "1 ticket(s) now pending." in mixed
    assert f"ticket {late.pk}: a ticket that is solved cannot become pending" in mixed
    assert admin_client.get("/admin/support/outboxmessage/").status_code == 200
    assert not OutboxMessage.objects.exists()  # no helpdesk enabled


def test_the_helpdesk_secret_can_be_replaced_but_is_never_shown(admin_client):
    page = "/admin/support/helpdesksettings/add/"
    form = {"enabled": "on", "url": "https://helpdesk.example/hooks", "retry_base_seconds": 10}

    refused = admin_client.post(page, form)
    assert "An enabled helpdesk needs a URL and a secret." in refused.content.decode()
    assert admin_client.post(page, {**form, "secret": "first-secret"}).status_code == 302
    change = f"/admin/support/helpdesksettings/{HelpdeskSettings.current().pk}/change/"
    assert "first-secret" not in admin_client.get(change).content.decode()

    assert admin_client.post(change, {**form, "secret": ""}).status_code == 302  # kept
    assert HelpdeskSettings.current().secret == "first-secret"
    replaced = {**form, "secret": "second-secret", "url": "helpdesk.example/v2"}  # no scheme typed: https
    assert admin_client.post(change, replaced).status_code == 302
    desk = HelpdeskSettings.current()
    assert (desk.secret, desk.url) == ("second-secret", "https://helpdesk.example/v2")


def test_settings_added_after_a_deletion_are_the_settings_everyone_reads(admin_client):
    HelpdeskSettings.objects.create(enabled=False)
    HelpdeskSettings.objects.all().delete()  # the row id sequence has moved on

    form = {"enabled": "on", "url": "https://helpdesk.example/hooks", "retry_base_seconds": 10, "secret": "s3cret"}
    assert admin_client.post("/admin/support/helpdesksettings/add/", form).status_code == 302

    assert HelpdeskSettings.objects.count() == 1
    assert (HelpdeskSettings.current().secret, HelpdeskSettings.current().url) == ("s3cret", form["url"])
