"""What every campaign action says about itself; the engine, the admin, placements and the dry run ask it."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import models

from behavior import actions
from behavior.conf import foresight_settings

if TYPE_CHECKING:
    from campaigns.models import Assignment, Campaign
    from campaigns.selectors import CampaignResults


class CampaignError(Exception):
    """A campaign cannot be evaluated or changed, said in words a campaign manager understands."""


class ActionSettings(models.Model):
    """A campaign's settings of its action: subclasses add the action's fields, validated by their `clean`."""

    campaign = models.OneToOneField("campaigns.Campaign", on_delete=models.CASCADE, primary_key=True,
                                    related_name="%(class)s")

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self._meta.verbose_name} of {self.campaign}"


class Action(actions.Action):
    """One thing a campaign does for the customers it treats. Subclasses set `kind`, `label` and the model of a
    campaign's settings for it (`settings_model`, one row per campaign, beside the action in its module), and
    override what they do; the engine (behavior.core.outreach) has already chosen, held out and claimed budget,
    and `record` stores the assignments (treated and control) and has the action `prepare` and `treat` them."""

    rules = "campaigns"
    settings_model: type[ActionSettings] | None = None
    shown_in_placements = False  # the storefront's placements call shows its live assignments
    reads_events = False  # `prepare` needs the events frame (recommendations)

    def record(self, rule, control, reached, *, at, run, **context):
        from campaigns.models import Assignment
        from campaigns.selectors import condition_of

        campaign = rule
        expires = at + timedelta(days=self.valid_days(campaign))
        common = dict(campaign=campaign, period=campaign.period_at(at), run=run, assigned_at=at, expires_at=expires)
        reason = condition_of(campaign).describe()[:500]
        prepared = self.prepare(campaign, reached, context.get("events"), at)
        rows = [Assignment(customer_id=int(c), group=Assignment.Group.CONTROL, **common) for c in control]
        rows += [Assignment(customer_id=int(c), group=Assignment.Group.TREATMENT, reason=reason,
                            **prepared.get(int(c), {}), **common) for c in reached]
        created = Assignment.objects.bulk_create(rows, batch_size=2_000)
        self.treat(campaign, [a for a in created if a.group == Assignment.Group.TREATMENT], expires)

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

    # What the campaign's results page says of it, beside treatment against control.
    converted = "bought"  # what counts as converting, in words: "A customer converted who bought ..."
    spends_budget = False  # its cost is the campaign's discount spent: the results give a cost per extra conversion

    def budget(self, campaign: Campaign) -> Decimal | None:
        """What the campaign may spend in all, against its results' discount spent; None: no budget."""
        return None

    def what_it_did(self, campaign: Campaign, results: CampaignResults) -> str:
        """What the action did so far, in words ("3 redemptions, 6.00 EUR discount spent")."""
        return ""

    def charts(self, campaign: Campaign) -> list[str]:
        """Charts of what it did (SVG), after the conversion and uplift charts."""
        return []


def shop_currency() -> str:
    """The shop's currency: FORESIGHT_CURRENCY where the project sets it; else, in a django-oscar shop, Oscar's
    OSCAR_DEFAULT_CURRENCY; else Foresight's default (EUR)."""
    chosen = getattr(settings, "FORESIGHT_CURRENCY", None) or getattr(settings, "OSCAR_DEFAULT_CURRENCY", None)
    return chosen or foresight_settings.CURRENCY


def money(amount) -> str:
    """An amount as a campaign manager reads it: two decimals and the shop's currency (shop_currency)."""
    return f"{amount:,.2f} {shop_currency()}"
