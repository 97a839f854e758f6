"""A simulated shop: customers with hidden traits, a catalogue, and everything they do.

Pure NumPy and pandas, no database: `simulate_block` turns a seed and a block of customers into
the canonical events frame (`behavior.core.events.FIELDS`) plus the hidden truth behind it (traits,
daily intent, each order's real delivery time), so tests can check that the hidden traits
drive what the events show. The rates below, and where they come from, are in docs/simulator.md.

Everything is drawn per block from generators seeded by (seed, block), so the same seed, block
size and customer count give the same events and the same event ids, whatever `end` is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from behavior.core.events import FIELDS

DAY = 86_400.0  # seconds
HOUR = 3_600.0

# Catalogue: the twelve largest Olist categories, their share of items sold and median item price.
CATEGORIES = (
    ("health_beauty", 0.096, 72.4), ("bed_bath_table", 0.093, 78.5), ("sports_leisure", 0.079, 73.9),
    ("furniture_decor", 0.070, 68.9), ("computers_accessories", 0.066, 76.3), ("housewares", 0.057, 51.5),
    ("auto", 0.049, 91.6), ("watches_gifts", 0.047, 139.5), ("cool_stuff", 0.043, 130.0),
    ("telephony", 0.043, 29.9), ("toys", 0.038, 79.9), ("garden_tools", 0.034, 59.9),
)
CATEGORY_SHARES = np.array([c[1] for c in CATEGORIES]) / sum(c[1] for c in CATEGORIES)
PRICE_LOG_SD = 0.9  # Olist: sd of log(price) is 0.7-1.3 within a category, 0.97 overall
POPULARITY_ZIPF = 1.0  # product popularity ~ 1 / rank: heavy-tailed
# Share of orders returned, by category (assumption: apparel-like goods are returned most).
RETURN_RATE = {"bed_bath_table": 0.10, "sports_leisure": 0.10, "watches_gifts": 0.09, "toys": 0.06,
               "telephony": 0.08, "computers_accessories": 0.07, "health_beauty": 0.04}
RETURN_RATE_DEFAULT = 0.06

# Customers (assumptions for a shop in Germany shipping within the EU).
COUNTRIES = {"DE": 0.45, "FR": 0.10, "AT": 0.08, "NL": 0.08, "IT": 0.07, "PL": 0.06, "ES": 0.06, "SE": 0.05,
             "BE": 0.05}
HOME_COUNTRY = "DE"
DEVICES = {"mobile": 0.58, "desktop": 0.37, "tablet": 0.05}
DEVICE_CONVERSION = {"mobile": -0.2, "desktop": 0.3, "tablet": 0.0}  # logit shift: desktop converts more
AGE_BANDS = {"18-24": 0.14, "25-34": 0.27, "35-44": 0.23, "45-54": 0.18, "55-64": 0.12, "65+": 0.06}
MARKETING_CONSENT = 0.45
SIGNUP_MEAN_DAYS = 400  # signup ages ~ exponential: a growing shop, ~20% joined in the last 90 days

# Hidden purchase intent. Sessions per day = BASE_SESSIONS * exp(activity + drift + mission boost).
BASE_SESSIONS = 0.0047
ACTIVITY_SD = 1.1  # lasting differences between customers: a few are regulars, most drop by rarely
DRIFT_PHI, DRIFT_SD = 0.95, 0.6  # AR(1) per day: interest wanders over weeks
MISSION_START = 1 / 60  # "shopping missions": short bursts of visits that end in a purchase more often
MISSION_MEAN_DAYS = 4.0
MISSION_SESSIONS = 5.0  # visit rate multiplier during a mission
MISSION_CONVERSION = 1.4  # logit boost once a mission is two days old: people research, then buy
CONVERSION_LOGIT = -2.43  # with the shifts below, ~15.5% of sessions convert (Online Shoppers)
PROPENSITY_CONVERSION = 0.5  # logit per sd of the customer's lasting propensity
DRIFT_CONVERSION = 0.5

# Session funnel (Taobao: cart/view 5.9%, buy/cart 39%, fav/view 3.1%).
CART_WITHOUT_BUYING = 0.18  # non-converting sessions that still put something in the cart
EXTRA_CART_ADDS = 0.3  # mean extra items added in a cart session
REMOVE_FROM_CART = 0.15
CHECKOUT_WITHOUT_BUYING = 0.3  # of abandoned carts, how many reached checkout
PRODUCT_VIEWS = 4.9  # mean per session, doubled when the session has a cart
EXTRA_PAGE_VIEWS = 0.2  # besides the landing page
SEARCHES = 0.3
WISHLIST_PER_VIEW = 0.031
SESSION_CATEGORY = 0.7  # views that stay in the session's category
FAVOURITE_CATEGORY = 0.6  # sessions in the customer's favourite category
PAYMENT_FAILED = 0.08  # of purchase attempts (assumption; card declines are commonly 5-15%)
PAYMENT_GIVE_UP = 0.25  # of failed payments: the rest retry and succeed
QUANTITY = (0.93, 0.055, 0.015)  # 1, 2, 3 units (Olist: same product repeated in an order)
HOUR_WEIGHTS = np.array([1.0, .6, .4, .3, .3, .4, .8, 1.5, 2.2, 2.6, 2.8, 3.0, 3.1, 3.0, 2.9, 2.9, 3.0, 3.3, 3.8,
                         4.4, 4.6, 4.1, 3.0, 1.8])  # evening peak (assumption)

# Orders. Olist: 7.2% of delivered orders arrive after the estimated date, a median 7.9 days late
# on a 23-day promise; we promise 2-6 days and scale lateness down with it.
SHIP_MEDIAN_HOURS = 20
PROMISE_DAYS_HOME, PROMISE_DAYS_ABROAD = 2, 4  # plus 0-2 days
LATE_LOGIT = -3.25  # with the trouble trait and abroad shift, ~7% of orders are late
LATE_TROUBLE = 0.9  # logit per sd of the hidden late-delivery exposure
LATE_ABROAD = 0.4
LATE_MEDIAN_DAYS = 2.0

# Reviews: Olist score mix of on-time and late orders (share of 1, 2, 3, 4, 5 stars).
STARS_ON_TIME = (0.066, 0.028, 0.082, 0.201, 0.623)
STARS_LATE = (0.552, 0.101, 0.108, 0.119, 0.119)
REVIEW_RATE = 0.5  # Olist surveys every order (99% reviewed); a shop asking by e-mail gets fewer
REVIEW_RATE_LATE = 0.65
PICKY_SD = 0.5  # a picky reviewer's odds of a 1-2 star review, lognormal multiplier with mean 1

RETURN_AFTER_BAD_REVIEW = 2.5
RETURN_AFTER_LATE = 1.3
REFUND = 0.85  # returns that end in a refund
SUPPORT_AFTER = {"late_delivery": 0.30, "return": 0.15, "payment_failed": 0.25, "bad_review": 0.15}
SUPPORT_QUESTIONS_PER_DAY = 0.0004  # contacts not about an order
TROUBLE_SD = 0.5  # sd of log multipliers on returns and support contacts

SUPPORT_REASONS = ("question", *SUPPORT_AFTER)
PAYMENT_REASONS = ("card_declined", "insufficient_funds", "authentication_failed")

# Event types in the order they happen within a session.
SESSION_TYPES = ("page_view", "search", "product_view", "add_to_wishlist", "add_to_cart", "remove_from_cart",
                 "checkout_start", "payment_failed", "purchase")
ORDER_TYPES = ("order_approved", "order_shipped", "delivery_delayed", "order_delivered", "review", "return_requested",
               "refund", "support_contact")
TYPES = SESSION_TYPES + ORDER_TYPES
T = {name: code for code, name in enumerate(TYPES)}
PROMISE_TYPES = [T[t] for t in ("purchase", "order_approved", "order_shipped", "delivery_delayed", "order_delivered")]
QUANTITY_TYPES = [T["purchase"], T["refund"]]


@dataclass
class SimulatedBlock:
    customers: pd.DataFrame  # external_id, attributes (dict), marketing_consent
    events: pd.DataFrame  # canonical columns (behavior.core.events.FIELDS), ordered by time
    traits: pd.DataFrame  # hidden, by external_id: what drives the events
    daily_intent: np.ndarray  # hidden, customers x days: expected purchases that day
    orders: pd.DataFrame  # hidden: each paid order's real shipping and delivery times, late or not


def simulate_catalogue(*, seed: int, products: int) -> pd.DataFrame:
    """Products sorted by category, with a heavy-tailed popularity (sums to 1 within the catalogue)."""
    rng = np.random.default_rng([seed, 0])
    names, _, medians = zip(*CATEGORIES, strict=True)
    category = np.sort(rng.choice(len(names), products, p=CATEGORY_SHARES))
    price = np.exp(np.log(np.array(medians)[category]) + rng.normal(0, PRICE_LOG_SD, products))
    rank = rng.permutation(products)
    popularity = 1.0 / (rank + 1.0) ** POPULARITY_ZIPF
    popularity /= popularity.sum()
    number = pd.Series(np.arange(products)).astype("str").str.zfill(5)
    return pd.DataFrame({
        "external_id": f"sim{seed}-p" + number,
        "name": pd.Series(np.array(names)[category]).str.replace("_", " ").str.capitalize() + " " + number,
        "category": pd.Series(np.array(names)[category], dtype="str"),
        "brand": "brand " + pd.Series(rng.zipf(1.6, products) % 300).astype("str"),
        "price": np.maximum(np.floor(price), 4) + 0.9,  # shop prices end in .90
        "popularity": popularity,
        "category_code": category,
        # Cumulative share within the category, for drawing products of a given category.
        "within_category": pd.Series(popularity).groupby(category).cumsum().to_numpy()
        / np.bincount(category, popularity)[category],
    })


def simulate_block(*, seed: int, block: int, first_customer: int, customers: int, days: int, end: datetime,
                   catalogue: pd.DataFrame) -> SimulatedBlock:
    """Customers first_customer .. first_customer + customers - 1 and all their events in (end - days, end]."""
    rng = np.random.default_rng([seed, 1, block])
    ids = np.random.default_rng([seed, 2, block])  # a separate stream, so ids never shift the behaviour
    people = _customers(rng, seed, first_customer, customers, days, end)
    rate, conversion = _daily_intent(rng, people, days)
    sessions = _sessions(rng, people, rate, conversion, days)
    events, attempts = _session_events(rng, sessions, people, catalogue)
    orders = _orders(rng, attempts, people, catalogue)
    events = _concat(events, _order_events(orders), _questions(rng, people, days))
    frame = _frame(ids, events, len(sessions["start"]), orders, people, catalogue, days, end, seed, block)
    intent = rate * conversion
    return SimulatedBlock(
        customers=people["customers"],
        events=frame,
        traits=people["traits"].assign(intent=intent.mean(axis=1)),
        daily_intent=intent,
        orders=_hidden_orders(orders, people, pd.Timestamp(end) - pd.Timedelta(days=days)),
    )


def _customers(rng, seed, first, n, days, end) -> dict:
    country = rng.choice(list(COUNTRIES), n, p=_p(COUNTRIES))
    device = rng.choice(list(DEVICES), n, p=_p(DEVICES))
    signup_age = np.ceil(rng.exponential(SIGNUP_MEAN_DAYS, n))  # whole days before `end`
    propensity = rng.normal(0, 1, n)
    trouble = rng.normal(0, 1, n)  # one hidden "trouble" factor shared by lateness, pickiness, returns, support

    def trouble_multiplier():
        return np.exp(TROUBLE_SD * (0.6 * trouble + 0.8 * rng.normal(0, 1, n)) - TROUBLE_SD**2 / 2)

    late_risk = 1 / (1 + np.exp(-(LATE_LOGIT + LATE_TROUBLE * (0.7 * trouble + 0.71 * rng.normal(0, 1, n))
                                  + LATE_ABROAD * (country != HOME_COUNTRY))))
    picky = np.exp(PICKY_SD * (0.3 * trouble + 0.95 * rng.normal(0, 1, n)) - PICKY_SD**2 / 2)
    external_id = f"sim{seed}-c" + pd.Series(np.arange(first, first + n)).astype("str").str.zfill(7)
    attributes = pd.DataFrame({
        "country": country,
        "signup_date": (pd.Timestamp(end) - pd.to_timedelta(signup_age, unit="D")).strftime("%Y-%m-%d"),
        "device": device,
        "age_band": rng.choice(list(AGE_BANDS), n, p=_p(AGE_BANDS)),
    })
    consent_logit = np.log(MARKETING_CONSENT / (1 - MARKETING_CONSENT)) + 0.3 * propensity  # engaged people opt in
    traits = pd.DataFrame({
        "activity": rng.normal(0, ACTIVITY_SD, n),
        "propensity": propensity,
        "trouble": trouble,
        "late_risk": late_risk,
        "picky": picky,
        "returns": trouble_multiplier(),
        "support": trouble_multiplier(),
        "favourite_category": rng.choice(len(CATEGORIES), n, p=CATEGORY_SHARES),
        "first_day": np.maximum(days - signup_age, 0).astype(int),  # no visits before signing up
    }, index=pd.Index(external_id, name="external_id"))
    return {
        "customers": pd.DataFrame({
            "external_id": external_id,
            "attributes": attributes.to_dict("records"),
            "marketing_consent": rng.random(n) < 1 / (1 + np.exp(-consent_logit)),
        }),
        "traits": traits,
        "external_id": external_id,
        "country": country,
        "device_conversion": pd.Series(device).map(DEVICE_CONVERSION).to_numpy(),
    }


def _daily_intent(rng, people, days) -> tuple[np.ndarray, np.ndarray]:
    """Sessions per day and conversion per session, customers x days."""
    traits = people["traits"]
    n = len(traits)
    drift = np.empty((n, days), np.float32)
    drift[:, 0] = rng.normal(0, DRIFT_SD, n)
    for d in range(1, days):  # a loop over days, vectorized over customers
        drift[:, d] = DRIFT_PHI * drift[:, d - 1] + rng.normal(0, DRIFT_SD * np.sqrt(1 - DRIFT_PHI**2), n)

    # Shopping missions: the latest start wins; the mission's age raises conversion.
    start_rate = MISSION_START * np.exp(0.5 * traits["propensity"].to_numpy())[:, None]
    starts = rng.random((n, days)) < start_rate
    day = np.arange(days)
    latest = np.maximum.accumulate(np.where(starts, day, -1), axis=1)
    length = rng.geometric(1 / MISSION_MEAN_DAYS, (n, days))
    age = day - latest
    on_mission = (latest >= 0) & (age < np.take_along_axis(length, np.maximum(latest, 0), axis=1))

    alive = day >= traits["first_day"].to_numpy()[:, None]
    rate = BASE_SESSIONS * np.exp(traits["activity"].to_numpy()[:, None] + drift) * alive
    rate *= np.where(on_mission, MISSION_SESSIONS, 1.0)
    logit = (CONVERSION_LOGIT + PROPENSITY_CONVERSION * traits["propensity"].to_numpy()[:, None]
             + people["device_conversion"][:, None] + DRIFT_CONVERSION * drift
             + on_mission * MISSION_CONVERSION * np.minimum(age + 1, 3) / 3)
    return rate.astype(np.float32), (1 / (1 + np.exp(-logit))).astype(np.float32)


def _sessions(rng, people, rate, conversion, days) -> dict:
    count = rng.poisson(rate)
    cell = np.repeat(np.arange(count.size), count.ravel())
    customer, day = np.divmod(cell, days)
    n = len(cell)
    hour = rng.choice(24, n, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    favourite = people["traits"]["favourite_category"].to_numpy()[customer]
    return {
        "customer": customer,
        "start": day * DAY + hour * HOUR + rng.random(n) * HOUR,  # seconds after the period's start
        "category": np.where(rng.random(n) < FAVOURITE_CATEGORY, favourite,
                             rng.choice(len(CATEGORIES), n, p=CATEGORY_SHARES)),
        "converts": rng.random(n) < conversion.ravel()[cell],
    }


def _session_events(rng, s, people, catalogue) -> tuple[dict, dict]:
    """Every session's browsing and cart events, in order, and the purchase attempts."""
    n = len(s["customer"])
    attempt = s["converts"]
    payment_failed = attempt & (rng.random(n) < PAYMENT_FAILED)
    paid = attempt & ~(payment_failed & (rng.random(n) < PAYMENT_GIVE_UP))
    cart = attempt | (rng.random(n) < CART_WITHOUT_BUYING)
    counts = {
        "page_view": 1 + rng.poisson(EXTRA_PAGE_VIEWS, n),
        "search": rng.poisson(SEARCHES, n),
        "product_view": rng.poisson(PRODUCT_VIEWS * (1 + cart)) + cart,  # a cart needs a viewed product
        "add_to_cart": cart * (1 + rng.poisson(EXTRA_CART_ADDS, n)),
    }
    counts["add_to_wishlist"] = rng.binomial(counts["product_view"], WISHLIST_PER_VIEW)
    counts["remove_from_cart"] = rng.binomial(counts["add_to_cart"] - attempt, REMOVE_FROM_CART)  # keep what is bought
    counts["checkout_start"] = (attempt | (cart & (rng.random(n) < CHECKOUT_WITHOUT_BUYING))).astype(int)
    counts["payment_failed"] = payment_failed.astype(int)
    counts["purchase"] = paid.astype(int)

    session = {t: np.repeat(np.arange(n), counts[t]) for t in SESSION_TYPES}
    product = {t: np.full(len(session[t]), -1) for t in SESSION_TYPES}
    views = session["product_view"]
    theme = catalogue_sample(rng, catalogue, s["category"][views])
    product["product_view"] = np.where(rng.random(len(views)) < SESSION_CATEGORY, theme,
                                       catalogue_sample(rng, catalogue, None, len(views)))

    def pick(source: str, sess: np.ndarray, offset: np.ndarray | int = 0) -> np.ndarray:
        first = np.cumsum(counts[source]) - counts[source]
        return product[source][first[sess] + offset]

    def anywhere_in(source: str, sess: np.ndarray) -> np.ndarray:
        return (rng.random(len(sess)) * counts[source][sess]).astype(int)

    product["add_to_wishlist"] = pick("product_view", session["add_to_wishlist"],
                                      anywhere_in("product_view", session["add_to_wishlist"]))
    product["add_to_cart"] = pick("product_view", session["add_to_cart"],
                                  anywhere_in("product_view", session["add_to_cart"]))
    # Removed items are the ones after the first add, which an attempt buys.
    removed = session["remove_from_cart"]
    product["remove_from_cart"] = pick("add_to_cart", removed, attempt[removed] + _ranks(counts["remove_from_cart"]))
    attempts = np.flatnonzero(attempt)
    order_of_session = np.cumsum(attempt) - 1
    order_product = pick("add_to_cart", attempts)
    for t in ("payment_failed", "purchase"):
        product[t] = order_product[order_of_session[session[t]]]

    # Within a session: stage order, 2 s plus ~40 s (exponential) between events.
    sess = np.concatenate([session[t] for t in SESSION_TYPES])
    stage = np.concatenate([np.full(len(session[t]), T[t]) for t in SESSION_TYPES])
    prod = np.concatenate([product[t] for t in SESSION_TYPES])
    order = np.lexsort((stage, sess))
    sess, stage, prod = sess[order], stage[order], prod[order]
    gap = 2 + rng.exponential(40, len(sess))
    first = np.r_[True, sess[1:] != sess[:-1]]
    gap[first] = 0
    elapsed = np.cumsum(gap)
    elapsed -= np.maximum.accumulate(np.where(first, elapsed, 0))
    time = s["start"][sess] + elapsed

    is_order_event = (stage == T["payment_failed"]) | (stage == T["purchase"])
    events = {
        "customer": s["customer"][sess], "type": stage, "product": prod, "time": time,
        "session": sess, "order": np.where(is_order_event, order_of_session[sess], -1),
        "category": np.where(stage == T["search"], s["category"][sess], -1),
        "reason": np.where(stage == T["payment_failed"], rng.integers(0, len(PAYMENT_REASONS), len(sess)), -1),
    }
    # An order's time is its purchase, or the failed payment if the customer gave up.
    order_time = np.zeros(len(attempts))
    for t in ("payment_failed", "purchase"):
        at = stage == T[t]
        order_time[order_of_session[sess[at]]] = time[at]
    return events, {
        "customer": s["customer"][attempts], "product": order_product, "time": order_time,
        "paid": paid[attempts], "session": attempts,
    }


def catalogue_sample(rng, catalogue: pd.DataFrame, category: np.ndarray | None, n: int = 0) -> np.ndarray:
    """Products drawn by popularity, from the whole catalogue or within the given categories."""
    weights = catalogue["popularity"].to_numpy()
    if category is None:
        return np.minimum(np.searchsorted(np.cumsum(weights), rng.random(n) * weights.sum()), len(weights) - 1)
    # Within-category cumulative shares shifted by the category code: one sorted key for all categories.
    code = catalogue["category_code"].to_numpy()
    key = code + catalogue["within_category"].to_numpy()
    present = np.unique(code)
    category = present[np.minimum(np.searchsorted(present, category), len(present) - 1)]  # tiny catalogues
    return np.minimum(np.searchsorted(key, category + rng.random(len(category)), side="right"), len(key) - 1)


def _orders(rng, attempts, people, catalogue) -> dict:
    """Each attempted order's fate: shipping, promise, delivery, review, return, refund."""
    n = len(attempts["time"])
    customer = attempts["customer"]
    traits = people["traits"]
    paid = attempts["paid"]
    t0 = attempts["time"]
    abroad = people["country"][customer] != HOME_COUNTRY
    shipped = t0 + np.exp(np.log(SHIP_MEDIAN_HOURS * HOUR) + rng.normal(0, 0.6, n))
    promise_days = np.where(abroad, PROMISE_DAYS_ABROAD, PROMISE_DAYS_HOME) + rng.integers(0, 3, n)
    promised = (np.floor(t0 / DAY) + promise_days) * DAY + 18 * HOUR  # "delivered by 18:00 on day X"
    late = (rng.random(n) < traits["late_risk"].to_numpy()[customer]) | (shipped >= promised - HOUR)
    lateness = np.maximum(np.exp(np.log(LATE_MEDIAN_DAYS * DAY) + rng.normal(0, 0.8, n)), 2 * HOUR)
    on_time = shipped + (promised - shipped) * rng.uniform(0.25, 0.95, n)
    delivered = np.where(late, np.maximum(promised, shipped) + lateness, on_time)
    delayed = promised + np.minimum(lateness / 2, 6 * HOUR)  # the customer is told when the promise passes

    reviewed = paid & (rng.random(n) < np.where(late, REVIEW_RATE_LATE, REVIEW_RATE))
    reviewed_at = delivered + np.exp(np.log(20 * HOUR) + rng.normal(0, 1.0, n))
    stars = np.where(late[:, None], STARS_LATE, STARS_ON_TIME)
    bad = stars[:, :2].sum(axis=1)
    p_bad = np.minimum(bad * traits["picky"].to_numpy()[customer], 0.98)
    is_bad = rng.random(n) < p_bad
    # Within bad (1-2) and good (3-5) keep Olist's split.
    low = rng.random(n) < stars[:, 0] / bad
    good = stars[:, 2:] / stars[:, 2:].sum(axis=1, keepdims=True)
    high = 3 + (rng.random(n)[:, None] > np.cumsum(good, axis=1)[:, :2]).sum(axis=1)
    rating = np.where(is_bad, np.where(low, 1, 2), high)

    category = catalogue["category"].to_numpy()[attempts["product"]]
    p_return = (pd.Series(category).map(RETURN_RATE).fillna(RETURN_RATE_DEFAULT).to_numpy()
                * traits["returns"].to_numpy()[customer]
                * np.where(reviewed & is_bad, RETURN_AFTER_BAD_REVIEW, 1.0) * np.where(late, RETURN_AFTER_LATE, 1.0))
    returned = paid & (rng.random(n) < np.minimum(p_return, 0.9))
    returned_at = delivered + np.exp(np.log(4 * DAY) + rng.normal(0, 0.6, n))
    refunded = returned & (rng.random(n) < REFUND)
    refunded_at = returned_at + np.exp(np.log(5 * DAY) + rng.normal(0, 0.5, n))

    support = traits["support"].to_numpy()[customer]
    triggers = {  # reason: (happens, time of the trigger)
        "late_delivery": (paid & late, delayed),
        "return": (returned, returned_at),
        "payment_failed": (~paid, t0),
        "bad_review": (reviewed & (rating <= 2), reviewed_at),
    }
    contact, contact_at, reason = np.zeros(n, bool), np.zeros(n), np.full(n, -1)
    for code, (name, (happens, at)) in enumerate(triggers.items(), start=1):
        # One contact per order at most: the first trigger that leads to one.
        new = happens & ~contact & (rng.random(n) < np.minimum(SUPPORT_AFTER[name] * support, 0.95))
        contact |= new
        contact_at = np.where(new, at + np.exp(np.log(6 * HOUR) + rng.normal(0, 1.0, n)), contact_at)
        reason = np.where(new, code, reason)
    quantity = 1 + (rng.random(n)[:, None] > np.cumsum(QUANTITY)[:2]).sum(axis=1)
    return {
        "customer": customer, "product": attempts["product"], "paid": paid, "time": t0, "quantity": quantity,
        "shipped": shipped, "promised": promised, "late": late, "delivered": delivered, "delayed": delayed,
        "reviewed": reviewed, "reviewed_at": reviewed_at, "rating": rating, "returned": returned,
        "returned_at": returned_at, "refunded": refunded, "refunded_at": refunded_at, "contact": contact,
        "contact_at": contact_at, "reason": reason, "session": attempts["session"],
    }


def _order_events(o) -> dict:
    paid = o["paid"]
    # Approved a tenth of the way from purchase to shipping (Olist: a median of minutes against days), drawn from
    # no random numbers of its own, so that every other draw of a seed stays what it was.
    approved = o["time"] + 0.1 * (o["shipped"] - o["time"])
    parts = [
        (T["order_approved"], paid, approved, -1, -1),
        (T["order_shipped"], paid, o["shipped"], -1, -1),
        (T["delivery_delayed"], paid & o["late"], o["delayed"], -1, -1),
        (T["order_delivered"], paid, o["delivered"], -1, -1),
        (T["review"], o["reviewed"], o["reviewed_at"], o["rating"], -1),
        (T["return_requested"], o["returned"], o["returned_at"], -1, -1),
        (T["refund"], o["refunded"], o["refunded_at"], -1, -1),
        (T["support_contact"], o["contact"], o["contact_at"], -1, o["reason"]),
    ]
    out: dict[str, list] = {k: [] for k in ("customer", "type", "product", "time", "order", "rating", "reason")}
    for code, mask, time, rating, reason in parts:
        index = np.flatnonzero(mask)
        out["customer"].append(o["customer"][index])
        out["type"].append(np.full(len(index), code))
        out["product"].append(o["product"][index])
        out["time"].append(time[index])
        out["order"].append(index)
        out["rating"].append(np.broadcast_to(rating, len(mask))[index])
        out["reason"].append(np.broadcast_to(reason, len(mask))[index])
    return {k: np.concatenate(v) for k, v in out.items()}


def _questions(rng, people, days) -> dict:
    """Support contacts not about an order: questions about sizes, accounts, vouchers."""
    traits = people["traits"]
    first_day = traits["first_day"].to_numpy()
    count = rng.poisson(SUPPORT_QUESTIONS_PER_DAY * traits["support"].to_numpy() * (days - first_day))
    customer = np.repeat(np.arange(len(traits)), count)
    time = (first_day[customer] + rng.random(len(customer)) * (days - first_day[customer])) * DAY
    n = len(customer)
    return {"customer": customer, "type": np.full(n, T["support_contact"]), "time": time, "reason": np.zeros(n, int)}


def _concat(*parts: dict) -> dict:
    names = ("customer", "type", "product", "time", "order", "session", "rating", "category", "reason")
    return {k: np.concatenate([p[k] if k in p else np.full(len(p["time"]), -1) for p in parts]) for k in names}


def _frame(ids, e, sessions, orders, people, catalogue, days, end, seed, block) -> pd.DataFrame:
    """The canonical events frame: strings, UTC times, deterministic ids; nothing after `end`."""
    keep = e["time"] < days * DAY
    order = np.argsort(e["time"][keep], kind="stable")
    e = {k: v[keep][order] for k, v in e.items()}
    n = len(e["time"])
    event_ids = _event_ids(ids, n, seed, block)
    session_ids = _hex(ids, sessions, "s-")
    order_ids = _hex(ids, len(orders["time"]), "o-")

    start_us = int(pd.Timestamp(end).timestamp() * 1e6) - days * 86_400_000_000
    product = e["product"]
    is_product = product >= 0
    price = _lookup(catalogue["price"].to_numpy(), product)
    category = np.where(is_product, _lookup(catalogue["category_code"].to_numpy(), product, -1), e["category"])
    order = e["order"]
    promised = _lookup(orders["promised"], np.where(np.isin(e["type"], PROMISE_TYPES), order, -1))
    quantity = _lookup(orders["quantity"], np.where(np.isin(e["type"], QUANTITY_TYPES), order, -1))
    return pd.DataFrame({
        "event_id": event_ids,
        "type": _take(pd.Series(TYPES, dtype="str"), e["type"]),
        "customer": _take(people["external_id"], e["customer"]),
        "anonymous_id": pd.Series(None, index=range(n), dtype="str"),
        "product": _take(catalogue["external_id"], product),
        "category": _take(pd.Series([c[0] for c in CATEGORIES], dtype="str"), category),
        "order_id": _take(order_ids, order),
        "session_id": _take(session_ids, e["session"]),
        "price": price,
        "quantity": quantity,
        "rating": np.where(e["rating"] > 0, e["rating"], np.nan),
        "occurred_at": _utc(start_us + np.round(e["time"] * 1e6).astype(np.int64)),
        "promised_at": _utc(start_us + np.round(np.nan_to_num(promised) * 1e6).astype(np.int64), np.isnan(promised)),
        "properties": _properties(e),
    }, columns=list(FIELDS))


def _properties(e) -> np.ndarray:
    """Small shared dicts, one per reason or query: no per-event objects to build."""
    support = np.array([None, *({"reason": r} for r in SUPPORT_REASONS)], dtype=object)
    payment = np.array([None, *({"reason": r} for r in PAYMENT_REASONS)], dtype=object)
    search = np.array([None, *({"query": c[0].replace("_", " ")} for c in CATEGORIES)], dtype=object)
    out = np.full(len(e["time"]), None, dtype=object)
    for name, table, value in (("support_contact", support, e["reason"]), ("payment_failed", payment, e["reason"]),
                               ("search", search, e["category"])):
        at = e["type"] == T[name]
        out[at] = table[value[at] + 1]
    return out


def _hidden_orders(o, people, start) -> pd.DataFrame:
    def when(seconds):
        return start + pd.to_timedelta(seconds, unit="s")

    paid = o["paid"]
    return pd.DataFrame({
        "customer": people["external_id"].to_numpy()[o["customer"][paid]],
        "purchased_at": when(o["time"][paid]), "promised_at": when(o["promised"][paid]),
        "shipped_at": when(o["shipped"][paid]), "delivered_at": when(o["delivered"][paid]), "late": o["late"][paid],
    })


def _lookup(values: np.ndarray, index: np.ndarray, fill=np.nan) -> np.ndarray:
    """values[index], with `fill` where index is -1."""
    if not len(values):
        return np.full(len(index), fill)
    return np.where(index >= 0, values[np.maximum(index, 0)], fill)


def _take(values: pd.Series, index: np.ndarray) -> pd.Series:
    """values[index] as a string column; -1 gives a missing value."""
    return pd.Series(pd.Series(values, dtype="str").array.take(index, allow_fill=True), dtype="str")


def _utc(us: np.ndarray, missing: np.ndarray | None = None) -> pd.Series:
    times = pd.Series(us.astype("datetime64[us]")).dt.tz_localize("UTC")
    return times if missing is None else times.mask(missing)


def _event_ids(rng, n: int, seed: int, block: int) -> pd.Series:
    """Version-8 UUIDs as canonical lowercase strings: a (seed, block) prefix, then seeded random bytes.

    The prefix keeps one block's ids together in the unique index, so PostgreSQL inserts them into
    a few fresh pages instead of all over it: 1M customers (10M events) stored in 208 s instead of
    244 s with random leading bits, as version-4 ids have.
    """
    raw = np.frombuffer(rng.bytes(16 * n), np.uint8).reshape(n, 16).copy()
    raw[:, :2] = np.frombuffer(np.random.default_rng([seed, 3]).bytes(2), np.uint8)
    raw[:, 2:4] = np.frombuffer((block % 65_536).to_bytes(2, "big"), np.uint8)  # uniqueness rests on the 74 random bits
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x80  # version 8: custom layout (RFC 9562)
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    digits = np.frombuffer(raw.tobytes().hex().encode(), np.uint8).reshape(n, 32)
    dashed = np.full((n, 36), ord("-"), np.uint8)
    for a, b, at in ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24)):
        dashed[:, at:at + b - a] = digits[:, a:b]
    return pd.Series(dashed.view("S36").ravel().astype("U36"), dtype="str")


def _hex(rng, n: int, prefix: str) -> pd.Series:
    text = np.frombuffer(rng.bytes(8 * n).hex().encode(), "S16").astype("U16")
    return prefix + pd.Series(text, dtype="str")


def _ranks(counts: np.ndarray) -> np.ndarray:
    """0, 1, ... within each group of np.repeat(..., counts)."""
    return np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)


def _p(shares: dict) -> np.ndarray:
    values = np.array(list(shares.values()), float)
    return values / values.sum()



def simulation_rates(events: pd.DataFrame, *, customers: int, end: datetime) -> dict[str, float]:
    """The rates docs/simulator.md promises, measured on an events frame (what a model would see)."""
    e = events
    count = e["type"].value_counts()
    in_session = e.dropna(subset=["session_id"])
    session_has = pd.crosstab(in_session["session_id"], in_session["type"]).gt(0)
    delivered = e[e["type"] == "order_delivered"].set_index("order_id")
    late = delivered["occurred_at"] > delivered["promised_at"]
    reviews = e[e["type"] == "review"]
    review_late = reviews["order_id"].map(late)
    bad = reviews["rating"] <= 2
    views = e.loc[e["type"] == "product_view", "product"].value_counts()
    cutoff = pd.Timestamp(end) - pd.Timedelta(days=14)
    after = e[e["occurred_at"] >= cutoff]
    risky = after["type"].isin(["support_contact", "return_requested", "refund"]) | (after["rating"] <= 2)
    attempts = e.loc[e["type"].isin(["purchase", "payment_failed"]), "order_id"].nunique()
    rates = {
        "events per customer": len(e) / customers,
        "sessions per customer": len(session_has) / customers,
        "session conversion": session_has["purchase"].mean(),
        "add_to_cart / product_view": count["add_to_cart"] / count["product_view"],
        "purchase / add_to_cart": count["purchase"] / count["add_to_cart"],
        "add_to_wishlist / product_view": count["add_to_wishlist"] / count["product_view"],
        "cart abandonment (sessions)": 1 - session_has.loc[session_has["add_to_cart"], "purchase"].mean(),
        "payment_failed / purchase attempts": count["payment_failed"] / attempts,
        "late deliveries": late.mean(),
        "reviews per delivered order": len(reviews) / len(delivered),
        **{f"review {stars} stars": (reviews["rating"] == stars).mean() for stars in range(1, 6)},
        "1-2 stars, late orders": bad[review_late == True].mean(),  # noqa: E712 (missing means not delivered)
        "1-2 stars, on-time orders": bad[review_late == False].mean(),  # noqa: E712
        "returns per delivered order": count["return_requested"] / len(delivered),
        "refunds per return": count["refund"] / count["return_requested"],
        "support contacts per 100 orders": 100 * count["support_contact"] / count["purchase"],
        "top 10% products' share of views": views.iloc[: max(1, len(views) // 10)].sum() / views.sum(),
        "customers buying in 7 days (base rate)": after.loc[
            (after["type"] == "purchase") & (after["occurred_at"] < cutoff + pd.Timedelta(days=7)), "customer"
        ].nunique() / customers,
        "customers with support risk in 14 days (base rate)": after.loc[risky, "customer"].nunique() / customers,
    }
    rates["bad review ratio late / on-time"] = rates["1-2 stars, late orders"] / rates["1-2 stars, on-time orders"]
    return {name: float(value) for name, value in rates.items()}


# --- how customers answer an action ---------------------------------------------------------------------------------

# The four kinds uplift modelling names, each with its chance to buy within a week without and with an offer
# (assumptions: an offer quintuples a persuadable's chance and puts a do-not-disturb off).
RESPONSES = {"persuadable": (0.06, 0.30), "sure thing": (0.45, 0.45), "lost cause": (0.02, 0.02),
             "do not disturb": (0.15, 0.04)}


def response_kinds(block: SimulatedBlock) -> pd.Series:
    """How each customer would answer an offer, from the hidden traits behind their events.

    Customers who ordered and are prone to trouble (late orders, returns, support) are put off by more
    marketing; of the busier half, those who convert well buy anyway and those who mostly browse are
    persuadable; the others, who rarely come by, are lost causes. By external_id, in the block's order.
    """
    traits = block.traits
    busy = traits["activity"].rank(pct=True).to_numpy() > 0.5
    keen = traits["propensity"].to_numpy() > 0
    ordered = traits.index.isin(block.orders["customer"])
    kind = np.select([ordered & (traits["trouble"].to_numpy() > 0.8), busy & keen, busy],
                     ["do not disturb", "sure thing", "persuadable"], "lost cause")
    return pd.Series(kind, index=traits.index, name="kind")


def response_draw(rng: np.random.Generator, kinds: pd.Series, treated: np.ndarray) -> np.ndarray:
    """Who buys within the week after the offer (or after being held out): each kind's chance."""
    without, with_ = (kinds.map({kind: chances[i] for kind, chances in RESPONSES.items()}).to_numpy()
                      for i in (0, 1))
    return rng.random(len(kinds)) < np.where(treated, with_, without)


def response_effect(kinds: pd.Series) -> np.ndarray:
    """The true change an offer makes in each customer's chance to buy: the ranking no model can beat."""
    return kinds.map({kind: on - off for kind, (off, on) in RESPONSES.items()}).to_numpy()
