"""Point-in-time features and labels: an events frame and a cutoff in, one row per customer out.

Pure pandas and NumPy, no database. Features see only events strictly before the cutoff;
labels see only `[cutoff, cutoff + horizon)`, so a model trained on them never learns from
the future. Everything is computed for all customers at once: each event gets its
customer's row position, and per-customer sums are `np.bincount` over those positions.

The events frame has the columns `customer_id`, `type`, `occurred_at` (UTC), `product_id`,
`category`, `price`, `quantity`, `order_id`, `session_id`, `rating` and `promised_at`;
the optional customers frame has `customer_id`, `created_at` and `attributes` (dicts).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from .event_types import EVENT_TYPES

WINDOWS = (1, 7, 30, 90)  # days, for the counts per event type
RECENCY_TYPES = ("product_view", "add_to_cart", "checkout_start", "purchase", "delivery_delayed", "payment_failed",
                 "return_requested", "refund", "review", "support_contact")
DEVICES = ("mobile", "desktop", "tablet")  # a fixed vocabulary, so codes mean the same in training and scoring
BAD_RATING = 2  # reviews rated at most this are bad
OPEN_ORDER_DAYS = 90  # older orders without a delivery event are gaps in the history, not open orders

_NOUNS = {
    "page_view": "page views", "product_view": "product views", "search": "searches",
    "add_to_wishlist": "wishlist adds", "add_to_cart": "cart adds", "remove_from_cart": "cart removals",
    "checkout_start": "checkouts started", "purchase": "purchases", "order_shipped": "orders shipped",
    "order_delivered": "orders delivered", "delivery_delayed": "delivery delays", "payment_failed": "failed payments",
    "return_requested": "return requests", "refund": "refunds", "review": "reviews",
    "support_contact": "support contacts",
}


def _noun(event_type: str) -> str:
    return _NOUNS.get(event_type, event_type.replace("_", " ") + " events")


def _in_last(days: int) -> str:
    return "in the last day" if days == 1 else f"in the last {days} days"


# Feature name -> description template, formatted with the feature's value: the column order of
# build_features, and the words of a score's reasons ("6 product views in the last 7 days").
FEATURES: dict[str, str] = {
    **{f"{t}_{d}d": f"{{value:.0f}} {_noun(t)} {_in_last(d)}" for t in EVENT_TYPES for d in WINDOWS},
    "days_since_event": "{value:.1f} days since the last visit or order event",
    **{f"days_since_{t}": f"{{value:.1f}} days since the last of the {_noun(t)}" for t in RECENCY_TYPES},
    "sessions_7d": "{value:.0f} sessions in the last 7 days",
    "sessions_30d": "{value:.0f} sessions in the last 30 days",
    "products_viewed_30d": "{value:.0f} different products viewed in the last 30 days",
    "categories_viewed_30d": "{value:.0f} different categories viewed in the last 30 days",
    "cart_adds_unbought_30d": "{value:.0f} cart adds in the last 30 days not followed by a purchase",
    "orders_90d": "{value:.0f} orders in the last 90 days",
    "orders": "{value:.0f} orders in all",
    "spend_90d": "{value:.2f} spent in the last 90 days",
    "spend": "{value:.2f} spent in all",
    "average_order_value": "{value:.2f} average order value",
    "mean_rating": "{value:.1f} stars on average in reviews",
    "bad_reviews_90d": f"{{value:.0f}} reviews of {BAD_RATING} stars or less in the last 90 days",
    "orders_delayed_90d": "{value:.0f} orders with a delivery delay in the last 90 days",
    "orders_open_past_due": "{value:.0f} orders past their promised delivery and not delivered",
    "max_days_past_due": "{value:.1f} days past the promised delivery, for the latest open order",
    "tenure_days": "{value:.0f} days a customer",
    "country_code": "country (code {value:.0f})",
    "device_code": "device (code {value:.0f})",
}


def build_features(
    events: pd.DataFrame, cutoff: datetime, customers: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One float32 row per customer (of `customers`, or with an event before `cutoff`), from events before `cutoff`."""
    cutoff = _utc(cutoff)
    at = _datetime64([cutoff])[0]
    before = events["occurred_at"].lt(cutoff).to_numpy() & events["customer_id"].notna().to_numpy()
    event_ids = events["customer_id"].to_numpy(dtype=np.int64, na_value=-1)[before]
    known = np.empty(0, np.int64) if customers is None else customers["customer_id"].to_numpy(dtype=np.int64)
    ids = np.unique(np.concatenate([event_ids, known]))
    n = len(ids)
    pos = np.searchsorted(ids, event_ids)
    age = _days_between(at, _datetime64(events["occurred_at"])[before])
    types = pd.Index(EVENT_TYPES).get_indexer(events["type"])[before]  # -1: a type this module does not know
    type_index = {t: i for i, t in enumerate(EVENT_TYPES)}
    out: dict[str, np.ndarray] = {}

    def codes(name: str) -> np.ndarray:
        # Factorizing the column as stored is fast (Arrow strings); turning it into Python objects is not.
        return pd.factorize(events[name])[0][before]

    def count(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(pos[mask], None if weights is None else weights[mask], minlength=n)

    # Counts per event type and window: one bincount over (customer, type) pairs per window.
    kinds = len(EVENT_TYPES)
    known_type = types >= 0
    for days in WINDOWS:
        m = known_type & (age < days)
        table = np.bincount(pos[m] * kinds + types[m], minlength=n * kinds).reshape(n, kinds)
        for i, t in enumerate(EVENT_TYPES):
            out[f"{t}_{days}d"] = table[:, i]

    # Recency: the smallest age per customer and type; NaN where there is none (XGBoost handles missing).
    out["days_since_event"] = _min_age(pos, age, n)
    for t in RECENCY_TYPES:
        m = types == type_index[t]
        out[f"days_since_{t}"] = _min_age(pos[m], age[m], n)

    sessions = codes("session_id")
    for days in (7, 30):
        out[f"sessions_{days}d"] = _distinct(pos, sessions, (age < days) & (sessions >= 0), n)
    viewed = (types == type_index["product_view"]) & (age < 30)
    for name, field in (("products_viewed_30d", "product_id"), ("categories_viewed_30d", "category")):
        values = codes(field)
        out[name] = _distinct(pos, values, viewed & (values >= 0), n)

    # A cart add is unbought when no purchase came after it (ties count as unbought).
    last_purchase = out["days_since_purchase"]
    cart = (types == type_index["add_to_cart"]) & (age < 30)
    out["cart_adds_unbought_30d"] = count(cart & ~(age > last_purchase[pos]))  # NaN compares False: never bought

    # Orders: distinct order ids of purchase events; spend is price * quantity, a missing quantity being one unit.
    purchase = types == type_index["purchase"]
    orders = codes("order_id")
    price = np.nan_to_num(events["price"].to_numpy(dtype=np.float64, na_value=np.nan)[before])
    quantity = events["quantity"].to_numpy(dtype=np.float64, na_value=np.nan)[before]
    amount = price * np.where(np.isnan(quantity), 1.0, quantity)
    recent = age < 90
    out["orders_90d"] = _distinct(pos, orders, purchase & recent & (orders >= 0), n)
    out["orders"] = _distinct(pos, orders, purchase & (orders >= 0), n)
    out["spend_90d"] = count(purchase & recent, amount)
    out["spend"] = count(purchase, amount)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["average_order_value"] = np.where(out["orders"] > 0, out["spend"] / out["orders"], np.nan)

    rating = events["rating"].to_numpy(dtype=np.float64, na_value=np.nan)[before]
    rated = (types == type_index["review"]) & ~np.isnan(rating)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["mean_rating"] = count(rated, rating) / count(rated)
    out["bad_reviews_90d"] = count(rated & recent & (rating <= BAD_RATING))
    delayed = (types == type_index["delivery_delayed"]) & recent & (orders >= 0)
    out["orders_delayed_90d"] = _distinct(pos, orders, delayed, n)
    out["orders_open_past_due"], out["max_days_past_due"] = _open_past_due(
        pos, orders, types, age, _datetime64(events["promised_at"])[before], at, n
    )

    out["tenure_days"] = _tenure(ids, out["days_since_event"], pos, age, customers, at)
    out["country_code"], out["device_code"] = _attributes(ids, customers)
    frame = pd.DataFrame({name: out[name] for name in FEATURES}, index=pd.Index(ids, name="customer_id"))
    return frame.astype(np.float32)


def _min_age(pos: np.ndarray, age: np.ndarray, n: int) -> np.ndarray:
    smallest = np.full(n, np.inf)
    np.minimum.at(smallest, pos, age)
    return np.where(np.isinf(smallest), np.nan, smallest)


def _distinct(pos: np.ndarray, codes: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """How many different codes each customer has among the masked events."""
    width = int(codes.max()) + 1 if len(codes) else 1
    pairs = pd.unique(pos[mask].astype(np.int64) * width + codes[mask])
    return np.bincount(pairs // width, minlength=n)


def _open_past_due(pos, orders, types, age, promised, at: np.datetime64, n) -> tuple[np.ndarray, np.ndarray]:
    """Recent orders promised before the cutoff with no delivery event yet, and the days the worst is late."""
    index = {t: i for i, t in enumerate(EVENT_TYPES)}
    delivered = np.zeros(int(orders.max()) + 2 if len(orders) else 1, bool)
    delivered[orders[(types == index["order_delivered"]) & (orders >= 0)]] = True
    late = _days_between(at, promised)  # NaN where there is no promise
    open_ = ((types == index["purchase"]) & (orders >= 0) & (age < OPEN_ORDER_DAYS) & (late > 0)
             & ~delivered[orders])
    count = _distinct(pos, orders, open_, n)
    worst = np.zeros(n)
    np.maximum.at(worst, pos[open_], late[open_])
    return count, worst


def _tenure(ids, days_since_event, pos, age, customers, at: np.datetime64) -> np.ndarray:
    """Days since the earlier of sign-up and first event: imported customers were created after their history."""
    first = np.full(len(ids), -np.inf)
    np.maximum.at(first, pos, age)
    if customers is not None and "created_at" in customers:
        created = pd.Series(
            _days_between(at, _datetime64(customers["created_at"])),
            index=customers["customer_id"].to_numpy(dtype=np.int64),
        ).reindex(ids).to_numpy()
        first = np.fmax(first, created)
    return np.where(first >= 0, first, np.nan)  # not yet a customer at the cutoff


def _attributes(ids, customers) -> tuple[np.ndarray, np.ndarray]:
    nothing = np.full(len(ids), np.nan)
    if customers is None or "attributes" not in customers:
        return nothing, nothing
    attributes = pd.Series(customers["attributes"].to_numpy(), index=customers["customer_id"].to_numpy(np.int64))
    attributes = attributes[~attributes.index.duplicated()].reindex(ids)
    country = attributes.str.get("country").astype("str").str.upper()
    # An ISO country code as a base-26 number: stable across shops and runs without a fitted vocabulary.
    letters = country.where(country.str.fullmatch("[A-Z]{2}"))
    first, second = (letters.str[i].map(ord, na_action="ignore") - ord("A") for i in (0, 1))
    country_code = (first * 26 + second).to_numpy(np.float64)
    device = pd.Index(DEVICES).get_indexer(attributes.str.get("device").astype("str").str.lower())
    return country_code, np.where(device >= 0, device, np.nan)


def events_for_features(events: pd.DataFrame, customers: Iterable[str] | None = None) -> pd.DataFrame:
    """Events under the shop's own ids (as the importers and the simulator give them) in build_features' columns.

    A customer's integer id is its position in `customers` (default: order of first appearance; -1 when
    missing); products are numbered in order of first appearance.
    """
    known = pd.Index(pd.unique(events["customer"].dropna()) if customers is None else customers)
    product = pd.factorize(events["product"])[0]
    return pd.DataFrame({
        "customer_id": known.get_indexer(events["customer"]), "type": events["type"],
        "occurred_at": events["occurred_at"], "product_id": pd.array(np.where(product >= 0, product, None), "Int64"),
        "category": events["category"], "price": events["price"], "quantity": events["quantity"],
        "order_id": events["order_id"], "session_id": events["session_id"], "rating": events["rating"],
        "promised_at": events["promised_at"],
    }).reset_index(drop=True)


@dataclass(frozen=True)
class Target:
    """What a model predicts: any event of these types (or a review rated at most max_rating) within horizon."""

    name: str
    horizon: pd.Timedelta
    event_types: tuple[str, ...]
    max_rating: int | None = None
    description: str = ""


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("purchase_intent", pd.Timedelta(days=7), ("purchase",), description="buys within 7 days"),
        Target("support_risk", pd.Timedelta(days=14), ("support_contact", "return_requested", "refund"),
               max_rating=BAD_RATING, description="contacts support, returns or reviews badly within 14 days"),
    )
}


def build_labels(
    events: pd.DataFrame, cutoff: datetime, target: Target | str, *, customer_ids: pd.Index | np.ndarray | None = None
) -> pd.Series:
    """True for customers with a target event in [cutoff, cutoff + horizon).

    One row per customer of `customer_ids`, or of the events frame when not given.
    """
    target = TARGETS[target] if isinstance(target, str) else target
    cutoff = _utc(cutoff)
    when = events["occurred_at"]
    inside = when.ge(cutoff) & when.lt(cutoff + target.horizon)
    hit = events["type"].isin(target.event_types)
    if target.max_rating is not None:
        hit |= events["type"].eq("review") & events["rating"].le(target.max_rating).fillna(False)
    positive = np.unique(events.loc[inside & hit & events["customer_id"].notna(), "customer_id"].to_numpy(np.int64))
    if customer_ids is None:
        customer_ids = np.unique(events["customer_id"].dropna().to_numpy(np.int64))
    ids = pd.Index(customer_ids, dtype=np.int64, name="customer_id")
    return pd.Series(ids.isin(positive), index=ids, name=target.name)


def training_frame(
    events: pd.DataFrame, cutoffs: Iterable[datetime], target: Target | str, customers: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Features and labels stacked over cutoffs, for customers with an event before each cutoff.

    Rows are indexed by (cutoff, customer_id); `groups` holds each row's cutoff, for time splits.
    """
    xs, ys = [], []
    for cutoff in cutoffs:
        cutoff = _utc(cutoff)
        x = build_features(events, cutoff, customers)
        x = x[x["days_since_event"].notna()]  # active before the cutoff: nothing to learn from the silent
        y = build_labels(events, cutoff, target, customer_ids=x.index)
        index = pd.MultiIndex.from_product([[cutoff], x.index], names=["cutoff", "customer_id"])
        xs.append(x.set_axis(index))
        ys.append(y.set_axis(index))
    X = pd.concat(xs)
    y = pd.concat(ys)
    groups = pd.Series(X.index.get_level_values("cutoff"), index=X.index, name="cutoff")
    return X, y, groups


def _utc(moment: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is None:
        raise ValueError("cutoff must be timezone-aware")
    return stamp.tz_convert("UTC")


def _days_between(later, earlier) -> np.ndarray:
    return (later - earlier) / np.timedelta64(1, "D")


def _datetime64(times) -> np.ndarray:
    """UTC times as naive numpy datetime64 (NaT stays NaT), for fast arithmetic."""
    times = pd.Series(times)
    if isinstance(times.dtype, pd.DatetimeTZDtype):
        return times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[us]")
    return pd.to_datetime(times, utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
