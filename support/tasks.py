"""Celery tasks of support: thin wrappers over support.services."""

from dataclasses import asdict

from celery import shared_task
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from behavior.models import ScoringRun
from support.services.outbox import outbox_deliver
from support.services.proactive import tickets_open_from_contacts, tickets_open_proactively
from support.services.tickets import tickets_escalate_overdue

TRANSIENT = (OperationalError, InterfaceError)


# Safe to run twice: each rule is evaluated under its row lock and a customer has at most one
# unresolved proactive ticket per rule; support contacts become tickets once (unique source event).
@shared_task(acks_late=True, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def open_support_tickets(run_id: int | None = None) -> dict:
    """Tickets from customers' support contacts and from the active rules: after a scoring run (at its time), or
    on their own schedule without one (now, with the scores stored, if any)."""
    run = ScoringRun.objects.get(pk=run_id) if run_id is not None else None
    now = run.as_of if run else timezone.now()
    return {"from_contacts": tickets_open_from_contacts(now=now),
            "rules": [asdict(outcome) for outcome in tickets_open_proactively(run=run, now=now)]}


# Periodic, and queued after ticket changes commit. Two at once are harmless: a message is leased
# to one sender, and a ticket's next message waits until the one before is delivered.
@shared_task(autoretry_for=TRANSIENT, retry_backoff=True, max_retries=3)
def deliver_outbox() -> dict:
    return asdict(outbox_deliver())


@shared_task(autoretry_for=TRANSIENT, retry_backoff=True, max_retries=3)
def escalate_overdue_tickets() -> int:
    return tickets_escalate_overdue()
