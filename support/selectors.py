"""Read side of support: who a rule would ticket now, the facts behind tickets, the storefront's help messages."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from django.db.models import Count, Q
from django.utils import timezone

from behavior.conditions import Condition, parse
from behavior.core.features import OPEN_ORDER_DAYS
from behavior.core.outreach import Selection, select
from behavior.models import Customer, Event, Score
from behavior.selectors import conditions_frame, contacts_remaining
from support.facts import ticket_facts
from support.models import SupportRule, Ticket

ALWAYS_LOADED = ("score.support_risk",)
IN_CHUNK = 10_000  # ids per IN list: SQLite allows 32,766 parameters in one statement


def rule_frame(conditions: Iterable[Condition], now: datetime) -> pd.DataFrame:
    """Every customer's values of the fields these conditions use (plus support risk), one row per customer."""
    return conditions_frame(conditions, now, also=ALWAYS_LOADED)


def rule_select(*, rule: SupportRule, condition: Condition, frame: pd.DataFrame, now: datetime) -> Selection:
    """Whom the rule would ticket among the frame's customers: not those with an unresolved ticket of it or one
    within its dedupe window; the riskiest first."""
    ticketed = (Ticket.objects.filter(rule=rule)
                .filter(Q(status__in=Ticket.UNRESOLVED) | Q(opened_at__gt=now - timedelta(days=rule.dedupe_days)))
                .values_list("customer_id", flat=True))
    return select(ids=frame.index.to_numpy(np.int64), mask=condition.mask(frame, now), reached=ticketed,
                  rule_key=f"support {rule.pk}", rank=frame["score.support_risk"].astype("float64"))


@dataclass(frozen=True)
class RulePreview:
    matched: int  # match the condition now
    already_ticketed: int  # have an unresolved ticket of the rule, or one within its dedupe window
    out_of_budget: int  # their contact budget is spent
    would_open: int


def rule_preview(*, rule: SupportRule, now: datetime | None = None) -> RulePreview:
    """How many tickets the rule would open if it ran now."""
    now = now or timezone.now()
    condition = parse(rule.condition)
    selection = rule_select(rule=rule, condition=condition, frame=rule_frame([condition], now), now=now)
    reachable = int((contacts_remaining(customer_ids=selection.wanted, at=now) > 0).sum())
    return RulePreview(selection.matched, selection.already_reached, len(selection.wanted) - reachable, reachable)


def ticket_facts_for(*, customer_ids: np.ndarray, now: datetime) -> pd.DataFrame:
    """The facts (support.facts.FACT_COLUMNS) of these customers, from their order and review events of the last
    90 days: one query per 10,000 customers."""
    rows: list[tuple] = []
    for chunk in _chunks(customer_ids):
        rows += Event.objects.filter(
            customer_id__in=chunk, type__in=["purchase", "order_delivered", "review"],
            occurred_at__gte=now - timedelta(days=OPEN_ORDER_DAYS), occurred_at__lt=now,
        ).values_list("customer_id", "type", "occurred_at", "order_id", "rating", "promised_at")
    events = pd.DataFrame.from_records(rows, columns=["customer_id", "type", "occurred_at", "order_id", "rating",
                                                      "promised_at"])
    for name in ("occurred_at", "promised_at"):
        events[name] = pd.to_datetime(events[name], utc=True)
    events["order_id"] = events["order_id"].replace("", None)
    return ticket_facts(events, now)


def support_risk_scores(*, customer_ids: np.ndarray) -> dict[int, tuple[float, list[dict]]]:
    """Customer id -> (support risk, its stored reasons), for those scored."""
    found = {}
    for chunk in _chunks(customer_ids):
        for customer_id, probability, reasons in Score.objects.filter(
                customer_id__in=chunk, target="support_risk").values_list("customer_id", "probability", "reasons"):
            found[customer_id] = (probability, reasons)
    return found


def help_messages(*, customer: Customer) -> list[Ticket]:
    """The proactive tickets the storefront should tell the customer about: unresolved and not acknowledged yet."""
    return list(Ticket.objects.filter(customer=customer, origin=Ticket.Origin.PROACTIVE, status__in=Ticket.UNRESOLVED,
                                      acknowledged_at__isnull=True)
                .select_related("rule").order_by("-priority", "-opened_at"))


def overdue(now: datetime) -> Q:
    """Unresolved tickets past their due time."""
    return Q(status__in=Ticket.UNRESOLVED, due_at__lt=now)


def _chunks(ids) -> Iterable[list[int]]:
    ids = [int(i) for i in ids]
    for start in range(0, len(ids), IN_CHUNK):
        yield ids[start:start + IN_CHUNK]


DUE_SOON = timedelta(hours=24)


@dataclass(frozen=True)
class QueueRow:
    status: str
    tickets: int
    overdue: int  # unresolved, past their due time
    due_soon: int  # unresolved, due within DUE_SOON


def ticket_queue(*, now: datetime) -> list[QueueRow]:
    """Tickets by status, each status in the order of a ticket's life, with the unresolved ones by their due
    time: one grouped query."""
    counts = {row["status"]: row for row in Ticket.objects.values("status").annotate(
        n=Count("pk"), late=Count("pk", filter=overdue(now)),
        soon=Count("pk", filter=Q(status__in=Ticket.UNRESOLVED, due_at__gte=now, due_at__lt=now + DUE_SOON)),
    ).order_by()}
    return [QueueRow(status.value, *(counts.get(status.value, {}).get(k, 0) for k in ("n", "late", "soon")))
            for status in Ticket.Status]
