"""What every campaign action says about itself; the engine, the admin, placements and the dry run ask it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from campaigns.models import Assignment, Campaign


class CampaignError(Exception):
    """A campaign cannot be evaluated or changed, said in words a campaign manager understands."""


class Action:
    """One thing a campaign does for the customers it treats. Subclasses set `kind`, `label` and `fields`, and
    override what they do; the engine (behavior.core.outreach) has already chosen, held out and claimed budget."""

    kind: str
    label: str
    fields: tuple[str, ...] = ()  # the campaign's settings of this action, shown in their own admin section
    shown_in_placements = False  # the storefront's placements call shows its live assignments
    reads_events = False  # `prepare` needs the events frame (recommendations)

    def validate(self, campaign: Campaign) -> dict[str, str]:
        """Problems with the campaign's settings for this action, by field."""
        return {}

    def valid_days(self, campaign: Campaign) -> int:
        """How long a treatment lasts after its assignment."""
        return campaign.period_days

    def prepare(self, campaign: Campaign, customer_ids: np.ndarray, events: pd.DataFrame | None,
                now: datetime) -> dict[int, dict]:
        """Fields of each treated customer's assignment, by customer id, before it is stored."""
        return {}

    def treat(self, campaign: Campaign, assignments: list[Assignment], expires: datetime) -> None:
        """Do the action for the assignments just stored, in the evaluation's transaction."""

    def expected_cost(self, campaign: Campaign, buyers: float, now: datetime) -> Decimal | None:
        """What `buyers` expected conversions would cost (the audience preview); None: nothing but contacts."""
        return None

    def cost_of_orders(self, campaign: Campaign, first_orders: pd.Series) -> Decimal | None:
        """What the action would have cost on these first orders of treated buyers (the dry run)."""
        return None
