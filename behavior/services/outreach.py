"""Reaching the customers a rule selected (behavior.core.outreach): the contact budget, then the rule's own record."""

from collections.abc import Callable
from datetime import datetime

import numpy as np

from behavior.core.outreach import Outcome, Selection
from behavior.services.contacts import contacts_claim


def outreach_reach(*, rule: int, selection: Selection, source: str, at: datetime,
                   record: Callable[[np.ndarray, np.ndarray], object]) -> Outcome:
    """Claim a contact for each wanted customer with budget left, best first, then `record(control, reached)`.

    Runs in the caller's transaction, which holds the rule's row lock: the claims and what the rule records
    (assignments, tickets) commit or roll back together.
    """
    reached = contacts_claim(customer_ids=selection.wanted, source=source, at=at)
    record(selection.control, reached)
    return Outcome.of(rule, selection, len(reached))
