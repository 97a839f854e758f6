"""Read side of campaigns: results (treatment against control) and the audience preview."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal

import numpy as np
import pandas as pd
import xgboost as xgb
from django.db.models import Count, Exists, ExpressionWrapper, OuterRef, Q, Sum
from django.utils import timezone

from behavior.conditions import Condition, feature_columns, parse
from behavior.core.features import build_features
from behavior.core.outreach import Selection, select
from behavior.core.proportions import Z95, newcombe_interval, wilson_interval
from behavior.core.training import ModelArtifactError
from behavior.core.uplift import CHANCE, RESPONSE, Blend
from behavior.models import Event, ModelVersion
from behavior.selectors import (
    average_order_value,
    condition_frame,
    conditions_frame,
    customers_frame,
    events_frame,
    features_at,
    shop_norms_at,
)
from behavior.services.registry import uplift_version_load
from behavior.services.scoring import champions_predict
from campaigns.models import Assignment, Campaign, Coupon

log = logging.getLogger(__name__)

ALWAYS_LOADED = ("customer.marketing_consent", "score.purchase_intent")
# Below this many customers in the treatment or the control group, a campaign's page says "too early to tell"
# instead of an uplift and extra conversions: a single purchase then moves a group's rate by two points or
# more, and at 50 each with a 10% rate the difference's interval still spans about 25 points.
MIN_GROUP_CUSTOMERS = 50


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


def audience_rank(audience: pd.DataFrame) -> pd.Series:
    """The order a campaign reaches its audience in when caps or budgets run short: by predicted uplift where it
    targets by it, else the likeliest buyers first."""
    return audience["uplift"] if audience["uplift"].notna().any() else audience["intent"]


def audience_select(campaign: Campaign, matched: pd.DataFrame, now: datetime, cap: int | None
                    ) -> tuple[Selection, pd.DataFrame]:
    """Whom the campaign would treat and hold out among the customers its mask keeps (rows of an audience_frame),
    as an evaluation would, targeting by uplift with the features of `now`; and the audience it kept."""
    audiences = {campaign.pk: matched["score.purchase_intent"].astype("float64").to_frame("intent")}
    audience = uplift_choose([campaign], uplift_predict([campaign], audiences, now), now)[campaign.pk]
    return select(ids=audience.index.to_numpy(np.int64), rule_key=campaign.pk or 0,
                  holdout_percent=float(campaign.holdout_percent), rank=audience_rank(audience), cap=cap), audience


@dataclass(frozen=True)
class GroupResult:
    customers: int
    converted: int  # bought, or redeemed their coupon, within the attribution window after assignment

    @property
    def rate(self) -> float | None:
        return self.converted / self.customers if self.customers else None

    @property
    def rate_interval(self) -> tuple[float, float] | None:
        """The rate's 95% Wilson score interval: it keeps its width at 0 and at every customer."""
        return wilson_interval(self.converted, self.customers, Z95) if self.customers else None


@dataclass(frozen=True)
class CampaignResults:
    treatment: GroupResult
    control: GroupResult
    uplift: float | None  # treatment rate minus control rate
    # 95%, Newcombe's hybrid score interval (behavior.core.proportions): both groups' uncertainty, honest at 0 and n
    uplift_interval: tuple[float, float] | None
    redemptions: int
    discount_spent: Decimal
    # Conversions the campaign added: the uplift times the treated customers, with the uplift's interval times
    # them (so the control group's uncertainty is carried, not only the treated's).
    extra_conversions: float | None
    extra_conversions_interval: tuple[float, float] | None
    cost_per_extra_conversion: Decimal | None  # discount spent / extra conversions; None unless some were added
    # From the interval's top to its bottom; an upper end of None: the interval reaches no added conversion.
    cost_interval: tuple[Decimal, Decimal | None] | None

    @property
    def too_early(self) -> bool:
        """Too few customers in a group (MIN_GROUP_CUSTOMERS) to say what the campaign added."""
        return min(self.treatment.customers, self.control.customers) < MIN_GROUP_CUSTOMERS


def campaign_results(*, campaign: Campaign) -> CampaignResults:
    """Conversion of treatment and control within the attribution window, in one grouped query.

    A customer converted who bought (a purchase event) or redeemed their coupon (an order with the code,
    whether or not the shop also sent its purchase) within the window after their assignment.
    """
    rows = (_assignments_converted(campaign).values("group")
            .annotate(customers=Count("pk"), converted_count=Count("pk", filter=Q(converted=True))).order_by())
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
        interval = newcombe_interval(treatment.converted, treatment.customers, control.converted, control.customers,
                                     Z95)
        extra = uplift * treatment.customers
        extra_interval = (interval[0] * treatment.customers, interval[1] * treatment.customers)
        if extra > 0 and campaign.action.spends_budget:
            cost = _per(spent, extra)
            cost_interval = (_per(spent, extra_interval[1]),
                             _per(spent, extra_interval[0]) if extra_interval[0] > 0 else None)
    return CampaignResults(treatment, control, uplift, interval, coupons["n"], spent, extra, extra_interval, cost,
                           cost_interval)


def _assignments_converted(campaign: Campaign):
    """The campaign's assignments, each with `converted`: bought (a purchase event) or redeemed its coupon within
    the attribution window after it was made."""
    window = timedelta(days=campaign.attribution_days)
    window_end = ExpressionWrapper(OuterRef("assigned_at") + window, output_field=Event.occurred_at.field)
    bought = Event.objects.filter(customer_id=OuterRef("customer_id"), type="purchase",
                                  occurred_at__gte=OuterRef("assigned_at"), occurred_at__lt=window_end)
    redeemed = Coupon.objects.filter(assignment_id=OuterRef("pk"), redeemed_at__gte=OuterRef("assigned_at"),
                                     redeemed_at__lt=window_end)
    return Assignment.objects.filter(campaign=campaign).annotate(converted=Exists(bought) | Exists(redeemed))


@dataclass(frozen=True)
class History:
    """What a campaign did and what came of it: one row per assignment whose attribution window has closed."""

    X: pd.DataFrame  # the customer's features when assigned (build_features)
    treated: np.ndarray
    converted: np.ndarray
    customer_ids: np.ndarray


def campaign_history(*, campaign: Campaign, now: datetime | None = None) -> History:
    """Each assignment with a closed window: the customer's features as they were at its moment, its group and
    whether it converted. One features pass per evaluation moment (assignments share their run's moment)."""
    now = now or timezone.now()
    closed = now - timedelta(days=campaign.attribution_days)
    rows = pd.DataFrame.from_records(
        list(_assignments_converted(campaign).filter(assigned_at__lte=closed)
             .values_list("customer_id", "assigned_at", "group", "converted").order_by("assigned_at", "pk")),
        columns=["customer_id", "assigned_at", "group", "converted"])
    if rows.empty:
        return History(pd.DataFrame(), np.zeros(0, bool), np.zeros(0, bool), np.zeros(0, np.int64))
    events, customers = events_frame(until=rows["assigned_at"].max().to_pydatetime()), customers_frame()
    parts = []
    for moment, assigned in rows.groupby("assigned_at", sort=True):
        ids = assigned["customer_id"].to_numpy()
        # The assigned customers' own events, measured against the whole shop's norms of that moment.
        X = build_features(events[events["customer_id"].isin(ids)], moment,
                           customers[customers["customer_id"].isin(ids)], norms=shop_norms_at(moment.to_pydatetime()))
        parts.append(X.reindex(ids))
    return History(X=pd.concat(parts, ignore_index=True),
                   treated=(rows["group"] == Assignment.Group.TREATMENT).to_numpy(),
                   converted=rows["converted"].to_numpy(bool), customer_ids=rows["customer_id"].to_numpy(np.int64))


# Below these, a campaign's history says too little about whom it persuades: targeting keeps to the condition.
MIN_HISTORY = 200  # assignments with a closed attribution window, in each group
MIN_CONVERSIONS = 20  # conversions, in each group


@dataclass(frozen=True)
class Targeting:
    """How a campaign picks its audience now: by its champion uplift model, or by its condition alone (and why)."""

    model: ModelVersion | None
    says: str  # in words, for the preview, the admin and the log


# Why a campaign's newest learning left it without an uplift champion (campaigns.uplift), in words.
NO_UPLIFT_SERVES = {RESPONSE: "the response ranking beat every uplift learner on the customers it held out (model "
                              "version {pk}), and a condition on purchase intent is a response ranking",
                    CHANCE: "no ranking beat chance on the customers it held out (model version {pk})"}


def campaign_targeting(campaign: Campaign) -> Targeting:
    if not campaign.targets_by_uplift:
        return Targeting(None, "by its condition")
    champion = ModelVersion.objects.filter(target=campaign.uplift_target, status=ModelVersion.Status.CHAMPION).first()
    if champion is None:
        latest = ModelVersion.objects.filter(target=campaign.uplift_target).order_by("-pk").first()
        if latest is not None and latest.metrics.get("serves") in NO_UPLIFT_SERVES:
            why = NO_UPLIFT_SERVES[latest.metrics["serves"]].format(pk=latest.pk)
            return Targeting(None, f"by its condition alone: {why}")
        return Targeting(None, "by its condition alone for now: it has no uplift model that ranks better than "
                               "purchase intent yet (one is learnt from at least "
                               f"{MIN_HISTORY:,} treated and {MIN_HISTORY:,} control assignments with a closed "
                               f"attribution window, {MIN_CONVERSIONS:,} conversions in each)")
    learner = champion.params.get("learner", "a learner")
    return Targeting(champion, f"by predicted uplift (model version {champion.pk}, {learner})")


def uplift_predict(campaigns: list[Campaign], audiences: dict[int, pd.DataFrame], now: datetime,
                   customers: tuple[int, int] | None = None) -> dict[int, pd.DataFrame]:
    """Add each audience's predicted uplift (`uplift`, NaN where the campaign does not target by it), from the
    features its customers have now: built once, only if some campaign has a model to use. A model that cannot
    be read or cannot rank these customers leaves its campaign to its condition, and the others go on."""
    models: dict[int, tuple[ModelVersion, Blend]] = {}
    for campaign in campaigns:
        targeting = campaign_targeting(campaign)
        if targeting.model is None:
            if campaign.targets_by_uplift:
                log.info("campaign %s picks its audience %s", campaign.pk, targeting.says)
            continue
        try:
            models[campaign.pk] = targeting.model, uplift_version_load(targeting.model)
        except ModelArtifactError as error:
            log.error("campaign %s picks its audience by its condition alone: %s", campaign.pk, error)
    X = features_at(now, customers=customers) if models else None
    out = {}
    for pk, audience in audiences.items():
        audience = audience.assign(uplift=np.nan)
        if pk in models and X is not None and len(audience):
            version, model = models[pk]
            try:
                audience["uplift"] = model(X.reindex(index=audience.index, columns=version.feature_names))
            except (ValueError, TypeError, xgb.core.XGBoostError) as error:
                log.error("campaign %s picks its audience by its condition alone: model version %s cannot rank "
                          "its customers: %s", pk, version.pk, error)
        out[pk] = audience
    return out


def uplift_choose(campaigns: list[Campaign], audiences: dict[int, pd.DataFrame], now: datetime
                  ) -> dict[int, pd.DataFrame]:
    """Keep each uplift-targeted audience to its top share or count and to the customers worth treating, and give
    a customer several of them want to the one with the highest expected gain net of its cost.

    The expected gain of treating a customer: the extra orders (predicted uplift) times the shop's average order,
    less what the action costs on the orders it expects to pay for (purchase intent plus uplift, each at the
    action's cost per buyer); a customer with no gain left is not treated. A customer one of them already
    assigned this period (treated or held out) stays with it. Audiences without an uplift are left as they are.
    """
    by_uplift = [c for c in campaigns if c.targets_by_uplift and c.pk in audiences
                 and audiences[c.pk]["uplift"].notna().any() and assignments_left(c) != 0]
    if not by_uplift:
        return audiences
    order_value = float(average_order_value(now))
    gains = {}
    for campaign in by_uplift:
        audience = _top(campaign, audiences[campaign.pk])
        cost = float(campaign.action.expected_cost(campaign, 1, now) or 0)
        buying = (audience["intent"].fillna(0) + audience["uplift"]).clip(0, 1)
        # Without a recent order to value the extra ones by, the uplift alone ranks.
        gains[campaign.pk] = (audience["uplift"] * order_value - buying * cost) if order_value else audience["uplift"]
    table = pd.DataFrame(gains)  # customers by campaign; NaN: not in that campaign's top
    for campaign in by_uplift:
        held = table.index.intersection(list(Assignment.objects.filter(
            campaign=campaign, period=campaign.period_at(now)).values_list("customer_id", flat=True)))
        table.loc[held] = np.nan
        table.loc[held, campaign.pk] = np.inf  # evaluation finds them reached already
    table = table.dropna(how="all")
    best = table.fillna(-np.inf).idxmax(axis=1)
    keep = table.max(axis=1) > 0
    out = dict(audiences)
    for pk in gains:
        out[pk] = audiences[pk].loc[audiences[pk].index.isin(best.index[keep & best.eq(pk)])]
    return out


def _top(campaign: Campaign, audience: pd.DataFrame) -> pd.DataFrame:
    """The audience's customers with the highest predicted uplift: its share, or its count if fewer."""
    ranked = audience[audience["uplift"].notna()].sort_values("uplift", ascending=False, kind="stable")
    size = len(ranked)
    if campaign.uplift_top_percent is not None:
        size = int((len(ranked) * Decimal(campaign.uplift_top_percent) / 100).to_integral_value(ROUND_CEILING))
    if campaign.uplift_top_count is not None:
        size = min(size, campaign.uplift_top_count)
    return ranked.head(size)


def _per(amount: Decimal, count: float) -> Decimal:
    return (amount / Decimal(str(count))).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class AudiencePreview:
    audience: int  # match the condition now, with consent
    targeting: str  # how it picks among them (campaign_targeting), in words
    kept: int  # of the audience, those its uplift targeting keeps (all without it)
    holdout: int  # expected control group
    treated: int  # expected treated, after the campaign's cap
    expected_redemptions: float  # treated x their chance of buying (purchase intent, plus the uplift if predicted)
    expected_uplift: float | None  # extra conversions expected among the treated (their predicted uplift)
    expected_cost: Decimal | None  # expected redemptions x the discount of an average order; None for ads


def campaign_preview(*, campaign: Campaign, now: datetime | None = None) -> AudiencePreview:
    """Who the campaign would reach if it ran now, and what its offers would be expected to cost.

    Reads every customer's events when the condition uses features (seconds at 20,000 customers): the campaign's
    page shows the figures stored by the last evaluation or a background computation instead (campaign_audience).
    """
    now = now or timezone.now()
    return preview_of(campaign, campaign_audience_matched(campaign, now), now)


def campaign_audience_matched(campaign: Campaign, now: datetime, customers: tuple[int, int] | None = None
                              ) -> pd.DataFrame:
    """The customers the campaign may reach now (its mask), among all or an id range: their purchase intent and
    predicted uplift (NaN without a model), by customer id, as evaluation's audiences (campaigns_audiences)."""
    condition = condition_of(campaign)
    frame = audience_frame([condition], now, customers=customers)
    mask = audience_mask(campaign, condition, frame, now)
    matched = {campaign.pk: frame.loc[mask, "score.purchase_intent"].astype("float64").to_frame("intent")}
    return uplift_predict([campaign], matched, now, customers)[campaign.pk]


def preview_of(campaign: Campaign, matched: pd.DataFrame, now: datetime, chosen: pd.DataFrame | None = None
               ) -> AudiencePreview:
    """The preview of a campaign whose reachable customers are `matched` (campaign_audience_matched); `chosen`:
    those its uplift targeting keeps, when an evaluation chose them among every campaign already."""
    if chosen is None:
        chosen = uplift_choose([campaign], {campaign.pk: matched}, now)[campaign.pk]
    selection = select(ids=chosen.index.to_numpy(np.int64), rule_key=campaign.pk or 0,
                       holdout_percent=float(campaign.holdout_percent), rank=audience_rank(chosen),
                       cap=assignments_left(campaign))
    treated = chosen.reindex(selection.wanted)
    uplift = treated["uplift"].sum() if treated["uplift"].notna().any() else None
    expected = float((treated["intent"].fillna(0) + (treated["uplift"].fillna(0))).clip(0, 1).sum())
    targeting = campaign_targeting(campaign)
    says = targeting.says
    if targeting.model is not None and len(matched) and chosen["uplift"].isna().all():
        says = f"by its condition alone: model version {targeting.model.pk} cannot rank them (the log says why)"
    return AudiencePreview(len(matched), says, len(chosen),
                           len(selection.control), len(selection.wanted), expected,
                           None if uplift is None else float(uplift),
                           campaign.action.expected_cost(campaign, expected, now))


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
        mask = audience_mask(campaign, condition, frame, at)
        selection, _ = audience_select(campaign, frame[mask], at, cap=campaign.max_assignments)  # as if never run
        treated = selection.wanted
        inside = purchases["occurred_at"].ge(at) & purchases["occurred_at"].lt(at + window)
        bought = purchases["customer_id"].isin(treated) & inside
        buyers = purchases.loc[bought, "customer_id"].nunique()
        # Each buyer's first order in the window is where the treatment would have been used.
        lines = purchases.loc[bought].assign(spend=spend[bought]).sort_values("occurred_at")
        orders = lines.groupby(["customer_id", lines["order_id"].fillna("")], sort=False)["spend"].sum()
        at_stake = campaign.action.cost_of_orders(campaign, orders.groupby(level="customer_id").first())
        periods.append(DryRunPeriod(at, int(mask.sum()), len(treated), buyers,
                                    buyers / len(treated) if len(treated) else None, at_stake))
        at += timedelta(days=campaign.period_days)
    return periods


@dataclass(frozen=True)
class CampaignSummary:
    campaign: Campaign
    results: CampaignResults
    budget: Decimal | None  # what its action may spend in all (Action.budget); None: no budget


def campaigns_active() -> list[CampaignSummary]:
    """The active campaigns, highest priority first, each with its results and budget. Each campaign's results
    are two queries over its own assignments (campaign_results): the purchases of its assigned customers within
    their windows, through the events' (customer, time) index, never the whole shop's events."""
    return [CampaignSummary(campaign, campaign_results(campaign=campaign), campaign.action.budget(campaign))
            for campaign in Campaign.objects.filter(status=Campaign.Status.ACTIVE).order_by("-priority", "pk")]
