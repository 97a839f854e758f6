"""A ticket's life: customers open them, agents move them through open, pending, solved and closed,
overdue ones are escalated, customers acknowledge proactive ones. Every change queues an outbox message
in the same transaction, under the ticket's row lock, so the helpdesk gets the changes in order."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, Value
from django.db.models.functions import Least
from django.utils import timezone

from behavior.models import Customer
from behavior.services.ingest import events_ingest
from support.models import OutboxMessage, Priority, Ticket, TicketNote
from support.selectors import overdue
from support.services.outbox import outbox_enqueue

CUSTOMER_GROUP = "support"
CUSTOMER_SLA = timedelta(hours=24)
ESCALATION_BATCH = 1_000

S = Ticket.Status
TRANSITIONS = {
    S.OPEN: {S.PENDING, S.SOLVED},
    S.PENDING: {S.OPEN, S.SOLVED},
    S.SOLVED: {S.OPEN, S.CLOSED},
    S.CLOSED: set(),
}


class TicketError(Exception):
    """A ticket cannot change this way, said in words an agent understands."""


def ticket_set_status(*, ticket: Ticket, status: str, now: datetime | None = None) -> Ticket:
    """Move a ticket along open -> pending -> solved -> closed (and back to open before it is closed)."""
    now = now or timezone.now()
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update(of=("self",)).select_related("rule").get(pk=ticket.pk)
        if status not in TRANSITIONS[Ticket.Status(ticket.status)]:
            raise TicketError(f"a ticket that is {ticket.status} cannot become {status}")
        ticket.status = status
        try:
            with transaction.atomic():
                ticket.save(update_fields=["status", "updated_at"])
        except IntegrityError as error:  # reopening while the rule has opened a newer ticket for the customer
            raise TicketError("the customer has a newer open ticket of the same rule") from error
        outbox_enqueue(tickets=[ticket], kind=OutboxMessage.Kind.STATUS_CHANGED, now=now)
    return ticket


def tickets_escalate_overdue(*, now: datetime | None = None) -> int:
    """Raise every overdue ticket one priority level, once; returns how many were escalated.

    Safe to run from two workers: each locks its batch and skips rows another holds, and a ticket
    escalated once is no longer a candidate.
    """
    now = now or timezone.now()
    escalated = 0
    while True:
        with transaction.atomic():
            batch = list(Ticket.objects.select_for_update(of=("self",), skip_locked=True).select_related("rule")
                         .filter(overdue(now), escalated_at__isnull=True).order_by("due_at")[:ESCALATION_BATCH])
            if not batch:
                return escalated
            Ticket.objects.filter(pk__in=[t.pk for t in batch]).update(
                priority=Least(F("priority") + 1, Value(Priority.URGENT)), escalated_at=now)
            for ticket in batch:
                ticket.priority, ticket.escalated_at = min(ticket.priority + 1, Priority.URGENT), now
            outbox_enqueue(tickets=batch, kind=OutboxMessage.Kind.ESCALATED, now=now)
        escalated += len(batch)


def ticket_acknowledge(*, customer: Customer, ticket_id: int, now: datetime | None = None) -> Ticket:
    """The customer saw a proactive ticket's message; acknowledging twice keeps the first time.

    Raises Ticket.DoesNotExist for a ticket that is not this customer's proactive ticket.
    """
    now = now or timezone.now()
    with transaction.atomic():
        ticket = (Ticket.objects.select_for_update(of=("self",)).select_related("rule")
                  .get(pk=ticket_id, customer=customer, origin=Ticket.Origin.PROACTIVE))
        if ticket.acknowledged_at is None:
            ticket.acknowledged_at = now
            ticket.save(update_fields=["acknowledged_at", "updated_at"])
            outbox_enqueue(tickets=[ticket], kind=OutboxMessage.Kind.ACKNOWLEDGED, now=now)
    return ticket


def ticket_open_for_customer(*, customer: Customer, subject: str, description: str = "", order_id: str = "",
                             request_id: uuid.UUID | None = None, now: datetime | None = None
                             ) -> tuple[Ticket, bool]:
    """A ticket the customer starts from the storefront; returns it and whether it is new.

    It is recorded as a support_contact event too (the support-risk model learns from those) whose id is
    `request_id`: sending the same request again returns the ticket it made.
    """
    now = now or timezone.now()
    request_id = request_id or uuid.uuid4()
    if Ticket.objects.filter(source_event=request_id).exists():
        return _made_by(request_id, customer), False
    record = {"event_id": str(request_id), "type": "support_contact", "customer": customer.external_id,
              "occurred_at": now.isoformat()}
    if order_id:
        record["order_id"] = order_id
    try:
        with transaction.atomic():
            report = events_ingest(records=[record])
            if report.rejected:
                raise TicketError(f"the support contact was refused: {report.rejected[0]['errors']}")
            ticket = Ticket.objects.create(
                customer=customer, origin=Ticket.Origin.CUSTOMER, priority=Priority.NORMAL, group=CUSTOMER_GROUP,
                subject=subject, description=description, facts={"order_id": order_id} if order_id else {},
                source_event=request_id, opened_at=now, due_at=now + CUSTOMER_SLA)
            outbox_enqueue(tickets=[ticket], kind=OutboxMessage.Kind.OPENED, now=now)
    except IntegrityError:  # the same request, sent twice at once: the other one made the ticket
        return _made_by(request_id, customer), False
    return ticket, True


def _made_by(request_id: uuid.UUID, customer: Customer) -> Ticket:
    ticket = Ticket.objects.get(source_event=request_id)
    if ticket.customer_id != customer.pk:
        raise TicketError("this request_id was used for another customer's ticket")
    return ticket


def ticket_note_add(*, ticket: Ticket, text: str, author=None, now: datetime | None = None) -> TicketNote:
    """An agent's internal note, kept with the ticket and sent to the helpdesk as one more change of it."""
    now = now or timezone.now()
    text = text.strip()
    if not text:
        raise TicketError("a note needs some text")
    with transaction.atomic():
        note = TicketNote.objects.create(ticket=ticket, author=author, text=text, created_at=now)
        outbox_enqueue(tickets=[ticket], kind=OutboxMessage.Kind.NOTE_ADDED, now=now, details={"note": {
            "text": text, "author": author.get_username() if author else None, "at": now.isoformat()}})
    return note
