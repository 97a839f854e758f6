"""Reaching the customers a rule selected (behavior.core.outreach): their contact budget, then the rule's action."""

from datetime import datetime
from typing import Any

from django.db.models import Model

from behavior.actions import Action
from behavior.core.outreach import Outcome, Selection
from behavior.services.contacts import contacts_claim


def outreach_reach(*, rule: Model, action: Action, selection: Selection, at: datetime, run: Any = None,
                   **context: Any) -> Outcome:
    """Claim a contact for each wanted customer with budget left, best first, then have the rule's action
    record the control group and do what it does for the customers reached (Action.record).

    Runs in the caller's transaction, which holds the rule's row lock: the claims and what the action records
    (assignments, tickets) commit or roll back together.
    """
    reached = contacts_claim(customer_ids=selection.wanted, source=f"{rule._meta.verbose_name} {rule.pk}", at=at)
    action.record(rule, selection.control, reached, at=at, run=run, **context)
    return Outcome.of(rule.pk, selection, len(reached))
