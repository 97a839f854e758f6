"""Read side of campaigns: results (treatment against control) and the audience preview."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
from django.db.models import Count, Exists, ExpressionWrapper, OuterRef, Q, Sum
from django.utils import timezone

from behavior.conditions import Condition, feature_columns, parse
from behavior.core.features import build_features
from behavior.core.outreach import Selection, select
from behavior.models import Event
from behavior.selectors import condition_frame, conditions_frame, customers_frame, events_frame
from behavior.services.scoring import champions_predict
from campaigns.models import Assignment, Campaign, Coupon

ALWAYS_LOADED = ("customer.marketing_consent", "score.purchase_intent")
Z95 = 1.959964


def campaigns_live(now: datetime):
    return (Campaign.objects.filter(status=Campaign.Status.ACTIVE)
            .filter(Q(starts_at__isnull=True) | Q(starts_at__lte=now))
            .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now))
            .order_by("-priority", "pk"))


def condition_of(campaign: Campaign) -> Condition:
    return parse(campaign.condition)


def audience_frame(conditions, now: datetime, customers: tuple[int, int] | None = None) -> pd.DataFrame:
    """Every customer's values of the fields these conditions use (plus consent and purchase intent)."""
    return conditions_frame(conditions, now, also=ALWAYS_LOADED, customers=customers)


def audience_mask(campaign: Campaign, condition: Condition, frame: pd.DataFrame, now: datetime) -> np.ndarray:
    """Who the campaign may reach: the condition, marketing consent, and not a likely buyer when asked."""
    mask = condition.mask(frame, now) & frame["customer.marketing_consent"].fillna(False).to_numpy(bool)
    if campaign.skip_likely_buyers_above is not None:
        intent = frame["score.purchase_intent"].to_numpy(np.float64, na_value=np.nan)
        mask &= ~(intent >= campaign.skip_likely_buyers_above)
    return mask


def assignments_left(campaign: Campaign) -> int | None:
    """How many more customers the campaign may treat (max_assignments); None: no cap."""
    if campaign.max_assignments is None:
        return None
    used = campaign.assignments.filter(group=Assignment.Group.TREATMENT).count() if campaign.pk else 0
    return max(campaign.max_assignments - used, 0)


def audience_select(campaign: Campaign, condition: Condition, frame: pd.DataFrame, now: datetime,
                    cap: int | None) -> Selection:
    """Whom the campaign would treat and hold out among the frame's customers, as an evaluation would."""
    return select(ids=frame.index.to_numpy(np.int64), mask=audience_mask(campaign, condition, frame, now),
                  rule_key=campaign.pk or 0, holdout_percent=float(campaign.holdout_percent),
                  rank=frame["score.purchase_intent"].astype("float64"), cap=cap)


@dataclass(frozen=True)
class GroupResult:
    customers: int
    converted: int  # bought, or redeemed their coupon, within the attribution window after assignment

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
    # Conversions the campaign added: the uplift times the treated customers, with the uplift's interval.
    extra_conversions: float | None
    extra_conversions_interval: tuple[float, float] | None
    cost_per_extra_conversion: Decimal | None  # discount spent / extra conversions; None unless some were added
    # From the interval's top to its bottom; an upper end of None: the interval reaches no added conversion.
    cost_interval: tuple[Decimal, Decimal | None] | None


def campaign_results(*, campaign: Campaign) -> CampaignResults:
    """Conversion of treatment and control within the attribution window, in one grouped query.

    A customer converted who bought (a purchase event) or redeemed their coupon (an order with the code,
    whether or not the shop also sent its purchase) within the window after their assignment.
    """
    window = timedelta(days=campaign.attribution_days)
    window_end = ExpressionWrapper(OuterRef("assigned_at") + window, output_field=Event.occurred_at.field)
    bought = Event.objects.filter(customer_id=OuterRef("customer_id"), type="purchase",
                                  occurred_at__gte=OuterRef("assigned_at"), occurred_at__lt=window_end)
    redeemed = Coupon.objects.filter(assignment_id=OuterRef("pk"), redeemed_at__gte=OuterRef("assigned_at"),
                                     redeemed_at__lt=window_end)
    rows = (Assignment.objects.filter(campaign=campaign).annotate(bought=Exists(bought), redeemed=Exists(redeemed))
            .values("group").annotate(customers=Count("pk"),
                                      converted_count=Count("pk", filter=Q(bought=True) | Q(redeemed=True)))
            .order_by())
    groups = {r["group"]: GroupResult(r["customers"], r["converted_count"]) for r in rows}
    treatment = groups.get(Assignment.Group.TREATMENT, GroupResult(0, 0))
    control = groups.get(Assignment.Group.CONTROL, GroupResult(0, 0))
    coupons = campaign.assignments.filter(coupon__redeemed_at__isnull=False).aggregate(
        n=Count("coupon"), spent=Sum("coupon__discount_amount"))
    spent = coupons["spent"] or Decimal(0)
    uplift = interval = extra = extra_interval = cost = cost_interval = None
    pt, pc = treatment.rate, control.rate
    if pt is not None and pc is not None:  # both groups have customers
        uplift = pt - pc
        half = Z95 * math.sqrt(pt * (1 - pt) / treatment.customers + pc * (1 - pc) / control.customers)
        interval = (uplift - half, uplift + half)
        extra = uplift * treatment.customers
        extra_interval = (interval[0] * treatment.customers, interval[1] * treatment.customers)
        if extra > 0 and campaign.action.spends_budget:
            cost = _per(spent, extra)
            cost_interval = (_per(spent, extra_interval[1]),
                             _per(spent, extra_interval[0]) if extra_interval[0] > 0 else None)
    return CampaignResults(treatment, control, uplift, interval, coupons["n"], spent, extra, extra_interval, cost,
                           cost_interval)


def _per(amount: Decimal, count: float) -> Decimal:
    return (amount / Decimal(str(count))).quantize(Decimal("0.01"))


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
    selection = audience_select(campaign, condition, frame, now, cap=assignments_left(campaign))
    treated = selection.wanted
    intent = frame["score.purchase_intent"].reindex(treated).fillna(0).to_numpy()
    expected = float(intent.sum())
    cost = campaign.action.expected_cost(campaign, expected, now)
    return AudiencePreview(selection.matched, len(selection.control), len(treated), expected, cost)


@dataclass(frozen=True)
class DryRunPeriod:
    """What a campaign would have done at one past moment, had it been live, with the stored history."""

    at: datetime
    audience: int  # matched then, with consent (scored by today's champions on the features of that moment)
    treated: int  # after holdout and cap
    bought_anyway: int  # treated customers who bought within the attribution window without any offer
    conversion: float | None  # bought_anyway / treated: what treatment would have to beat
    discount_on_their_orders: Decimal | None  # the offer's discount on those purchases: the margin at stake


def campaign_dry_run(*, campaign: Campaign, start: datetime, end: datetime) -> list[DryRunPeriod]:
    """Replay a (draft) campaign over [start, end), one evaluation per period, on the stored history.

    Nobody is assigned. The audience at each moment comes from features built on the events before
    it and today's champion models; what it cannot tell is the uplift, which only a live holdout measures.
    """
    if end <= start:
        raise ValueError("the dry run's end must come after its start")
    condition = condition_of(campaign)
    window = timedelta(days=campaign.attribution_days)
    events = events_frame(until=end + window)
    customers = customers_frame()
    stored = condition_frame(fields=[f for f in (*ALWAYS_LOADED, *condition.fields) if f.startswith("customer.")])
    purchases = events[events["type"].eq("purchase")]
    spend = purchases["price"].fillna(0) * purchases["quantity"].astype("float64").fillna(1)
    periods = []
    at = start
    while at < end:
        X = build_features(events, at, customers)
        frame = stored.join(feature_columns(X, condition.fields), how="outer")
        for target, probability in champions_predict(X=X).items():
            frame[f"score.{target}"] = pd.Series(probability, index=X.index).reindex(frame.index)
        for name in (*ALWAYS_LOADED, *condition.fields):
            if name not in frame:
                frame[name] = np.nan
        selection = audience_select(campaign, condition, frame, at, cap=campaign.max_assignments)  # as if never run
        treated = selection.wanted
        inside = purchases["occurred_at"].ge(at) & purchases["occurred_at"].lt(at + window)
        bought = purchases["customer_id"].isin(treated) & inside
        buyers = purchases.loc[bought, "customer_id"].nunique()
        # Each buyer's first order in the window is where the treatment would have been used.
        lines = purchases.loc[bought].assign(spend=spend[bought]).sort_values("occurred_at")
        orders = lines.groupby(["customer_id", lines["order_id"].fillna("")], sort=False)["spend"].sum()
        at_stake = campaign.action.cost_of_orders(campaign, orders.groupby(level="customer_id").first())
        periods.append(DryRunPeriod(at, selection.matched, len(treated), buyers,
                                    buyers / len(treated) if len(treated) else None, at_stake))
        at += timedelta(days=campaign.period_days)
    return periods

