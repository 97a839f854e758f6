"""Campaign use cases: evaluate the active campaigns (after a scoring run, every hour, or one now), preview one,
redeem a coupon.

Evaluation is set-based: one frame of every customer's condition fields, one mask per campaign,
bulk inserts. Each campaign is evaluated in its own transaction holding its row lock, so two
workers evaluating the same run take turns and the second finds the period's assignments made;
caps are counted under that lock and contacts are claimed through behavior's budget.
"""

from __future__ import annotations

import functools
import hashlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import orjson
import pandas as pd
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from behavior.broker import hand_over
from behavior.conditions import ConditionError
from behavior.core.outreach import Outcome, select
from behavior.models import Customer, ScoringRun
from behavior.selectors import customer_id_ranges, events_frame
from behavior.services.outreach import outreach_reach
from campaigns.actions import registry, shown_kinds
from campaigns.actions.ad import AdSettings
from campaigns.actions.base import CampaignError
from campaigns.actions.price_offer import PriceOfferSettings
from campaigns.models import Assignment, Campaign, CampaignAudience, Coupon
from campaigns.placements_cache import placements_changed
from campaigns.selectors import (
    AudiencePreview,
    assignments_left,
    audience_frame,
    audience_mask,
    audience_rank,
    campaign_audience_matched,
    campaign_targeting,
    campaigns_live,
    condition_of,
    preview_of,
    uplift_choose,
    uplift_predict,
)

CENT = Decimal("0.01")


def campaigns_evaluate(*, run: ScoringRun | None = None, now: datetime | None = None,
                       audiences: dict[int, pd.DataFrame] | None = None, only: int | None = None) -> list[Outcome]:
    """Assign every live campaign's audience (or only the campaign with id `only`), highest priority first; a re-run
    in the same period adds nothing.

    `audiences` (campaign id -> its audience: purchase intent and predicted uplift by customer id) are computed
    here unless given: workers compute them range by range (campaigns_audiences) and one task assigns, with the
    same result. Campaigns that target by uplift keep to their top first (campaigns.selectors.uplift_choose).
    """
    now = now or (run.as_of if run else timezone.now())
    campaigns = list(campaigns_live(now))
    chosen = [c for c in campaigns if only is None or c.pk == only]
    if not chosen:
        return []
    if audiences is None:
        audiences = campaigns_audiences(now=now)
    # Among all live campaigns even for one: a customer several uplift-targeted offers want goes to one of them.
    matched, audiences = audiences, uplift_choose(campaigns, audiences, now)
    events = None
    outcomes = []
    for campaign in chosen:
        if campaign.action.reads_events and events is None:
            events = events_frame(until=now)
        audience = audiences.get(campaign.pk, AUDIENCE_NONE)
        outcomes.append(_campaign_evaluate(campaign, audience, now, run, events))
        # The campaign page's figures, from the audiences at hand (after its assignments: its cap as left now).
        campaign_audience_store(campaign=campaign, as_of=now, source=CampaignAudience.Source.EVALUATION, run=run,
                                preview=preview_of(campaign, matched.get(campaign.pk, AUDIENCE_NONE), now,
                                                   chosen=audience))
    return outcomes


AUDIENCE_COLUMNS = ("intent", "uplift")  # an audience: purchase intent and predicted uplift by customer id
AUDIENCE_NONE = pd.DataFrame({c: pd.Series(dtype="float64") for c in AUDIENCE_COLUMNS},
                             index=pd.Index([], dtype="int64"))


def campaigns_audiences(*, now: datetime, customers: tuple[int, int] | None = None) -> dict[int, pd.DataFrame]:
    """Each live campaign's audience among all customers (or an id range): their purchase intent and, for a
    campaign that targets by uplift and has a model, their predicted uplift (else NaN), by customer id."""
    campaigns = list(campaigns_live(now))
    conditions = {c.pk: condition_of(c) for c in campaigns}
    frame = audience_frame(conditions.values(), now, customers=customers)
    intent = frame["score.purchase_intent"].astype("float64")
    audiences = {c.pk: intent[audience_mask(c, conditions[c.pk], frame, now)].to_frame("intent") for c in campaigns}
    return uplift_predict(campaigns, audiences, now, customers)


def _campaign_evaluate(campaign, audience: pd.DataFrame, now, run, events) -> Outcome:
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if campaign.status != Campaign.Status.ACTIVE:
            return Outcome.nothing(campaign.pk)
        assigned = (Assignment.objects.filter(campaign=campaign, period=campaign.period_at(now))
                    .values_list("customer_id", flat=True))
        selection = select(ids=audience.index.to_numpy(np.int64), reached=assigned, rule_key=campaign.pk,
                           holdout_percent=float(campaign.holdout_percent), rank=audience_rank(audience),
                           cap=assignments_left(campaign))
        outcome = outreach_reach(rule=campaign, action=campaign.action, selection=selection, at=now, run=run,
                                 events=events)
        if outcome.reached:
            placements_changed()
    return outcome


def campaign_evaluate_now(*, campaign: Campaign, now: datetime | None = None) -> Outcome:
    """Evaluate one live campaign now, as its schedule would (condition, consent, holdout, caps, contact budget,
    once a period), ahead of the campaigns its schedule would evaluate with it: a campaign manager's "Evaluate now".
    Raises CampaignError for a campaign that is not live."""
    now = now or timezone.now()
    outcomes = campaigns_evaluate(now=now, only=campaign.pk)
    if outcomes:
        return outcomes[0]
    campaign.refresh_from_db()
    if campaign.status != Campaign.Status.ACTIVE:
        why = f"is {campaign.status}"
    elif campaign.starts_at and campaign.starts_at > now:
        why = f"starts at {campaign.starts_at:%Y-%m-%d %H:%M %Z}"
    else:
        why = f"ended at {campaign.ends_at:%Y-%m-%d %H:%M %Z}"
    raise CampaignError(f"only live campaigns are evaluated, and this one {why}")


# --- the audience figures of a campaign's page ----------------------------------------------------------------------

# What the figures depend on besides the shop's data: the campaign's fields below and its action's settings.
FINGERPRINT_FIELDS = ("kind", "condition", "holdout_percent", "max_assignments", "skip_likely_buyers_above",
                      "uplift_top_percent", "uplift_top_count")
FIGURES_FRESH_FOR = timedelta(days=1)  # a campaign's page asks for figures older than this again (drafts' mostly)
REQUEST_LOST_AFTER = timedelta(minutes=15)  # a computation asked for this long ago and not done is asked again
# Customers a background computation reads at once, and after which it says how far it has come: 100,000
# customers (1.06 million events of 90 days) took 8.6 s in two parts against 6.9 s at once, on 2 busy cores.
AUDIENCE_PART_CUSTOMERS = 50_000


def campaign_fingerprint(campaign: Campaign) -> str:
    """A digest of what the campaign's audience figures are computed from: stored figures with another are stale."""
    own = campaign.settings
    settings = {} if own is None else {f.name: getattr(own, f.attname) for f in own._meta.concrete_fields
                                       if f.editable and not f.primary_key and f.name != "campaign"}
    values = {**{name: getattr(campaign, name) for name in FINGERPRINT_FIELDS}, "settings": settings}
    if campaign.targets_by_uplift:  # a newly learnt uplift model picks another audience
        model = campaign_targeting(campaign).model
        values["uplift_model"] = None if model is None else model.pk
    return hashlib.sha256(orjson.dumps(values, default=str, option=orjson.OPT_SORT_KEYS)).hexdigest()


def campaign_audience_store(*, campaign: Campaign, as_of: datetime, source: str, preview: AudiencePreview | None,
                            run: ScoringRun | None = None, fingerprint: str | None = None, error: str = "") -> bool:
    """Keep a campaign's audience figures for its page (none, with `error`, when they could not be computed).
    Figures older than those kept already are dropped (two computations that cross); True if kept."""
    fingerprint = fingerprint or campaign_fingerprint(campaign)
    figures = ({} if preview is None else
               {"audience": preview.audience, "targeting": preview.targeting[:500], "kept": preview.kept,
                "holdout": preview.holdout, "treated": preview.treated,
                "expected_redemptions": preview.expected_redemptions, "expected_uplift": preview.expected_uplift,
                "expected_cost": preview.expected_cost})
    CampaignAudience.objects.bulk_create([CampaignAudience(campaign=campaign)], ignore_conflicts=True)
    row = CampaignAudience.objects.filter(campaign=campaign)
    kept = row.filter(Q(as_of__isnull=True) | Q(as_of__lte=as_of)).update(
        **{**{f.name: f.get_default() for f in CampaignAudience._meta.concrete_fields
              if f.name in {"audience", "targeting", "kept", "holdout", "treated", "expected_redemptions",
                            "expected_uplift", "expected_cost"}},
           **figures, "fingerprint": fingerprint, "as_of": as_of, "source": source, "run": run, "error": error[:500]})
    # A computation asked for these settings is done (one asked for newer settings goes on).
    row.filter(requested_fingerprint=fingerprint).update(requested_at=None, progress="")
    return bool(kept)


def campaign_audience_request(*, campaign: Campaign, now: datetime | None = None) -> bool:
    """Have the campaign's audience figures computed in the background, unless those kept are for its current
    condition and settings or a computation of them is under way; True if one was asked for. Safe to call from
    every page view: the conditional update lets one caller of several ask."""
    now = now or timezone.now()
    fingerprint = campaign_fingerprint(campaign)
    CampaignAudience.objects.bulk_create([CampaignAudience(campaign=campaign)], ignore_conflicts=True)
    asked = (CampaignAudience.objects.filter(campaign=campaign)
             .exclude(Q(fingerprint=fingerprint) & Q(as_of__gte=now - FIGURES_FRESH_FOR))
             .filter(~Q(requested_fingerprint=fingerprint) | Q(requested_at__isnull=True)
                     | Q(requested_at__lt=now - REQUEST_LOST_AFTER))
             .update(requested_fingerprint=fingerprint, requested_at=now, progress="waiting for a worker"))
    if asked:
        from campaigns.tasks import compute_campaign_audience

        pk = campaign.pk
        transaction.on_commit(lambda: hand_over(
            compute_campaign_audience.s(pk),
            sweeper=f"the campaign's page, which asks again after {REQUEST_LOST_AFTER.seconds // 60} minutes"))
    return bool(asked)


def campaign_audience_compute(*, campaign_id: int, now: datetime | None = None) -> CampaignAudience | None:
    """Compute a campaign's audience figures as its preview would (every customer's events), part by part of the
    shop, saying how far it has come, and keep them; None for a campaign deleted meanwhile."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        return None
    now = now or timezone.now()
    fingerprint = campaign_fingerprint(campaign)
    row = CampaignAudience.objects.filter(campaign=campaign)
    parts = customer_id_ranges(AUDIENCE_PART_CUSTOMERS)
    try:
        if len(parts) <= 1:
            row.update(progress="reading every customer's events")
            matched = campaign_audience_matched(campaign, now)
        else:
            frames = []
            for done, part in enumerate(parts):
                row.update(progress=f"{done:,} of {len(parts):,} parts of the shop read "
                                    f"({AUDIENCE_PART_CUSTOMERS:,} customers each)")
                frames.append(campaign_audience_matched(campaign, now, customers=part))
            matched = pd.concat(frames).sort_index()
        row.update(progress="choosing the treated and the control group")
        campaign_audience_store(campaign=campaign, as_of=now, source=CampaignAudience.Source.BACKGROUND,
                                preview=preview_of(campaign, matched, now), fingerprint=fingerprint)
    except ConditionError as error:
        campaign_audience_store(campaign=campaign, as_of=now, source=CampaignAudience.Source.BACKGROUND,
                                preview=None, fingerprint=fingerprint, error=f"the condition: {error}")
    return CampaignAudience.objects.get(campaign=campaign)


# --- lifecycle -----------------------------------------------------------------------------------------------------


# The statuses a campaign may take next: an ended campaign stays ended.
NEXT_STATUSES = {
    Campaign.Status.DRAFT: (Campaign.Status.ACTIVE, Campaign.Status.ENDED),
    Campaign.Status.ACTIVE: (Campaign.Status.PAUSED, Campaign.Status.ENDED),
    Campaign.Status.PAUSED: (Campaign.Status.ACTIVE, Campaign.Status.ENDED),
    Campaign.Status.ENDED: (),
}


def campaign_create(**fields) -> Campaign:
    """A campaign and its action's settings (campaign.settings), from one set of fields: each goes where it
    belongs. Checked as the admin checks them."""
    kind = fields.get("kind")
    model = registry()[kind].settings_model if kind in registry() else None
    own = {name: fields.pop(name) for name in list(fields)
           if model is not None and name in {f.name for f in model._meta.concrete_fields}}
    with transaction.atomic():
        campaign = Campaign(**fields)
        campaign.full_clean()
        campaign.save()
        if model is not None:
            settings = model(campaign=campaign, **own)
            settings.full_clean()
            settings.save()
    return campaign


def campaign_set_status(*, campaign: Campaign, status: str) -> Campaign:
    """Activate, pause or end a campaign (NEXT_STATUSES)."""
    if status not in NEXT_STATUSES[Campaign.Status(campaign.status)]:
        raise CampaignError(f"a {campaign.status} campaign cannot become {status}")
    if status == Campaign.Status.ACTIVE:
        campaign.full_clean()
        if campaign.settings is not None:
            campaign.settings.full_clean()
    campaign.status = status
    campaign.save(update_fields=["status", "updated_at"])
    return campaign


# --- storefront ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    code: str
    discount_kind: str
    discount_value: Decimal
    scope: str
    scope_value: str
    min_order: Decimal
    expires_at: datetime


@dataclass(frozen=True)
class Placement:
    """An ad or offer to show now: what the storefront gets for one live treatment assignment."""

    campaign: int
    campaign_name: str
    kind: str
    headline: str
    reason: str
    products: list[dict]
    expires_at: datetime
    offer: Offer | None
    assignment: int


# The customer's live placements in a slot, with coupon and products, and the customer's own row (none: an
# unknown customer). On PostgreSQL one statement also counts an impression for each placement shown (the
# `shown` part), so a placement is never shown uncounted, with one round trip and one commit. The ORM made
# it four queries (key, customer, assignments, UPDATE) and spent 8 of the call's 12 ms of CPU building them
# (2-core machine, busy).
_SHOWN_KINDS = ", ".join(f"'{kind}'" for kind in shown_kinds())  # the registry's names: code, not input
_LIVE_PLACEMENTS = f"""live AS (
    SELECT a.id, a.campaign_id, c.name, c.kind, COALESCE(ad.headline, o.headline, ''), a.reason, a.products,
           a.expires_at, c.priority, k.code, o.discount_kind, o.discount_value, o.scope, o.scope_value, o.min_order,
           k.expires_at AS coupon_expires_at
    FROM {Customer._meta.db_table} cu
    JOIN {Assignment._meta.db_table} a ON a.customer_id = cu.id
    JOIN {Campaign._meta.db_table} c ON c.id = a.campaign_id
    LEFT JOIN {AdSettings._meta.db_table} ad ON ad.campaign_id = c.id
    LEFT JOIN {Coupon._meta.db_table} k ON k.assignment_id = a.id
    LEFT JOIN {PriceOfferSettings._meta.db_table} o ON o.campaign_id = c.id
    WHERE cu.external_id = %(customer)s AND cu.marketing_consent AND a."group" = %(treatment)s
      AND a.expires_at > %(now)s AND c.slot = %(slot)s AND c.status = %(active)s AND c.kind IN ({_SHOWN_KINDS})
      AND k.redeemed_at IS NULL  -- no coupon, or an unused one
)"""
_SHOWN = f"""shown AS (
    UPDATE {Assignment._meta.db_table} a SET impressions = a.impressions + 1,
                                          first_shown_at = COALESCE(a.first_shown_at, %(now)s)
    FROM live WHERE a.id = live.id
)"""
_PLACEMENT_ROWS = f"""SELECT live.* FROM {Customer._meta.db_table} cu LEFT JOIN live ON true
WHERE cu.external_id = %(customer)s ORDER BY live.priority DESC, live.id"""
PLACEMENTS_SQL = {"postgresql": f"WITH {_LIVE_PLACEMENTS}, {_SHOWN} {_PLACEMENT_ROWS}",
                  "other": f"WITH {_LIVE_PLACEMENTS} {_PLACEMENT_ROWS}"}  # SQLite: no UPDATE in WITH


@functools.cache
def _preparing_cursor_class() -> type:
    # Imported on PostgreSQL only: a project on SQLite need not install psycopg.
    from django.db.backends.postgresql.base import ServerBindingCursor  # type: ignore[attr-defined]  # psycopg 3

    class PreparingCursor(ServerBindingCursor):
        def execute(self, query, params=None, **kwargs):
            return super().execute(query, params, prepare=True, **kwargs)
    return PreparingCursor


@contextmanager
def _cursor_planned_once() -> Iterator[CursorWrapper]:
    """A cursor whose statements PostgreSQL plans once per connection, not on every call.

    Django binds parameters in the client, so each call's statement is new to PostgreSQL: planning the
    placements statement took 1.0 ms of its CPU, running it 0.13 ms. psycopg prepares it instead (Django
    leaves that off for connection poolers: behind PgBouncer in transaction mode, use 1.21 or later with
    max_prepared_statements set). Django's own cursor off PostgreSQL, and while queries are logged (DEBUG,
    CaptureQueriesContext): its log cannot show a prepared statement's SQL.
    """
    if connection.vendor != "postgresql" or connection.queries_logged:
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    if connection.connection.prepare_threshold is None:  # Django's default: psycopg then prepares nothing at all
        # Only what asks (prepare=True): Django's own cursors bind in the client and never prepare anyway.
        connection.connection.prepare_threshold = sys.maxsize
    with connection.make_cursor(_preparing_cursor_class()(connection.connection)) as cursor:  # Django's error wrapping
        yield cursor


def _typed(row: tuple, *, times: tuple[int, ...], amounts: tuple[int, ...]) -> tuple:
    """A raw row as the ORM would give it: psycopg types PostgreSQL's values; SQLite's driver gives naive UTC
    times and plain numbers."""
    if connection.vendor == "postgresql":
        return row
    values = list(row)
    for i in times:
        if values[i] is not None and timezone.is_naive(values[i]):
            values[i] = timezone.make_aware(values[i], UTC)
    for i in amounts:
        if values[i] is not None:
            values[i] = Decimal(str(values[i]))
    return tuple(values)


def placements_show(*, customer_external_id: str, slot: str, now: datetime | None = None) -> list[Placement]:
    """The ads and offers a customer should see now in a slot, each shown counted as an impression.

    Only customers with marketing consent get any. Raises Customer.DoesNotExist for an unknown customer.
    """
    now = now or timezone.now()
    params: dict[str, str | datetime] = {"customer": customer_external_id, "slot": slot, "now": now,
                                         "treatment": Assignment.Group.TREATMENT, "active": Campaign.Status.ACTIVE}
    with _cursor_planned_once() as cursor:
        cursor.execute(PLACEMENTS_SQL.get(connection.vendor, PLACEMENTS_SQL["other"]), params)
        rows = cursor.fetchall()
    if not rows:
        raise Customer.DoesNotExist(f"no customer {customer_external_id!r}")
    # The customer's row alone: nothing to show.
    rows = [_typed(row, times=(7, 15), amounts=(11, 14)) for row in rows if row[0] is not None]
    if rows and connection.vendor != "postgresql":
        Assignment.objects.filter(pk__in=[row[0] for row in rows]).update(
            impressions=F("impressions") + 1, first_shown_at=Coalesce("first_shown_at", Value(now)))
    return [
        Placement(campaign=campaign, campaign_name=name, kind=kind, headline=headline, reason=reason,
                  products=orjson.loads(products) if isinstance(products, str | bytes) else products,
                  expires_at=expires_at,
                  offer=None if code is None else Offer(code, discount_kind, discount_value, scope, scope_value,
                                                        min_order, coupon_expires_at),
                  assignment=assignment)
        for (assignment, campaign, name, kind, headline, reason, products, expires_at, _, code, discount_kind,
             discount_value, scope, scope_value, min_order, coupon_expires_at) in rows
    ]


class RedemptionError(Exception):
    """A coupon cannot be redeemed; `reason` is a stable code for clients, the message says why."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class OrderItem:
    product: str
    category: str
    price: Decimal
    quantity: int = 1


@dataclass(frozen=True)
class Redemption:
    code: str
    order_id: str
    discount_amount: Decimal
    redeemed_at: datetime


# What the checks need, read without a lock: the statement below decides under row locks.
_COUPON_SQL = f"""
SELECT k.id, k.redeemed_at, k.expires_at, cu.external_id, c.id, c.status, o.discount_kind, o.discount_value,
       o.scope, o.scope_value, o.min_order, o.budget, o.discount_spent
FROM {Coupon._meta.db_table} k
JOIN {Customer._meta.db_table} cu ON cu.id = k.customer_id
JOIN {Assignment._meta.db_table} a ON a.id = k.assignment_id
JOIN {Campaign._meta.db_table} c ON c.id = a.campaign_id
JOIN {PriceOfferSettings._meta.db_table} o ON o.campaign_id = c.id
WHERE k.code = %(code)s
"""
# One statement, so one round trip and one commit: lock the coupon if still unused, then spend the offer's
# budget if the coupon was locked, its campaign has not ended, the discount fits and the order has no other
# price offer that this one may not join (both campaigns must allow stacking), then mark the coupon used if the
# budget was spent. Each step reads the one before it, so all happen or none. Two redemptions of one
# code: the second waits for the coupon's lock and then finds it used. Of two coupons against the last of a
# budget, the second waits for the offer's row and then finds the budget short, and its coupon stays unused.
# Locks are taken coupon first, then offer, so two redemptions cannot deadlock; the campaign's row is read,
# not locked, so an evaluation (which holds it) never holds up a checkout. Before: BEGIN, SELECT .. FOR UPDATE,
# two UPDATEs, COMMIT, each a round trip. The order's other offers are read in the statement's snapshot: so
# that it sees what a redemption for the same order committed a moment before, the statement runs after
# _ORDER_LOCK_SQL, in one transaction with it (coupon_redeem).
_REDEEM_SQL = f"""
WITH locked AS (
    SELECT id FROM {Coupon._meta.db_table} WHERE id = %(coupon)s AND redeemed_at IS NULL FOR UPDATE
), spent AS (
    UPDATE {PriceOfferSettings._meta.db_table} SET discount_spent = discount_spent + %(discount)s
    WHERE campaign_id = %(campaign)s AND EXISTS (SELECT 1 FROM locked)
      AND EXISTS (SELECT 1 FROM {Campaign._meta.db_table} WHERE id = %(campaign)s AND status <> %(ended)s)
      AND (budget IS NULL OR discount_spent <= budget - %(discount)s)
      AND NOT EXISTS (
          SELECT 1 FROM {Coupon._meta.db_table} k
          JOIN {Assignment._meta.db_table} a ON a.id = k.assignment_id
          JOIN {PriceOfferSettings._meta.db_table} other ON other.campaign_id = a.campaign_id
          WHERE k.order_id = %(order_id)s AND k.redeemed_at IS NOT NULL
            AND NOT (other.may_stack AND {PriceOfferSettings._meta.db_table}.may_stack))
    RETURNING campaign_id
), used AS (
    UPDATE {Coupon._meta.db_table} SET redeemed_at = %(now)s, order_id = %(order_id)s, discount_amount = %(discount)s
    WHERE id IN (SELECT id FROM locked) AND EXISTS (SELECT 1 FROM spent)
    RETURNING id
)
SELECT (SELECT count(*) FROM locked), (SELECT count(*) FROM used)
"""
# Redemptions for one order take turns (an order whose id hashes alike waits a moment too), until the commit.
# Two coupons redeemed on one order at once: the second waits here, then its statement sees the first's.
_ORDER_LOCK_SQL = "SELECT pg_advisory_xact_lock(1179603524, hashtext(%(order_id)s))"  # 1179603524: "FORD"


@dataclass(frozen=True)
class Quote:
    """What a coupon would take off an order now, with what redeeming it needs."""

    code: str
    coupon: int
    campaign: int
    discount: Decimal


def coupon_quote(*, code: str, customer_external_id: str, items: list[OrderItem], now: datetime | None = None
                 ) -> Quote:
    """The discount a code gives this customer's order, or the RedemptionError a redemption would meet now.

    Reads only: a shop's basket asks before checkout; coupon_redeem decides under row locks.
    """
    now = now or timezone.now()
    code = code.strip().upper()
    with _cursor_planned_once() as cursor:
        cursor.execute(_COUPON_SQL, {"code": code})
        found = cursor.fetchone()
    if found is None:
        raise RedemptionError("unknown_code", f"no coupon has the code {code!r}")
    (coupon, redeemed_at, expires_at, owner, campaign_id, status, discount_kind, discount_value, scope, scope_value,
     min_order, budget, spent) = _typed(found, times=(1, 2), amounts=(7, 10, 11, 12))
    if owner != customer_external_id:
        raise RedemptionError("not_yours", "this coupon belongs to another customer")
    if redeemed_at is not None:
        raise RedemptionError("already_redeemed", f"this coupon was used at {redeemed_at:%Y-%m-%d %H:%M}")
    if expires_at <= now:
        raise RedemptionError("expired", f"this coupon expired at {expires_at:%Y-%m-%d %H:%M}")
    if status == Campaign.Status.ENDED:
        raise RedemptionError("campaign_ended", "the campaign of this coupon has ended")
    # Only the fields the discount arithmetic reads; never saved.
    offer = PriceOfferSettings(campaign_id=campaign_id, discount_kind=discount_kind, discount_value=discount_value,
                               scope=scope, scope_value=scope_value, min_order=min_order)
    discount = order_discount(offer, items)
    if budget is not None and spent + discount > budget:
        raise RedemptionError("budget_spent", "the campaign's discount budget is spent")
    return Quote(code=code, coupon=coupon, campaign=campaign_id, discount=discount)


def coupon_redeem(*, code: str, customer_external_id: str, order_id: str, items: list[OrderItem],
                  now: datetime | None = None, amount: Decimal | None = None) -> Redemption:
    """Redeem a code against an order, all or nothing: the owner, unexpired, unused, within budget.

    `amount` is the discount a shop framework actually gave (its own offer engine may cap it), spent and
    recorded instead of the quote's; never more than the quote.
    """
    now = now or timezone.now()
    quote = coupon_quote(code=code, customer_external_id=customer_external_id, items=items, now=now)
    if amount is not None:
        amount = Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)
        if not 0 < amount <= quote.discount:
            raise RedemptionError("wrong_amount", f"a discount of {amount} is not this coupon's: it gives at most "
                                                  f"{quote.discount} on this order")
        quote = replace(quote, discount=amount)
    if connection.vendor == "postgresql":
        with transaction.atomic(), _cursor_planned_once() as cursor:
            cursor.execute(_ORDER_LOCK_SQL, {"order_id": order_id})
            cursor.execute(_REDEEM_SQL, {"coupon": quote.coupon, "campaign": quote.campaign,
                                         "discount": quote.discount, "now": now, "order_id": order_id,
                                         "ended": Campaign.Status.ENDED})
            locked, used = cursor.fetchone()
    else:
        locked, used = _redeem_in_transaction(quote.coupon, quote.campaign, quote.discount, now, order_id)
    if not locked:  # used (or gone) since the read: another redemption won
        raise RedemptionError("already_redeemed", "this coupon was used a moment ago")
    if not used:  # the offer's row, under its lock, refused: its campaign ended meanwhile, the order has another
        # offer, or the budget is spent
        if Campaign.objects.filter(pk=quote.campaign, status=Campaign.Status.ENDED).exists():
            raise RedemptionError("campaign_ended", "the campaign of this coupon has ended")
        if (other := offer_on_order(order_id=order_id, campaign=quote.campaign)) is not None:
            raise RedemptionError("offer_on_order", f"order {order_id} has the price offer {other} already: an "
                                                    "order takes one Foresight price offer, unless the campaigns of "
                                                    "both allow stacking")
        raise RedemptionError("budget_spent", "the campaign's discount budget is spent")
    placements_changed([customer_external_id])  # the used coupon's offer is shown no more
    return Redemption(code=quote.code, order_id=order_id, discount_amount=quote.discount, redeemed_at=now)


def _redeem_in_transaction(coupon: int, campaign: int, discount: Decimal, now: datetime, order_id: str
                           ) -> tuple[int, int]:
    """_REDEEM_SQL's steps where WITH cannot update (SQLite, whose transactions here take the write lock first)."""
    with transaction.atomic():
        if not Coupon.objects.filter(pk=coupon, redeemed_at__isnull=True).exists():
            return 0, 0
        if offer_on_order(order_id=order_id, campaign=campaign) is not None:
            return 1, 0
        spend = PriceOfferSettings.objects.filter(campaign=campaign).exclude(
            campaign__status=Campaign.Status.ENDED).filter(
            Q(budget__isnull=True) | Q(discount_spent__lte=F("budget") - discount))
        if not spend.update(discount_spent=F("discount_spent") + discount):
            return 1, 0
        Coupon.objects.filter(pk=coupon).update(redeemed_at=now, order_id=order_id, discount_amount=discount)
        return 1, 1


def offer_on_order(*, order_id: str, campaign: int) -> str | None:
    """In words, a price offer redeemed on the order that a coupon of `campaign` may not join; None if none.

    A coupon joins an order's other offers only when its campaign and theirs all allow stacking."""
    others = Coupon.objects.filter(order_id=order_id, redeemed_at__isnull=False)
    if PriceOfferSettings.objects.filter(campaign=campaign, may_stack=True).exists():
        others = others.filter(assignment__campaign__priceoffersettings__may_stack=False)
    other = others.select_related("assignment__campaign__priceoffersettings").order_by("redeemed_at", "pk").first()
    if other is None:
        return None
    campaign_of_other = other.assignment.campaign
    return f'"{campaign_of_other.name}" ({campaign_of_other.priceoffersettings.discount_in_words})'


# Amounts (discounts, what a campaign spent) are stored with 12 digits, 2 of them cents.
MAX_ORDER_TOTAL = Decimal("9999999999.99")


def order_discount(offer: PriceOfferSettings, items: list[OrderItem]) -> Decimal:
    """The discount an order gets: on the items in scope, once the whole order reaches the minimum."""
    if not items:
        raise RedemptionError("empty_order", "the order has no items")
    total = sum((i.price * i.quantity for i in items), Decimal(0))
    if total > MAX_ORDER_TOTAL:
        raise RedemptionError("order_too_large", f"the order total {total} is more than the {MAX_ORDER_TOTAL} "
                                                 "that amounts are kept to")
    if total < offer.min_order:
        raise RedemptionError("below_minimum", f"the order total {total} is below the minimum {offer.min_order}")
    in_scope = {
        offer.Scope.ALL: lambda i: True,
        offer.Scope.CATEGORY: lambda i: i.category == offer.scope_value,
        offer.Scope.PRODUCT: lambda i: i.product == offer.scope_value,
    }[offer.Scope(offer.scope)]
    eligible = sum((i.price * i.quantity for i in items if in_scope(i)), Decimal(0))
    if eligible <= 0:
        raise RedemptionError("out_of_scope", f"no item of the order is in the offer's {offer.scope} "
                                              f"{offer.scope_value!r}")
    return offer.discount_on(eligible)
