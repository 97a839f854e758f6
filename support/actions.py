"""The support rules' action: a proactive ticket for each customer reached, with the facts and reasons that
made the rule pick them, queued for the helpdesk."""

from __future__ import annotations

from datetime import timedelta

from behavior.actions import Action, action_register, actions
from support.facts import facts_json, ticket_reasons
from support.models import OutboxMessage, Ticket
from support.selectors import support_risk_scores, ticket_facts_for
from support.services.outbox import outbox_enqueue


@action_register
class ProactiveTicket(Action):
    kind = "proactive_ticket"
    label = "proactive help ticket"
    rules = "support"

    def record(self, rule, control, reached, *, at, run, **context):
        """One ticket per customer reached (a support rule holds out nobody: `control` is empty)."""
        if len(reached) == 0:
            return
        facts = facts_json(ticket_facts_for(customer_ids=reached, now=at))
        scores = support_risk_scores(customer_ids=reached)
        tickets = []
        for customer_id in reached.tolist():
            found = facts.get(customer_id, {})
            risk, score_reasons = scores.get(customer_id, (None, []))
            tickets.append(Ticket(
                customer_id=customer_id, rule=rule, origin=Ticket.Origin.PROACTIVE, priority=rule.priority,
                group=rule.group, subject=rule.subject, facts=found,
                reasons=ticket_reasons(found, risk, score_reasons), run=run, opened_at=at,
                due_at=at + timedelta(hours=rule.sla_hours)))
        outbox_enqueue(tickets=Ticket.objects.bulk_create(tickets, batch_size=2_000), kind=OutboxMessage.Kind.OPENED,
                       now=at)


PROACTIVE_TICKET = actions("support")[ProactiveTicket.kind]  # the one action support rules take, as registered
