"""Webhooks to the helpdesk, against a real HTTP receiver that fails at random: every change arrives, signed,
in order per ticket, and a repeat is recognisable by its idempotency key."""

from collections import defaultdict
from datetime import timedelta

import pytest
from django.utils import timezone

from behavior.services.customers import customer_erase
from support.models import HelpdeskSettings, OutboxMessage, Ticket
from support.services.outbox import outbox_deliver
from support.services.proactive import tickets_open_proactively
from support.services.tickets import ticket_set_status
from tests.support.conftest import NOW, late_order, support_rule

pytestmark = pytest.mark.sqlite


def _open_and_work(risky_customers, n: int) -> list[Ticket]:
    """n proactive tickets, each then set pending and solved: three messages per ticket."""
    for i, customer in enumerate(risky_customers([0.9] * n)):
        late_order(customer, f"order-{i}", days_late=2)
    support_rule()
    tickets_open_proactively(now=NOW)
    tickets = list(Ticket.objects.order_by("pk"))
    for ticket in tickets:
        ticket_set_status(ticket=ticket, status="pending", now=NOW)
        ticket_set_status(ticket=ticket, status="solved", now=NOW)
    return tickets


def test_the_helpdesks_reference_is_kept_as_plain_text_of_at_most_200_characters(risky_customers, helpdesk):
    """The ticket page shows it: no markup, no line breaks or escapes to forge lines, no right-to-left override."""
    desk = helpdesk()
    desk.reference = lambda ticket: ("<script>alert(1)</script><b>HD-7</b>\r\nSet-Cookie: x\x1b[2J\u202eabc"
                                     + "y" * 300)
    [ticket] = _open_and_work(risky_customers, 1)

    outbox_deliver(now=NOW)

    ticket.refresh_from_db()
    kept = "HD-7 Set-Cookie: x [2J abc"
    assert ticket.external_reference == kept + "y" * (199 - len(kept)) + "\u2026"
    assert len(ticket.external_reference) == 200


def test_every_change_arrives_in_order_per_ticket_through_failures_and_duplicates(risky_customers, helpdesk):
    desk = helpdesk(failure_rate=0.45)
    tickets = _open_and_work(risky_customers, 12)
    clock, rounds = NOW, 0

    while OutboxMessage.objects.filter(delivered_at__isnull=True).exists():
        outbox_deliver(now=clock)
        clock, rounds = clock + timedelta(hours=1), rounds + 1  # an hour is the longest backoff
        assert rounds < 40, "the outbox did not drain"

    assert desk.refused == [] and desk.failures > 5
    by_ticket = defaultdict(list)
    for delivery in desk.received:
        by_ticket[delivery.ticket].append(delivery)
    for ticket in tickets:
        arrived = by_ticket[ticket.pk]
        # Never a later change before an earlier one was delivered, even counting the repeats.
        assert [d.sequence for d in arrived] == sorted(d.sequence for d in arrived)
        distinct = list({d.key: d for d in arrived}.values())
        assert [(d.sequence, d.event) for d in distinct] == [
            (1, "ticket.opened"), (2, "ticket.status_changed"), (3, "ticket.status_changed")]
    keys = [d.key for d in desk.received]
    assert len(keys) > len(set(keys)), "some answers were lost, so some messages arrived twice"
    assert set(keys) == {str(k) for k in OutboxMessage.objects.values_list("idempotency_key", flat=True)}
    assert all(m.attempts >= 1 and not m.last_error for m in OutboxMessage.objects.all())
    assert {t.external_reference for t in Ticket.objects.all()} == {f"HD-{t.pk}" for t in tickets}


def test_a_wrong_secret_is_refused_and_retried_with_growing_backoff(risky_customers, helpdesk):
    desk = helpdesk(secret="not-the-helpdesk-secret", retry_base_seconds=10)
    [ticket] = _open_and_work(risky_customers, 1)
    first = ticket.outbox.get(sequence=1)

    waits = []
    clock = NOW
    for _ in range(4):
        assert outbox_deliver(now=clock).failed == 1  # only the head is tried: the later two wait behind it
        first.refresh_from_db()
        waits.append((first.next_attempt_at - clock).total_seconds())
        assert outbox_deliver(now=first.next_attempt_at - timedelta(seconds=1)).failed == 0  # not due yet
        clock = first.next_attempt_at

    assert waits == [10, 20, 40, 80]
    assert first.attempts == 4 and first.delivered_at is None and first.last_error.startswith("HTTP 401")
    assert desk.received == [] and desk.refused == ["bad signature"] * 4


def test_an_unreachable_helpdesk_is_retried_until_it_answers(risky_customers, helpdesk):
    desk = helpdesk()
    good_url = desk.url
    [ticket] = _open_and_work(risky_customers, 1)
    HelpdeskSettings.objects.filter(pk=1).update(url="http://127.0.0.1:9/nobody-listens")
    report = outbox_deliver(now=NOW)
    assert (report.delivered, report.failed) == (0, 1)
    assert "ConnectionError" in ticket.outbox.get(sequence=1).last_error

    HelpdeskSettings.objects.filter(pk=1).update(url=good_url)
    assert outbox_deliver(now=NOW + timedelta(hours=1)).delivered == 3
    assert [d.sequence for d in desk.received] == [1, 2, 3]


def test_an_erased_customers_tickets_are_erased_at_the_helpdesk_after_their_last_change(risky_customers, helpdesk):
    desk = helpdesk(failure_rate=0.45, seed=3)
    gone, kept = _open_and_work(risky_customers, 2)
    outbox_deliver(now=NOW)  # each ticket's first change is tried: some get there, some wait for a retry
    gone.refresh_from_db()

    customer_erase(customer=gone.customer)
    erasure = OutboxMessage.objects.get(ticket=None)
    assert erasure.next_attempt_at > timezone.now()  # a lease later: a change in flight gets there first
    clock = erasure.next_attempt_at
    while OutboxMessage.objects.filter(delivered_at__isnull=True).exists():
        outbox_deliver(now=clock)
        clock += timedelta(hours=1)

    received = desk.received
    erasures = {d.key: d for d in received if d.event == "tickets.erased"}
    assert [d.erased for d in erasures.values()] == [[{"id": gone.pk, "reference": gone.external_reference or None}]]
    first_erasure = next(i for i, d in enumerate(received) if d.event == "tickets.erased")
    assert all(d.ticket != gone.pk for d in received[first_erasure:])  # its unsent changes were erased unsent
    assert {d.sequence for d in received if d.ticket == kept.pk} == {1, 2, 3}
    assert not OutboxMessage.objects.filter(ticket_id=gone.pk).exists()
