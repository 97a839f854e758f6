"""After each scoring run and every hour: proactive tickets for customers a rule matches, and tickets for customers
who contacted support.

Set-based like campaigns: one frame of every customer's condition fields, one mask per rule, the
facts and scores of the customers ticketed read in a few queries, bulk inserts. Each rule is
evaluated in its own transaction holding its row lock, so two workers on the same run take turns
and the second finds the tickets made; the partial unique constraint (one unresolved proactive
ticket per customer and rule) backs that up in the database. Tickets spend the contact budget
shared with campaigns, claimed in the same transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from behavior.conditions import parse
from behavior.core.outreach import Outcome
from behavior.models import Event, ScoringRun
from behavior.services.outreach import outreach_reach
from support.actions import PROACTIVE_TICKET
from support.models import OutboxMessage, SupportRule, Ticket
from support.selectors import rule_frame, rule_select
from support.services.outbox import outbox_enqueue
from support.services.tickets import CUSTOMER_GROUP, CUSTOMER_SLA

CONTACT_LOOKBACK = timedelta(days=7)  # support contacts this recent become tickets; older ones predate the app
_CONTACTS_LOCK = 0x46_53_53_43  # any fixed number ("FSSC"): one pickup of support contacts at a time


def tickets_open_proactively(*, run: ScoringRun | None = None, now: datetime | None = None,
                             only: int | None = None) -> list[Outcome]:
    """Open tickets for every active rule's matches (or only the rule with id `only`: a support lead's "Open
    tickets now"), highest priority first; a rerun opens nothing twice."""
    now = now or (run.as_of if run else timezone.now())
    active = SupportRule.objects.filter(active=True).order_by("-priority", "pk")
    rules = list(active if only is None else active.filter(pk=only))
    if not rules:
        return []
    conditions = {r.pk: parse(r.condition) for r in rules}
    frame = rule_frame(conditions.values(), now)
    return [_rule_evaluate(rule, conditions[rule.pk], frame, now, run) for rule in rules]


def _rule_evaluate(rule, condition, frame, now, run) -> Outcome:
    with transaction.atomic():
        rule = SupportRule.objects.select_for_update().get(pk=rule.pk)
        if not rule.active:
            return Outcome.nothing(rule.pk)
        return outreach_reach(rule=rule, action=PROACTIVE_TICKET, at=now, run=run,
                              selection=rule_select(rule=rule, condition=condition, frame=frame, now=now))


def tickets_open_from_contacts(*, now: datetime | None = None) -> int:
    """A ticket for each support_contact event of the last week that has none yet; returns how many."""
    now = now or timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":  # SQLite: its single writer already serializes this
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CONTACTS_LOCK])
        ticketed = Ticket.objects.filter(source_event=OuterRef("event_id"))
        contacts = (Event.objects.filter(type="support_contact", customer__isnull=False,
                                         occurred_at__gte=now - CONTACT_LOOKBACK, occurred_at__lt=now)
                    .exclude(Exists(ticketed)).order_by("occurred_at")
                    .values_list("event_id", "customer_id", "occurred_at", "order_id", "properties"))
        tickets = Ticket.objects.bulk_create([
            Ticket(customer_id=customer_id, origin=Ticket.Origin.CUSTOMER, group=CUSTOMER_GROUP,
                   subject=_contact_subject(order_id, properties), description=_text(properties, "message"),
                   facts={"order_id": order_id} if order_id else {}, source_event=event_id,
                   opened_at=occurred_at, due_at=occurred_at + CUSTOMER_SLA)
            for event_id, customer_id, occurred_at, order_id, properties in contacts
        ], batch_size=2_000)
        outbox_enqueue(tickets=tickets, kind=OutboxMessage.Kind.OPENED, now=now)
    return len(tickets)


def _contact_subject(order_id: str, properties: dict | None) -> str:
    return _text(properties, "subject")[:200] or (f"Question about order {order_id}" if order_id
                                                   else "The customer contacted support")


def _text(properties: dict | None, key: str) -> str:
    value = (properties or {}).get(key)
    return value if isinstance(value, str) else ""
