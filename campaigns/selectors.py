"""Read side of campaigns: results (treatment against control) and the audience preview."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
from django.db.models import Avg, Count, Exists, ExpressionWrapper, F, OuterRef, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from behavior.models import Event
from campaigns.models import Assignment, Campaign
from campaigns.services import audience_frame, audience_mask, condition_of, in_holdout

Z95 = 1.959964


@dataclass(frozen=True)
class GroupResult:
    customers: int
    converted: int  # bought within the attribution window after assignment

    @property
    def rate(self) -> float | None:
        return self.converted / self.customers if self.customers else None


@dataclass(frozen=True)
class CampaignResults:
    treatment: GroupResult
    control: GroupResult
    uplift: float | None  # treatment rate minus control rate
    uplift_interval: tuple[float, float] | None  # 95%, normal approximation of the difference of two proportions
    redemptions: int
    discount_spent: Decimal
    cost_per_extra_conversion: Decimal | None  # discount spent / conversions the campaign added; None without uplift


def campaign_results(*, campaign: Campaign) -> CampaignResults:
    """Conversion of treatment and control within the attribution window, in one grouped query."""
    window = timedelta(days=campaign.attribution_days)
    bought = Event.objects.filter(
        customer_id=OuterRef("customer_id"), type="purchase", occurred_at__gte=OuterRef("assigned_at"),
        occurred_at__lt=ExpressionWrapper(OuterRef("assigned_at") + window, output_field=Event.occurred_at.field),
    )
    rows = (Assignment.objects.filter(campaign=campaign).annotate(converted=Exists(bought))
            .values("group").annotate(customers=Count("pk"), converted_count=Count("pk", filter=Q(converted=True)))
            .order_by())
    groups = {r["group"]: GroupResult(r["customers"], r["converted_count"]) for r in rows}
    treatment = groups.get(Assignment.Group.TREATMENT, GroupResult(0, 0))
    control = groups.get(Assignment.Group.CONTROL, GroupResult(0, 0))
    coupons = campaign.assignments.filter(coupon__redeemed_at__isnull=False).aggregate(
        n=Count("coupon"), spent=Sum("coupon__discount_amount"))
    spent = coupons["spent"] or Decimal(0)
    uplift = interval = cost = None
    if treatment.customers and control.customers:
        pt, pc = treatment.rate, control.rate
        uplift = pt - pc
        half = Z95 * math.sqrt(pt * (1 - pt) / treatment.customers + pc * (1 - pc) / control.customers)
        interval = (uplift - half, uplift + half)
        extra = uplift * treatment.customers
        if extra > 0:
            cost = (spent / Decimal(str(extra))).quantize(Decimal("0.01"))
    return CampaignResults(treatment, control, uplift, interval, coupons["n"], spent, cost)


@dataclass(frozen=True)
class AudiencePreview:
    audience: int  # match the condition now, with consent
    holdout: int  # expected control group
    treated: int  # expected treated, after the campaign's cap
    expected_redemptions: float  # treated x their mean purchase intent
    expected_cost: Decimal | None  # expected redemptions x the discount of an average order; None for ads


def campaign_preview(*, campaign: Campaign, now: datetime | None = None) -> AudiencePreview:
    """Who the campaign would reach if it ran now, and what its offers would be expected to cost."""
    now = now or timezone.now()
    condition = condition_of(campaign)
    frame = audience_frame([condition], now)
    ids = frame.index.to_numpy(np.int64)[audience_mask(campaign, condition, frame, now)]
    control = in_holdout(campaign.pk or 0, ids, float(campaign.holdout_percent))
    treated = ids[~control]
    if campaign.max_assignments is not None:
        treated = treated[: campaign.max_assignments]
    intent = frame["score.purchase_intent"].reindex(treated).fillna(0).to_numpy()
    expected = float(intent.sum())
    cost = None
    if campaign.kind == Campaign.Kind.PRICE_OFFER:
        cost = (Decimal(str(expected)) * _expected_discount(campaign, now)).quantize(Decimal("0.01"))
    return AudiencePreview(len(ids), int(control.sum()), len(treated), expected, cost)


def _expected_discount(campaign: Campaign, now: datetime) -> Decimal:
    """The discount on the shop's average order (of the last 90 days), as a redemption is expected to cost."""
    value = Decimal(campaign.discount_value)
    if campaign.discount_kind == Campaign.Discount.FIXED:
        return value
    since = now - timedelta(days=90)
    average = (Event.objects.filter(type="purchase", occurred_at__gte=since, occurred_at__lt=now)
               .aggregate(v=Avg(F("price") * Coalesce(F("quantity"), 1)))["v"]) or Decimal(0)
    return Decimal(str(average)) * value / 100

