"""Ticket changes to the external helpdesk: queued with the change, sent as signed webhooks, in order per ticket.

Each change is one OutboxMessage, written in the transaction that makes the change (the caller holds
the ticket's row lock, or has just created it), numbered from 1 within its ticket. A sender only
takes a ticket's oldest undelivered message, so the helpdesk never gets a later change before an
earlier one is delivered. A sender takes a message by a conditional update of its lease (the row
count says who won) and sends with no transaction open, so two workers never send one message at
once and no database lock waits on the network. Failures (an error status, a timeout, a dropped
connection) are retried with exponential backoff until delivered. A message that arrived but whose
answer was lost is sent again with the same Idempotency-Key: that is how the helpdesk tells it is a
duplicate. A committed change wakes a sender at once; with the broker down it waits for the
every-minute delivery (beat), so a broker outage delays changes and fails no request.

Requests are signed as behavior.webhooks says.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import orjson
import requests
from django.db import transaction
from django.db.models import Exists, Max, OuterRef, Q

from behavior.broker import hand_over
from behavior.models import Customer
from behavior.services.deliveries import DeliveryReport, deliveries_send
from behavior.webhooks import plain_text
from support.models import HelpdeskSettings, OutboxMessage, Priority, Ticket

LEASE = timedelta(seconds=60)  # far over a request's timeout: a lease never ends while its request runs


def outbox_enqueue(*, tickets: list[Ticket], kind: str, now: datetime, details: dict | None = None) -> int:
    """Queue one message per ticket (as it is now) when a helpdesk is enabled; returns how many.

    Each message holds the whole ticket, so a helpdesk enabled later can take tickets up from any change;
    `details` go beside it (a note's text).
    """
    if not tickets or not HelpdeskSettings.current().enabled:
        return 0
    ids = [t.pk for t in tickets]
    external = dict(Customer.objects.filter(pk__in={t.customer_id for t in tickets}).values_list("pk", "external_id"))
    last = dict(OutboxMessage.objects.filter(ticket__in=ids).values_list("ticket").annotate(n=Max("sequence"))
                .order_by())
    messages = []
    for ticket in tickets:
        sequence = last.get(ticket.pk, 0) + 1
        message = OutboxMessage(ticket=ticket, sequence=sequence, kind=kind, created_at=now, next_attempt_at=now)
        message.payload = {"event": kind, "sequence": sequence, "idempotency_key": str(message.idempotency_key),
                           "at": now.isoformat(), "ticket": ticket_payload(ticket, external[ticket.customer_id]),
                           **(details or {})}
        messages.append(message)
    OutboxMessage.objects.bulk_create(messages, batch_size=2_000)
    transaction.on_commit(_deliver_soon)
    return len(messages)


def outbox_enqueue_erasure(*, customer: Customer, now: datetime) -> OutboxMessage | None:
    """Ask the helpdesk to erase the tickets it may hold of a customer who is being erased here.

    Only tickets a change was sent for (or is being sent) can be there. The message names those
    tickets, not the customer, so nothing personal outlives the erasure, and it is due a lease
    later, so that a change still in flight reaches the helpdesk before it.
    """
    tried = OutboxMessage.objects.filter(ticket=OuterRef("pk")).filter(Q(attempts__gt=0) | Q(lease_until__isnull=False))
    known = list(Ticket.objects.filter(Exists(tried), customer=customer).order_by("pk")
                 .values_list("pk", "external_reference"))
    if not known:
        return None
    message = OutboxMessage(kind=OutboxMessage.Kind.ERASED, sequence=1, created_at=now, next_attempt_at=now + LEASE)
    message.payload = {"event": message.kind, "sequence": 1, "idempotency_key": str(message.idempotency_key),
                       "at": now.isoformat(),
                       "tickets": [{"id": pk, "reference": reference or None} for pk, reference in known]}
    message.save()
    return message


def ticket_payload(ticket: Ticket, customer_external_id: str) -> dict:
    def moment(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": ticket.pk, "customer": customer_external_id, "origin": ticket.origin, "status": ticket.status,
        "priority": Priority(ticket.priority).name.lower(), "group": ticket.group, "subject": ticket.subject,
        "description": ticket.description, "reasons": ticket.reasons, "facts": ticket.facts,
        "rule": ticket.rule_id,
        "customer_message": ticket.customer_message if ticket.origin == Ticket.Origin.PROACTIVE else None,
        "opened_at": moment(ticket.opened_at), "due_at": moment(ticket.due_at),
        "escalated_at": moment(ticket.escalated_at), "acknowledged_at": moment(ticket.acknowledged_at),
    }


def _deliver_soon() -> None:
    """Wake a sender now; with the broker down the message waits for the every-minute delivery instead.

    Runs after the commit, so a broker error here must not reach the caller: the change is stored, and
    a request that answered 500 would be sent again by its client.
    """
    from support.tasks import deliver_outbox

    hand_over(deliver_outbox.si(), sweeper="the every-minute outbox delivery")


def outbox_deliver(*, now: datetime | None = None, limit: int = 1_000) -> DeliveryReport:
    """Send due messages, each ticket's in order, until none is due or `limit` were tried."""
    helpdesk = HelpdeskSettings.current()
    return deliveries_send(destination=helpdesk, due=_due, now=now, limit=limit,
                           send=lambda session, message, clock: _send(session, helpdesk, message, clock))


def _due(at: datetime):
    """Messages due now that are their ticket's oldest undelivered one and held by no sender."""
    earlier = OutboxMessage.objects.filter(ticket=OuterRef("ticket"), sequence__lt=OuterRef("sequence"),
                                           delivered_at__isnull=True)
    return (OutboxMessage.objects.filter(delivered_at__isnull=True, next_attempt_at__lte=at)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=at))
            .exclude(Exists(earlier)).order_by("next_attempt_at", "pk"))


def _send(session: requests.Session, helpdesk: HelpdeskSettings, message: OutboxMessage,
          clock: Callable[[], datetime]) -> bool | None:
    delivered, answer = message.send(session, helpdesk, body=orjson.dumps(message.payload), event=message.kind,
                                     clock=clock)
    if delivered and message.ticket_id is not None:  # an erasure names tickets that are gone here
        _remember_reference(message.ticket_id, answer)
    return delivered


def _remember_reference(ticket_id: int, answer: bytes) -> None:
    """The helpdesk may answer {"reference": "..."}: its own id for the ticket, shown to agents, so kept as plain
    text (the README's promise for whatever a receiver answers)."""
    try:
        reference = orjson.loads(answer).get("reference")
    except (orjson.JSONDecodeError, AttributeError):
        return
    if isinstance(reference, str) and (reference := plain_text(reference)):
        Ticket.objects.filter(pk=ticket_id, external_reference="").update(external_reference=reference)
