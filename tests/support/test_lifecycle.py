"""A ticket's life: the status flow, SLA escalation, erase; each change queued for the helpdesk in order."""

import json
from datetime import timedelta

import pytest
from django_celery_beat.models import PeriodicTask

from behavior.services.customers import customer_erase
from config.celery import app
from support.models import HelpdeskSettings, OutboxMessage, Priority, Ticket
from support.services.proactive import tickets_open_proactively
from support.services.tickets import TicketError, ticket_note_add, ticket_set_status, tickets_escalate_overdue
from tests.support.conftest import NOW, late_order, support_rule

pytestmark = pytest.mark.sqlite


@pytest.fixture
def helpdesk_on(db):
    HelpdeskSettings.objects.update_or_create(pk=1, defaults={"enabled": True, "url": "http://127.0.0.1:9/hook",
                                                              "secret": "s3cret"})


@pytest.fixture
def ticketed(risky_customers, helpdesk_on):
    """make(n) -> n customers, each with a proactive ticket opened at NOW, due 8 hours later (rule priority high)."""

    def make(n: int) -> list[Ticket]:
        for i, customer in enumerate(risky_customers([0.9] * n)):
            late_order(customer, f"order-{i}", days_late=2)
        tickets_open_proactively(now=NOW)
        return list(Ticket.objects.order_by("pk"))

    support_rule(priority=Priority.HIGH, sla_hours=8)
    return make


def _events(ticket: Ticket) -> list[tuple[int, str, str]]:
    return [(m.sequence, m.kind, m.payload["ticket"]["status"]) for m in ticket.outbox.order_by("sequence")]


def test_the_status_flow_is_checked_and_every_change_is_queued_in_order(ticketed):
    [ticket] = ticketed(1)

    for status in ("pending", "open", "solved", "open", "solved", "closed"):
        ticket_set_status(ticket=ticket, status=status)
    for refused in ("open", "pending", "solved"):
        with pytest.raises(TicketError, match=f"a ticket that is closed cannot become {refused}"):
            ticket_set_status(ticket=ticket, status=refused)
    with pytest.raises(TicketError, match="a ticket that is open cannot become closed"):
        ticket_set_status(ticket=Ticket.objects.create(
            customer=ticket.customer, origin="agent", group="g", subject="s", opened_at=NOW, due_at=NOW),
            status="closed")

    assert _events(ticket) == [(1, "ticket.opened", "open"), (2, "ticket.status_changed", "pending"),
                               (3, "ticket.status_changed", "open"), (4, "ticket.status_changed", "solved"),
                               (5, "ticket.status_changed", "open"), (6, "ticket.status_changed", "solved"),
                               (7, "ticket.status_changed", "closed")]


def test_reopening_is_refused_while_the_rule_has_a_newer_open_ticket(ticketed):
    [old] = ticketed(1)
    ticket_set_status(ticket=old, status="solved")
    Ticket.objects.filter(pk=old.pk).update(opened_at=NOW - timedelta(days=30))
    tickets_open_proactively(now=NOW + timedelta(days=1))  # past the 14 days' dedupe window of the old one

    with pytest.raises(TicketError, match="newer open ticket"):
        ticket_set_status(ticket=old, status="open")
    assert Ticket.objects.get(pk=old.pk).status == "solved"


def test_overdue_tickets_are_escalated_once_and_the_helpdesk_hears_of_it(ticketed):
    overdue, on_time, solved = ticketed(3)
    Ticket.objects.filter(pk=on_time.pk).update(due_at=NOW + timedelta(days=1))
    ticket_set_status(ticket=solved, status="solved")
    ticket_set_status(ticket=overdue, status="pending")  # waiting on the customer still counts against the SLA

    assert tickets_escalate_overdue(now=NOW + timedelta(hours=7)) == 0
    assert tickets_escalate_overdue(now=NOW + timedelta(hours=9)) == 1
    assert tickets_escalate_overdue(now=NOW + timedelta(hours=10)) == 0  # once

    overdue.refresh_from_db()
    assert (overdue.priority, overdue.escalated_at) == (Priority.URGENT, NOW + timedelta(hours=9))
    last = overdue.outbox.order_by("sequence").last()
    assert (last.sequence, last.kind, last.payload["ticket"]["priority"]) == (3, "ticket.escalated", "urgent")
    assert Ticket.objects.get(pk=on_time.pk).escalated_at is None
    assert Ticket.objects.get(pk=solved.pk).escalated_at is None


def test_an_urgent_ticket_stays_urgent_when_escalated(ticketed):
    [ticket] = ticketed(1)
    Ticket.objects.filter(pk=ticket.pk).update(priority=Priority.URGENT)
    assert tickets_escalate_overdue(now=NOW + timedelta(days=1)) == 1
    assert Ticket.objects.get(pk=ticket.pk).priority == Priority.URGENT


def test_erasing_a_customer_erases_their_tickets_and_messages_and_asks_the_helpdesk_to_erase_its_copies(ticketed):
    alice_ticket, bob_ticket, carol_ticket = ticketed(3)
    ticket_set_status(ticket=alice_ticket, status="solved")
    OutboxMessage.objects.filter(ticket=alice_ticket, sequence=1).update(delivered_at=NOW, attempts=1)
    alice = alice_ticket.customer

    customer_erase(customer=alice)
    customer_erase(customer=carol_ticket.customer)  # nothing of hers was sent: the helpdesk has nothing to erase

    assert not Ticket.objects.filter(pk__in=[alice_ticket.pk, carol_ticket.pk]).exists()
    assert not OutboxMessage.objects.filter(ticket_id__in=[alice_ticket.pk, carol_ticket.pk]).exists()
    assert list(Ticket.objects.all()) == [bob_ticket] and bob_ticket.outbox.count() == 1
    erasure = OutboxMessage.objects.get(ticket=None)
    assert (erasure.kind, erasure.delivered_at) == ("tickets.erased", None)
    assert erasure.payload["tickets"] == [{"id": alice_ticket.pk, "reference": None}]
    assert alice.external_id not in json.dumps(erasure.payload)  # it names tickets, not the customer


def test_nothing_is_queued_while_no_helpdesk_is_enabled(ticketed):
    HelpdeskSettings.objects.filter(pk=1).update(enabled=False)
    [ticket] = ticketed(1)
    ticket_set_status(ticket=ticket, status="solved")
    assert not OutboxMessage.objects.exists()


def test_delivery_and_escalation_are_scheduled_by_default(db):
    tasks = {t.name: t for t in PeriodicTask.objects.all()}

    deliver, escalate = tasks["Deliver ticket changes to the helpdesk"], tasks["Escalate overdue tickets"]
    assert (deliver.interval.every, deliver.interval.period) == (1, "minutes") and deliver.expire_seconds < 60
    assert (escalate.interval.every, escalate.interval.period) == (5, "minutes") and escalate.expire_seconds < 300
    app.loader.import_default_modules()
    assert {deliver.task, escalate.task} <= set(app.tasks)


def test_an_internal_note_is_kept_and_sent_to_the_helpdesk_as_a_change_never_to_the_customer(ticketed,
                                                                                             django_user_model):
    [ticket] = ticketed(1)
    agent = django_user_model.objects.create_user(username="sam", password="a long passphrase here")

    note = ticket_note_add(ticket=ticket, text="  Called her; the parcel leaves tomorrow.  ", author=agent)

    assert (note.text, note.author) == ("Called her; the parcel leaves tomorrow.", agent)
    sent = ticket.outbox.order_by("sequence").last()
    assert sent.kind == "ticket.note_added" and sent.payload["note"]["text"] == note.text
    assert sent.payload["note"]["author"] == "sam"
    assert "parcel" not in ticket.customer_message
    with pytest.raises(TicketError, match="needs some text"):
        ticket_note_add(ticket=ticket, text="   ")
