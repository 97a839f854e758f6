"""Point-in-time features and labels: an events frame and a cutoff in, one row per customer out.

Pure pandas and NumPy, no database. Features see only events strictly before the cutoff;
labels see only `[cutoff, cutoff + horizon)`, so a model trained on them never learns from
the future. Everything is computed for all customers at once: each event gets its
customer's row position, and per-customer sums are `np.bincount` over those positions.

The events frame has the columns `customer_id`, `type`, `occurred_at` (UTC), `product_id`,
`category`, `price`, `quantity`, `order_id`, `session_id`, `rating` and `promised_at`, and may have
`seller`, `freight` and `payment` (from an order line's properties);
the optional customers frame has `customer_id`, `created_at` and `attributes` (dicts).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from .event_types import EVENT_TYPES
from .words import duration_in_words

WINDOWS = (1, 7, 30, 90, 180, 365)  # days, for the counts per event type; each model uses those its horizon needs
SPEND_WINDOWS = (30, 90, 180, 365)  # days, for orders and spend
RECENCY_TYPES = ("product_view", "add_to_cart", "checkout_start", "purchase", "order_shipped", "order_delivered",
                 "delivery_delayed", "payment_failed", "return_requested", "refund", "review", "support_contact")
DEVICES = ("mobile", "desktop", "tablet")  # a fixed vocabulary, so codes mean the same in training and scoring
PAYMENTS = ("credit_card", "debit_card", "boleto", "voucher", "bank_transfer", "paypal", "cash_on_delivery")
BAD_RATING = 2  # reviews rated at most this are bad
OPEN_ORDER_DAYS = 90  # older orders without a delivery event are gaps in the history, not open orders
RECENT_DELIVERY_DAYS = 30  # a delivered order stays part of what a customer may still react to this long
NORM_DAYS = 90  # the shop's usual figures come from the orders of this many days before the cutoff

_NOUNS = {
    "page_view": ("page view", "page views"), "product_view": ("product view", "product views"),
    "search": ("search", "searches"), "add_to_wishlist": ("wishlist add", "wishlist adds"),
    "add_to_cart": ("cart add", "cart adds"), "remove_from_cart": ("cart removal", "cart removals"),
    "checkout_start": ("checkout started", "checkouts started"), "purchase": ("purchase", "purchases"),
    "order_approved": ("order approved", "orders approved"),
    "order_shipped": ("order shipped", "orders shipped"), "order_delivered": ("delivery", "deliveries"),
    "delivery_delayed": ("delivery delay", "delivery delays"), "payment_failed": ("failed payment", "failed payments"),
    "return_requested": ("return request", "return requests"), "refund": ("refund", "refunds"),
    "review": ("review", "reviews"), "support_contact": ("support contact", "support contacts"),
}


def _in_last(days: int) -> str:
    return "in the last day" if days == 1 else f"in the last {days} days"


def _count(singular: str, plural: str, rest: str = "") -> str:
    """A template that agrees in number with its value: "1 cart add", "3 cart adds"."""
    return f"{{value:.0f}} {{value:plural:{singular}|{plural}}}{rest}"


# Feature name -> description template, formatted by describe(): the column order of build_features, and the
# words of a score's reasons ("6 product views in the last 7 days").
FEATURES: dict[str, str] = {
    **{f"{t}_{d}d": _count(*_NOUNS[t], f" {_in_last(d)}") for t in EVENT_TYPES for d in WINDOWS},
    "days_since_event": "{value:days} since the last visit or order event",
    **{f"days_since_{t}": f"{{value:days}} since the last {_NOUNS[t][0]}" for t in RECENCY_TYPES},
    "days_since_first_purchase": "{value:.0f} days since the first purchase",
    "purchase_days": _count("day", "days", " with a purchase"),
    "sessions_7d": _count("session", "sessions", " in the last 7 days"),
    "sessions_30d": _count("session", "sessions", " in the last 30 days"),
    "products_viewed_30d": _count("different product", "different products", " viewed in the last 30 days"),
    "categories_viewed_30d": _count("different category", "different categories", " viewed in the last 30 days"),
    "cart_adds_unbought_30d": _count("cart add", "cart adds", " in the last 30 days not followed by a purchase"),
    **{f"orders_{d}d": _count("order", "orders", f" {_in_last(d)}") for d in SPEND_WINDOWS},
    "orders": _count("order", "orders", " in all"),
    **{f"spend_{d}d": f"{{value:.2f}} spent {_in_last(d)}" for d in SPEND_WINDOWS},
    "spend": "{value:.2f} spent in all",
    "average_order_value": "{value:.2f} average order value",
    "mean_rating": "{value:.1f} stars on average in reviews",
    "bad_reviews_90d": _count("review", "reviews", f" of {BAD_RATING} stars or less in the last 90 days"),
    "bad_reviews": _count("review", "reviews", f" of {BAD_RATING} stars or less in all"),
    "orders_delayed_90d": _count("order", "orders", " with a delivery delay in the last 90 days"),
    "orders_delayed": _count("order", "orders", " with a delivery delay in all"),
    "orders_open_past_due": _count("order", "orders", " past the promised delivery and not delivered"),
    "max_days_past_due": "{value:days} past the promised delivery, for the latest open order",
    # What is known about the orders in flight: bought and not delivered, or delivered lately.
    "orders_in_flight": _count("order", "orders", " bought and not delivered yet"),
    "in_flight_days_since_purchase": "{value:days} since the oldest order not delivered yet was bought",
    "in_flight_days_to_promise": "{value:abs:days} {value:sign:before|past} the promised delivery of the most "
                                 "urgent open order",
    "in_flight_unapproved": _count("order", "orders", " bought and not approved yet"),
    "in_flight_approval_delay": "{value:abs:days} {value:sign:slower|faster} to approve than this shop's usual",
    "in_flight_unshipped": _count("order", "orders", " bought and not shipped yet"),
    "in_flight_ship_delay": "{value:abs:days} {value:sign:slower|faster} to ship than this shop's usual",
    "in_flight_items": _count("item", "items", " in orders not delivered yet"),
    "in_flight_value": "{value:.2f} worth of orders not delivered yet",
    "in_flight_sellers": _count("seller", "sellers", " shipping the orders not delivered yet"),
    "in_flight_freight_share": "freight {value:.0%} of the price of the orders not delivered yet",
    "in_flight_payment_code": "paid by {value:payment}",
    "days_late": "an order {value:abs:days} {value:sign:later|earlier} than promised",
    "usual_ship_days": "{value:days} this shop usually takes from purchase to shipping",
    "usual_approval_days": "{value:days} this shop usually takes to approve an order",
    "tenure_days": "{value:.0f} days a customer",
    "country_code": "country (code {value:.0f})",
    "device_code": "device (code {value:.0f})",
}


class _Words(string.Formatter):
    """str.format with four more specs: `plural:ONE|MANY` picks the noun agreeing with the value, `sign:POS|NEG`
    the word for its sign, `abs:SPEC` formats its size, and `days` says a number of days as every page says a
    duration (behavior.core.words: "3.3 days", "5 hours")."""

    def format_field(self, value, format_spec):
        kind, _, rest = format_spec.partition(":")
        if kind == "plural":
            one, many = rest.split("|")
            return one if round(value) == 1 else many
        if kind == "sign":
            positive, negative = rest.split("|")
            return positive if value >= 0 else negative
        if kind == "abs":
            return self.format_field(abs(value), rest)
        if format_spec == "days":
            return duration_in_words(value)
        if format_spec == "payment":
            return PAYMENTS[int(value)].replace("_", " ") if 0 <= value < len(PAYMENTS) else "another way"
        return super().format_field(value, format_spec)


_WORDS = _Words()


def describe(name: str, value: float) -> str:
    """A feature's value in words: "1 cart add in the last 7 days", "12.0 days since the last purchase"."""
    return _WORDS.format(FEATURES[name], value=value)


def meaning(name: str) -> str:
    """What a feature measures, from the same template as its values' words: "cart adds in the last 7 days",
    "days before or past the promised delivery of the most urgent open order"."""
    template = FEATURES[name]
    template = re.sub(r"\{value:plural:[^|}]*\|([^}]*)\}", r"\1", template)  # the plural form
    template = re.sub(r"\{value:sign:([^|}]*)\|([^}]*)\}", r"\1 or \2", template)  # both directions
    template = re.sub(r"paid by \{value:payment\}", "payment method", template)
    template = re.sub(r"\{value(:abs)?:days\}", "days", template)
    template = re.sub(r"\{value:\.0%\}", "share", template)
    template = re.sub(r"^\{value[^}]*\} spent", "amount spent", template)
    template = re.sub(r"\{value[^}]*\}", "", template)  # the number itself
    return re.sub(r"\s+", " ", template).strip()


def _windowed(too_long) -> set[str]:
    """The count features whose window (in days) `too_long` says is too long."""
    names = {f"{t}_{d}d" for t in EVENT_TYPES for d in WINDOWS if too_long(d)}
    return names | {f"{kind}_{d}d" for kind in ("orders", "spend") for d in SPEND_WINDOWS if too_long(d)}


def longest_window(horizon: pd.Timedelta) -> int:
    """The longest count window a model of this horizon needs: four horizons, at least 90 days, at most a year."""
    wanted = max(90, 4 * horizon / pd.Timedelta(days=1))
    return next((w for w in WINDOWS if w >= wanted), WINDOWS[-1])


def model_features(horizon: pd.Timedelta) -> list[str]:
    """The features a model of this horizon is trained on: every window up to longest_window, in FEATURES order.

    A 7-day model keeps the windows up to 90 days (longer ones add training time, not signal); a quarterly one
    looks back a year.
    """
    longest = longest_window(horizon)
    too_long = _windowed(lambda days: days > longest)
    return [name for name in FEATURES if name not in too_long]


def build_features(
    events: pd.DataFrame, cutoff: datetime, customers: pd.DataFrame | None = None, *, norms: dict | None = None
) -> pd.DataFrame:
    """One float32 row per customer (of `customers`, or with an event before `cutoff`), from events before `cutoff`.

    `norms` are the shop's usual figures (shop_norms) that some features compare a customer against; by default
    they come from the events given, which is right when those are the whole shop's, not one chunk's.
    """
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
    out["days_since_first_purchase"] = _max_by(pos[purchase], age[purchase], n)
    out["purchase_days"] = _distinct(pos, np.floor(age).astype(np.int64), purchase, n)  # BG/NBD's purchase occasions
    orders = codes("order_id")
    price = np.nan_to_num(events["price"].to_numpy(dtype=np.float64, na_value=np.nan)[before])
    quantity = events["quantity"].to_numpy(dtype=np.float64, na_value=np.nan)[before]
    amount = price * np.where(np.isnan(quantity), 1.0, quantity)
    for days in SPEND_WINDOWS:
        out[f"orders_{days}d"] = _distinct(pos, orders, purchase & (age < days) & (orders >= 0), n)
        out[f"spend_{days}d"] = count(purchase & (age < days), amount)
    out["orders"] = _distinct(pos, orders, purchase & (orders >= 0), n)
    out["spend"] = count(purchase, amount)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["average_order_value"] = np.where(out["orders"] > 0, out["spend"] / out["orders"], np.nan)

    recent = age < 90
    rating = events["rating"].to_numpy(dtype=np.float64, na_value=np.nan)[before]
    rated = (types == type_index["review"]) & ~np.isnan(rating)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["mean_rating"] = count(rated, rating) / count(rated)
    out["bad_reviews_90d"] = count(rated & recent & (rating <= BAD_RATING))
    out["bad_reviews"] = count(rated & (rating <= BAD_RATING))
    delayed = (types == type_index["delivery_delayed"]) & (orders >= 0)
    out["orders_delayed_90d"] = _distinct(pos, orders, delayed & recent, n)
    out["orders_delayed"] = _distinct(pos, orders, delayed, n)
    promise_passed = _days_between(at, _datetime64(events["promised_at"])[before])  # NaN where there is no promise
    out["orders_open_past_due"], out["max_days_past_due"] = _open_past_due(
        pos, orders, types, age, promise_passed, n
    )
    line = {name: (events[name].to_numpy()[before] if name in events else None) for name in ("seller", "freight",
                                                                                             "payment")}
    out.update(_in_flight(pos, orders, types, age, promise_passed, amount, n, norms, line))

    out["tenure_days"] = _tenure(ids, out["days_since_event"], pos, age, customers, at)
    out["country_code"], out["device_code"] = _attributes(ids, customers)
    # A long window (past the 90 days every model has) reaching back before the shop's first event counts only
    # part of it: unknown, not zero, so that a model does not learn from half-empty years (on CDNOW's quarterly
    # target, XGBoost 0.744 instead of 0.725). The shorter windows count what there is, as conditions expect.
    history = _days_between(at, _datetime64([_history_start(events, norms)])[0])
    for name in _windowed(lambda days: days > max(history, 90)):
        out[name] = np.full(n, np.nan)
    frame = pd.DataFrame({name: out[name] for name in FEATURES}, index=pd.Index(ids, name="customer_id"))
    return frame.astype(np.float32)


def _min_age(pos: np.ndarray, age: np.ndarray, n: int) -> np.ndarray:
    smallest = np.full(n, np.inf)
    np.minimum.at(smallest, pos, age)
    return np.where(np.isinf(smallest), np.nan, smallest)


def _distinct(pos: np.ndarray, codes: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """How many different codes each customer has among the masked events."""
    width = max(int(codes.max()) + 1, 1) if len(codes) else 1
    pairs = pd.unique(pos[mask].astype(np.int64) * width + codes[mask])
    return np.bincount(pairs // width, minlength=n)


def _max_by(pos: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Each customer's largest value (NaN values ignored); NaN for a customer without one."""
    largest = np.full(n, -np.inf)
    np.fmax.at(largest, pos, values)
    return np.where(np.isinf(largest), np.nan, largest)


def _open_past_due(pos, orders, types, age, promise_passed, n) -> tuple[np.ndarray, np.ndarray]:
    """Recent orders promised before the cutoff with no delivery event yet, and the days the worst is late."""
    index = {t: i for i, t in enumerate(EVENT_TYPES)}
    delivered = np.zeros(int(orders.max()) + 2 if len(orders) else 1, bool)
    delivered[orders[(types == index["order_delivered"]) & (orders >= 0)]] = True
    open_ = ((types == index["purchase"]) & (orders >= 0) & (age < OPEN_ORDER_DAYS) & (promise_passed > 0)
             & ~delivered[orders])
    count = _distinct(pos, orders, open_, n)
    worst = np.zeros(n)
    np.maximum.at(worst, pos[open_], promise_passed[open_])
    return count, worst


def _in_flight(pos, orders, types, age, promise_passed, amount, n, norms: dict | None, line: dict
               ) -> dict[str, np.ndarray]:
    """What is known at the cutoff about each customer's orders in flight, from one table of their orders.

    An order is in flight when it was bought in the last OPEN_ORDER_DAYS and has no delivery event yet; one
    delivered in the last RECENT_DELIVERY_DAYS still counts for how late it came (what a review will say).
    Ages are days before the cutoff; a step's usual time is the shop's median over the orders that took it
    lately (from the norms when given). `line` holds each event's seller, freight and payment, or None.
    """
    index = {t: i for i, t in enumerate(EVENT_TYPES)}
    m = int(orders.max()) + 1 if len(orders) else 0
    has_order = orders >= 0

    def per_order(event_type: str, values: np.ndarray, how=np.fmax, start=-np.inf) -> np.ndarray:
        mask = has_order & (types == index[event_type])
        table = np.full(m, start)
        how.at(table, orders[mask], values[mask])
        return np.where(np.isinf(table), np.nan, table)

    bought = per_order("purchase", age)  # the first purchase event of the order
    approved = per_order("order_approved", age)
    shipped = per_order("order_shipped", age)
    delivered = per_order("order_delivered", age)
    passed = per_order("purchase", promise_passed)  # days since the promised delivery; NaN without one
    purchase = has_order & (types == index["purchase"])
    owner = np.full(m, -1)
    owner[orders[purchase]] = pos[purchase]
    items = np.bincount(orders[purchase], minlength=m)
    value = np.bincount(orders[purchase], amount[purchase], minlength=m)

    ship_days, approval_days = bought - shipped, bought - approved
    usual = _usual(norms, "usual_ship_days", ship_days, shipped)
    usual_approval = _usual(norms, "usual_approval_days", approval_days, approved)
    flying = (owner >= 0) & (bought < OPEN_ORDER_DAYS) & np.isnan(delivered)
    landed = (owner >= 0) & (delivered < RECENT_DELIVERY_DAYS)
    # Late by: delivery time minus promise for a delivered order, now minus promise for an open one.
    late = np.where(np.isnan(delivered), passed, passed - delivered)
    waited = np.where(np.isnan(shipped), bought, ship_days)  # to shipping, or so far when not shipped yet
    waited_approval = np.where(np.isnan(approved), bought, approval_days)
    flying_line = np.zeros(len(orders), bool)  # the purchase lines of orders in flight
    flying_line[purchase] = flying[orders[purchase]]
    freight, freighted = np.zeros(m), np.zeros(m)  # freight, and the value of the lines whose freight is known
    if line["freight"] is not None:
        cost = pd.to_numeric(pd.Series(line["freight"]), errors="coerce").to_numpy(np.float64)
        known = purchase & ~np.isnan(cost)
        freight = np.bincount(orders[known], cost[known], minlength=m).astype(np.float64)
        freighted = np.bincount(orders[known], amount[known], minlength=m).astype(np.float64)
    payment = np.full(m, np.nan)
    if line["payment"] is not None:
        kinds = pd.Index(PAYMENTS).get_indexer(pd.Series(line["payment"]).astype("str"))
        paid = purchase & (kinds >= 0)
        payment[orders[paid]] = kinds[paid]

    def customers(mask: np.ndarray, values: np.ndarray, how=_max_by) -> np.ndarray:
        return how(owner[mask], values[mask], n)

    def total(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
        return np.bincount(owner[mask], values[mask].astype(np.float64), minlength=n)

    return {
        "orders_in_flight": total(flying, np.ones(m)),
        "in_flight_days_since_purchase": customers(flying, bought),
        "in_flight_days_to_promise": -customers(flying, passed),
        "in_flight_unapproved": total(flying & np.isnan(approved), np.ones(m)),
        "in_flight_approval_delay": customers(flying, waited_approval - usual_approval),
        "in_flight_unshipped": total(flying & np.isnan(shipped), np.ones(m)),
        "in_flight_ship_delay": customers(flying, waited - usual),
        "in_flight_items": total(flying, items),
        "in_flight_value": total(flying, value),
        "in_flight_sellers": _sellers(pos, line["seller"], flying_line, n),
        "in_flight_freight_share": _share(total(flying, freight), total(flying, freighted)),
        "in_flight_payment_code": _newest(owner, flying & ~np.isnan(payment), bought, payment, n),
        "days_late": customers(flying | landed, late),
        "usual_ship_days": np.full(n, usual),
        "usual_approval_days": np.full(n, usual_approval),
    }


def _usual(norms: dict | None, name: str, step_days: np.ndarray, done_age: np.ndarray) -> float:
    """A step's usual days: from the norms when given, else the median over orders that took it lately."""
    if norms is not None:
        value = norms.get(name)
        return np.nan if value is None else float(value)
    lately = (done_age < NORM_DAYS) & ~np.isnan(step_days)
    return float(np.median(step_days[lately])) if lately.any() else np.nan


def _sellers(pos: np.ndarray, sellers: np.ndarray | None, mask: np.ndarray, n: int) -> np.ndarray:
    if sellers is None:
        return np.zeros(n)
    codes = pd.factorize(pd.Series(sellers))[0]
    return _distinct(pos, codes, mask & (codes >= 0), n)


def _newest(owner: np.ndarray, mask: np.ndarray, bought: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Each customer's value of the masked order bought last: for codes, which neither add up nor compare."""
    rows = np.flatnonzero(mask)
    rows = rows[np.argsort(-bought[rows], kind="stable")]  # oldest first: the newest is written last and stays
    out = np.full(n, np.nan)
    out[owner[rows]] = values[rows]
    return out


def _share(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(whole > 0, part / whole, np.nan)



def _history_start(events: pd.DataFrame, norms: dict | None):
    """When the shop's history starts: given in the norms, or the first of these events."""
    if norms is not None and norms.get("history_start"):
        return pd.Timestamp(norms["history_start"])
    return events["occurred_at"].min() if len(events) else pd.NaT


def shop_norms(events: pd.DataFrame, cutoff: datetime) -> dict:
    """The shop's usual figures at the cutoff, from its orders shipped in the NORM_DAYS before it, and when its
    history starts (which says which count windows it can fill: `history_start`, the first of these events).

    Chunks of a scoring run read their own customers only: they get the run's norms, computed once
    from the whole shop (behavior.selectors.shop_norms_at), so that a score does not hang on its chunk.
    """
    usual = build_features(events, cutoff)["usual_ship_days"] if len(events) else pd.Series(dtype="float32")
    value = float(usual.iloc[0]) if len(usual) else float("nan")
    start = _history_start(events, None)
    return {"usual_ship_days": None if np.isnan(value) else value,
            "history_start": None if pd.isna(start) else pd.Timestamp(start).isoformat()}


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
    properties = events["properties"] if "properties" in events else pd.Series(None, index=events.index)
    line = {name: properties.map(lambda p, key=name: p.get(key) if isinstance(p, dict) else None).to_numpy()
            for name in ("seller", "freight", "payment")}
    return pd.DataFrame({
        "customer_id": known.get_indexer(events["customer"]), "type": events["type"],
        "occurred_at": events["occurred_at"], "product_id": pd.array(np.where(product >= 0, product, None), "Int64"),
        "category": events["category"], "price": events["price"], "quantity": events["quantity"],
        "order_id": events["order_id"], "session_id": events["session_id"], "rating": events["rating"],
        "promised_at": events["promised_at"], **line,
    }).reset_index(drop=True)


POPULATIONS = {
    "all": "every customer with an event",
    "buyers": "customers with a purchase",
    "active": "customers active in the last {days} days",
    "in_flight": "customers with an order in flight (not delivered, or delivered in the last {days} days)",
}


@dataclass(frozen=True)
class TargetDefinition:
    """What a model predicts, and for whom.

    Positive: any event of `event_types` (or a review rated at most `max_rating`) within the horizon after a
    cutoff; with `churn`, the absence of any purchase within it. The population is whom the target scores and
    is judged on; `population_days` (for active and in_flight) defaults to what suits the horizon.
    """

    name: str
    horizon: pd.Timedelta
    event_types: tuple[str, ...] = ()
    max_rating: int | None = None
    churn: bool = False
    population: str = "all"
    population_days: int | None = None
    description: str = ""

    def as_dict(self) -> dict:
        """Plain JSON, as a model version keeps the definition it was trained for."""
        return {"name": self.name, "horizon_days": round(self.horizon / pd.Timedelta(days=1)),
                "event_types": list(self.event_types), "max_rating": self.max_rating, "churn": self.churn,
                "population": self.population, "population_days": self.population_days,
                "description": self.description}

    @classmethod
    def from_dict(cls, data: dict) -> TargetDefinition:
        return cls(name=data["name"], horizon=pd.Timedelta(days=data["horizon_days"]),
                   event_types=tuple(data["event_types"]), max_rating=data["max_rating"], churn=data["churn"],
                   population=data["population"], population_days=data["population_days"],
                   description=data.get("description", ""))

    @property
    def window(self) -> int:
        """The population's window in days: as set, or four horizons for active (at least 90: a quarterly shop's
        lapsed customers are whom a win-back campaign wants scored) and one horizon for orders in flight."""
        if self.population_days is not None:
            return self.population_days
        days = self.horizon / pd.Timedelta(days=1)
        return int(max(90, 4 * days)) if self.population == "active" else int(max(1, round(days)))

    @property
    def counts_label(self) -> str:
        """What counts as positive, in words: "purchase within 7 days"."""
        within = f"within {round(self.horizon / pd.Timedelta(days=1))} days"
        if self.churn:
            return f"no purchase {within}"
        what = [t.replace("_", " ") for t in self.event_types]
        if self.max_rating is not None:
            what.append(f"a review rated {self.max_rating} or less")
        return f"{', '.join(what)} {within}"

    @property
    def population_label(self) -> str:
        return POPULATIONS[self.population].format(days=self.window)

    @property
    def about_purchases(self) -> bool:
        """Whether it asks whether customers buy (or, for churn, stop buying)."""
        return self.churn or self.event_types == ("purchase",)

    def in_population(self, X: pd.DataFrame) -> np.ndarray:
        """Which rows of a build_features frame belong to the population at its cutoff."""
        def col(name: str) -> np.ndarray:
            return X[name].to_numpy(dtype=np.float64)

        if self.population == "all":
            return ~np.isnan(col("days_since_event"))
        if self.population == "buyers":
            return ~np.isnan(col("days_since_purchase"))
        if self.population == "active":
            return col("days_since_event") < self.window  # NaN compares False
        if self.population == "in_flight":
            return (col("orders_in_flight") > 0) | (col("days_since_order_delivered") < self.window)
        raise ValueError(f"unknown population {self.population!r}; known: {', '.join(POPULATIONS)}")


def default_targets() -> dict[str, TargetDefinition]:
    """The two targets every shop starts with (a migration stores them; the shop edits them from there)."""
    return {t.name: t for t in (
        TargetDefinition("purchase_intent", pd.Timedelta(days=7), ("purchase",), population="active",
                         description="buys within the horizon"),
        TargetDefinition("support_risk", pd.Timedelta(days=14), ("support_contact", "return_requested", "refund"),
                         max_rating=BAD_RATING, population="in_flight",
                         description="contacts support, returns, asks a refund or reviews badly within the horizon"),
    )}


def build_labels(
    events: pd.DataFrame, cutoff: datetime, target: TargetDefinition, *,
    customer_ids: pd.Index | np.ndarray | None = None,
) -> pd.Series:
    """True for customers with a target event in [cutoff, cutoff + horizon) (for churn: with no purchase there).

    One row per customer of `customer_ids`, or of the events frame when not given.
    """
    cutoff = _utc(cutoff)
    when = events["occurred_at"]
    inside = when.ge(cutoff) & when.lt(cutoff + target.horizon)
    hit = events["type"].isin(("purchase",) if target.churn else target.event_types)
    if target.max_rating is not None and not target.churn:
        hit |= events["type"].eq("review") & events["rating"].le(target.max_rating).fillna(False)
    positive = np.unique(events.loc[inside & hit & events["customer_id"].notna(), "customer_id"].to_numpy(np.int64))
    if customer_ids is None:
        customer_ids = np.unique(events["customer_id"].dropna().to_numpy(np.int64))
    ids = pd.Index(customer_ids, dtype=np.int64, name="customer_id")
    happened = ids.isin(positive)
    return pd.Series(~happened if target.churn else happened, index=ids, name=target.name)


def training_frame(
    events: pd.DataFrame, cutoffs: Iterable[datetime], target: TargetDefinition,
    customers: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Features and labels stacked over cutoffs, for the target's population at each cutoff.

    Rows are indexed by (cutoff, customer_id); `groups` holds each row's cutoff, for time splits.
    """
    xs, ys = [], []
    for cutoff in cutoffs:
        cutoff = _utc(cutoff)
        x = build_features(events, cutoff, customers)
        x = x[target.in_population(x)]
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
