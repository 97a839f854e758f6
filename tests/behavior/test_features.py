"""Point-in-time features and labels: stories with exact numbers, and no peeking past the cutoff."""

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from behavior.core.event_types import EVENT_TYPES
from behavior.core.features import (
    TargetDefinition,
    build_features,
    build_labels,
    default_targets,
    describe,
    events_for_features,
    model_features,
    training_frame,
)
from foresight_demo.simulation import simulate_block, simulate_catalogue

CUTOFF = pd.Timestamp("2026-03-01", tz="UTC")
DAY = pd.Timedelta(days=1)
WINDOW_SHOPPER, LOYAL_BUYER, LATE_ORDER, NEWCOMER = 1, 2, 3, 4
INTENT, RISK = default_targets()["purchase_intent"], default_targets()["support_risk"]


def frame(rows: list[dict]) -> pd.DataFrame:
    """Events in the canonical columns and dtypes; a row gives `at` (before the cutoff, in days) or `occurred_at`."""
    rows = [{"occurred_at": CUTOFF - r.pop("at") * DAY if "at" in r else r.pop("occurred_at"), **r} for r in rows]
    events = pd.DataFrame.from_records(rows)
    columns = {
        "customer_id": "int64", "type": "str", "occurred_at": "datetime64[us, UTC]", "product_id": "Int64",
        "category": "str", "price": "float64", "quantity": "Int64", "order_id": "str", "session_id": "str",
        "rating": "Int64", "promised_at": "datetime64[us, UTC]", "seller": "str", "freight": "float64",
        "payment": "str",
    }
    return pd.DataFrame({name: events.get(name, pd.Series(None, index=events.index)).astype(dtype)
                         for name, dtype in columns.items()})


def window_shopper() -> list[dict]:
    """Six product views this week over two sessions, two cart adds, never a purchase."""
    c = WINDOW_SHOPPER
    views = [(0.5, 10, "toys", "s1"), (0.6, 11, "toys", "s1"), (0.7, 10, "toys", "s1"),
             (3.0, 12, "auto", "s2"), (3.1, 12, "auto", "s2"), (3.2, 11, "toys", "s2")]
    return [
        *({"customer_id": c, "type": "product_view", "at": at, "product_id": p, "category": cat, "session_id": s}
          for at, p, cat, s in views),
        {"customer_id": c, "type": "add_to_cart", "at": 0.4, "product_id": 10, "category": "toys", "session_id": "s1"},
        {"customer_id": c, "type": "add_to_cart", "at": 3.0, "product_id": 12, "category": "auto", "session_id": "s2"},
        {"customer_id": c, "type": "page_view", "at": 40.0, "session_id": "s0"},
    ]


def loyal_buyer() -> list[dict]:
    """Three delivered orders (one over 90 days ago), two good reviews, a cart add that was bought."""
    c = LOYAL_BUYER
    orders = [("o1", 100.0, 50.0, 2), ("o2", 40.0, 30.0, 1), ("o3", 10.0, 20.0, None)]  # id, days ago, price, qty
    rows = []
    for order, at, price, quantity in orders:
        rows += [
            {"customer_id": c, "type": "purchase", "at": at, "order_id": order, "price": price, "quantity": quantity,
             "product_id": 20, "category": "auto", "promised_at": CUTOFF - (at - 3) * DAY},
            {"customer_id": c, "type": "order_shipped", "at": at - 1, "order_id": order},
            {"customer_id": c, "type": "order_delivered", "at": at - 2, "order_id": order},
        ]
    rows += [
        {"customer_id": c, "type": "add_to_cart", "at": 10.01, "product_id": 20, "category": "auto"},
        {"customer_id": c, "type": "review", "at": 35.0, "order_id": "o2", "rating": 5},
        {"customer_id": c, "type": "review", "at": 5.0, "order_id": "o3", "rating": 4},
    ]
    return rows


def late_order() -> list[dict]:
    """An order promised 2.5 days ago, delayed and still not delivered; an earlier late one did arrive."""
    c = LATE_ORDER
    return [
        {"customer_id": c, "type": "purchase", "at": 6.0, "order_id": "o9", "price": 80.0, "quantity": 1,
         "promised_at": CUTOFF - 2.5 * DAY},
        {"customer_id": c, "type": "delivery_delayed", "at": 2.0, "order_id": "o9"},
        {"customer_id": c, "type": "purchase", "at": 20.0, "order_id": "o8", "price": 10.0, "quantity": 1,
         "promised_at": CUTOFF - 17 * DAY},
        {"customer_id": c, "type": "delivery_delayed", "at": 16.5, "order_id": "o8"},
        {"customer_id": c, "type": "order_delivered", "at": 15.0, "order_id": "o8"},
        {"customer_id": c, "type": "support_contact", "at": 1.0},
        # Delivered exactly at the cutoff: features must not know yet.
        {"customer_id": c, "type": "order_delivered", "occurred_at": CUTOFF, "order_id": "o9"},
    ]


@pytest.fixture
def stories() -> pd.DataFrame:
    return frame(window_shopper() + loyal_buyer() + late_order())


@pytest.fixture
def customers() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": [WINDOW_SHOPPER, LOYAL_BUYER, LATE_ORDER, NEWCOMER],
        "created_at": pd.to_datetime(["2025-12-01", "2026-02-20", "2025-01-01", "2026-02-27"], utc=True),
        "attributes": [{"country": "DE", "device": "desktop"}, {"country": "fr", "device": "mobile"}, {},
                       {"country": "Germany", "device": "fridge"}],
    })


def test_the_window_shopper_browses_a_lot_and_never_buys(stories):
    row = build_features(stories, CUTOFF).loc[WINDOW_SHOPPER]
    assert row["product_view_1d"] == 3
    assert row["product_view_7d"] == 6
    assert row["page_view_7d"] == 0 and row["page_view_90d"] == 1
    assert row["sessions_7d"] == 2 and row["sessions_30d"] == 2
    assert row["products_viewed_30d"] == 3 and row["categories_viewed_30d"] == 2
    assert row["cart_adds_unbought_30d"] == 2
    assert row["days_since_product_view"] == pytest.approx(0.5)
    assert row["days_since_event"] == pytest.approx(0.4)
    assert np.isnan(row["days_since_purchase"]) and np.isnan(row["average_order_value"])
    assert row["orders"] == 0 and row["spend"] == 0
    assert row["tenure_days"] == pytest.approx(40.0)  # no sign-up date given: the first event


def test_the_loyal_buyer_orders_spends_and_reviews(stories):
    row = build_features(stories, CUTOFF).loc[LOYAL_BUYER]
    assert (row["orders"], row["orders_90d"], row["purchase_30d"]) == (3, 2, 1)
    assert (row["spend"], row["spend_90d"]) == (150, 50)  # 50 * 2 + 30 + 20 (a missing quantity is one unit)
    assert row["average_order_value"] == 50
    assert row["mean_rating"] == 4.5 and row["review_90d"] == 2 and row["bad_reviews_90d"] == 0
    assert row["cart_adds_unbought_30d"] == 0  # o3 was bought after the cart add
    assert row["days_since_purchase"] == pytest.approx(10.0)
    assert row["orders_open_past_due"] == 0 and row["max_days_past_due"] == 0


def test_an_order_past_its_promise_stays_open_until_delivered(stories):
    row = build_features(stories, CUTOFF).loc[LATE_ORDER]
    assert row["orders_open_past_due"] == 1  # o9; o8 was late but arrived
    assert row["max_days_past_due"] == pytest.approx(2.5)
    assert row["orders_delayed_90d"] == 2
    assert row["days_since_delivery_delayed"] == pytest.approx(2.0)
    assert row["support_contact_7d"] == 1 and row["support_contact_1d"] == 0
    assert row["order_delivered_90d"] == 1  # the delivery at the cutoff is not seen

    # A day later the delivery is known; a promise still in the future is not past due.
    later = build_features(stories, CUTOFF + DAY).loc[LATE_ORDER]
    assert later["orders_open_past_due"] == 0 and later["max_days_past_due"] == 0
    promised_later = stories.assign(promised_at=stories["promised_at"].where(stories["order_id"] != "o9",
                                                                             CUTOFF + DAY))
    assert build_features(promised_later, CUTOFF).loc[LATE_ORDER, "orders_open_past_due"] == 0


def test_what_is_known_about_orders_in_flight(stories):
    features = build_features(stories, CUTOFF)
    late = features.loc[LATE_ORDER]
    # o9: bought 6 days ago, promised 2.5 days ago, neither shipped nor (yet) delivered; o8 came 2 days late.
    assert late["orders_in_flight"] == 1 and late["in_flight_unshipped"] == 1
    assert late["in_flight_days_since_purchase"] == pytest.approx(6.0)
    assert late["in_flight_days_to_promise"] == pytest.approx(-2.5)
    assert (late["in_flight_items"], late["in_flight_value"]) == (1, 80)
    assert late["days_late"] == pytest.approx(2.5)  # the worse of o9 (2.5 so far) and o8 (delivered 2.0 late)
    # The loyal buyer's orders shipped a day after purchase, the shop's usual: o9 has waited 5 days longer.
    assert features["usual_ship_days"].tolist() == pytest.approx([1.0] * 3)
    assert late["in_flight_ship_delay"] == pytest.approx(5.0)
    buyer = features.loc[LOYAL_BUYER]
    assert buyer["orders_in_flight"] == 0 and np.isnan(buyer["in_flight_ship_delay"])
    assert buyer["days_late"] == pytest.approx(-1.0)  # o3, delivered 8 days ago, a day before its promise
    assert (buyer["purchase_days"], buyer["days_since_first_purchase"]) == (3, pytest.approx(100.0))


def test_order_lines_say_who_sells_what_freight_costs_and_how_it_was_paid():
    events = frame([
        {"customer_id": 1, "type": "purchase", "at": 3.0, "order_id": "a", "price": 80.0, "seller": "s1",
         "freight": 20.0, "payment": "boleto"},
        {"customer_id": 1, "type": "purchase", "at": 3.0, "order_id": "a", "price": 20.0, "seller": "s2",
         "freight": 5.0, "payment": "boleto"},
        {"customer_id": 1, "type": "order_approved", "at": 1.0, "order_id": "a"},  # approved after 2 days
        {"customer_id": 2, "type": "purchase", "at": 10.0, "order_id": "b", "price": 50.0, "payment": "credit_card"},
        {"customer_id": 2, "type": "order_approved", "at": 9.5, "order_id": "b"},  # after half a day
        {"customer_id": 3, "type": "purchase", "at": 0.5, "order_id": "c", "price": 10.0},  # not approved yet
    ])
    X = build_features(events, CUTOFF)

    assert X["usual_approval_days"].tolist() == pytest.approx([1.25] * 3)  # the median of 2 and 0.5 days
    assert X.loc[1, ["in_flight_sellers", "in_flight_freight_share", "in_flight_approval_delay"]].tolist() == \
        pytest.approx([2, 0.25, 0.75])
    assert describe("in_flight_payment_code", X.loc[1, "in_flight_payment_code"]) == "paid by boleto"
    assert X.loc[2, "in_flight_sellers"] == 0 and np.isnan(X.loc[2, "in_flight_freight_share"])  # nothing known
    assert describe("in_flight_payment_code", X.loc[2, "in_flight_payment_code"]) == "paid by credit card"
    assert X.loc[3, "in_flight_unapproved"] == 1 and X.loc[3, "in_flight_approval_delay"] == pytest.approx(-0.75)
    assert np.isnan(X.loc[3, "in_flight_payment_code"])


def test_a_customer_who_never_ordered_gets_features_alone():
    """What the API does to explain one score: features of one customer, here without a single order id."""
    alone = build_features(frame(window_shopper()), CUTOFF)
    assert alone.index.tolist() == [WINDOW_SHOPPER]
    assert alone.loc[WINDOW_SHOPPER, "orders_in_flight"] == 0 and np.isnan(alone.loc[WINDOW_SHOPPER, "days_late"])


def test_populations_pick_whom_a_target_scores(stories):
    features = build_features(stories, CUTOFF)
    def members(target):
        return features.index[target.in_population(features)].tolist()

    assert members(RISK) == [LOYAL_BUYER, LATE_ORDER]  # o3 delivered 8 days ago (in 14), o9 in flight
    assert members(TargetDefinition("r", 14 * DAY, ("refund",), population="in_flight", population_days=7)) == [
        LATE_ORDER]
    assert members(TargetDefinition("b", 7 * DAY, ("purchase",), population="buyers")) == [LOYAL_BUYER, LATE_ORDER]
    assert members(TargetDefinition("a", 7 * DAY, ("purchase",), population="active", population_days=5)) == [
        WINDOW_SHOPPER, LATE_ORDER]
    assert members(INTENT) == [WINDOW_SHOPPER, LOYAL_BUYER, LATE_ORDER]
    # Windows that follow the horizon: a week asks for 90 days (4 horizons, at least 90), a quarter a year.
    assert INTENT.window == 90 and TargetDefinition("q", 91 * DAY, ("purchase",), population="active").window == 364
    assert RISK.window == 14


def test_a_window_reaching_before_the_shop_history_is_unknown_not_zero(stories):
    features = build_features(stories, CUTOFF)  # the stories' first event is 100 days before the cutoff
    assert features["purchase_90d"].notna().all() and features["orders_90d"].notna().all()
    assert features[["purchase_180d", "purchase_365d", "spend_180d"]].isna().all().all()
    # Told that the shop's history starts earlier (as a scoring run tells its chunks), the same windows count.
    norms = {"history_start": (CUTOFF - 400 * DAY).isoformat(), "usual_ship_days": 1.0}
    known = build_features(stories, CUTOFF, norms=norms)
    assert known.loc[LOYAL_BUYER, ["purchase_180d", "purchase_365d"]].tolist() == [3, 3]


def test_feature_windows_follow_the_horizon(stories):
    weekly, quarterly = model_features(7 * DAY), model_features(91 * DAY)
    assert "purchase_90d" in weekly and "purchase_180d" not in weekly and "spend_365d" not in weekly
    assert {"purchase_365d", "spend_365d", "orders_180d"} <= set(quarterly)
    built = build_features(stories, CUTOFF).columns
    assert set(weekly) < set(quarterly) <= set(built)  # a model reads only columns the features build


def test_reasons_read_as_words_in_the_right_number():
    assert describe("add_to_cart_7d", 1) == "1 cart add in the last 7 days"
    assert describe("add_to_cart_7d", 3) == "3 cart adds in the last 7 days"
    assert describe("categories_viewed_30d", 1) == "1 different category viewed in the last 30 days"
    assert describe("days_since_add_to_cart", 2) == "2.0 days since the last cart add"
    assert describe("days_late", -1.5) == "an order 1.5 days earlier than promised"
    assert describe("in_flight_days_to_promise", -2.5) == "2.5 days past the promised delivery of the most urgent " \
        "open order"


def test_every_known_customer_gets_a_row_with_their_tenure_and_attributes(stories, customers):
    features = build_features(stories, CUTOFF, customers)
    assert features.index.tolist() == [WINDOW_SHOPPER, LOYAL_BUYER, LATE_ORDER, NEWCOMER]
    # What the rules and the README name, among the columns (a column renamed or dropped breaks conditions).
    assert {"days_since_event", "days_since_purchase", "purchase_days", "orders", "spend", "average_order_value",
            "add_to_cart_7d", "cart_adds_unbought_30d", "orders_in_flight", "days_late", "orders_open_past_due",
            "bad_reviews_90d", "tenure_days", "country_code", "device_code"} <= set(features.columns)
    assert len(features.columns) == len(set(features.columns))
    assert (features.dtypes == np.float32).all()
    newcomer = features.loc[NEWCOMER]
    assert newcomer["product_view_90d"] == 0 and newcomer["orders"] == 0
    assert np.isnan(newcomer["days_since_event"])
    assert newcomer["tenure_days"] == pytest.approx(2.0)
    # Sign-up or first event, whichever came first: the loyal buyer was imported after their history.
    assert features["tenure_days"].tolist() == pytest.approx([90.0, 100.0, 424.0, 2.0])
    assert features["country_code"].tolist()[:2] == [3 * 26 + 4, 5 * 26 + 17]  # DE, FR
    assert np.isnan(features["country_code"]).tolist()[2:] == [True, True]
    assert features["device_code"].tolist()[:2] == [1, 0]  # desktop, mobile
    assert np.isnan(features.loc[NEWCOMER, "device_code"])


@pytest.mark.parametrize("seed", range(5))
def test_events_at_or_after_the_cutoff_change_no_feature(stories, customers, seed):
    rng = np.random.default_rng(seed)
    n = 200
    later = frame([
        {"customer_id": int(rng.integers(1, 7)), "type": str(rng.choice(EVENT_TYPES)),
         "occurred_at": CUTOFF + pd.Timedelta(seconds=int(rng.integers(0, 40 * 86_400))) * int(rng.random() < 0.9),
         "product_id": int(rng.integers(10, 30)), "category": str(rng.choice(["toys", "auto", "garden"])),
         "price": float(rng.uniform(1, 100)), "quantity": int(rng.integers(1, 3)),
         "order_id": str(rng.choice(["o1", "o3", "o8", "o9", "o10"])), "session_id": str(rng.choice(["s1", "s9"])),
         "rating": int(rng.integers(1, 6)), "promised_at": CUTOFF - DAY * float(rng.uniform(-5, 5)),
         "seller": str(rng.choice(["s1", "s2"])), "freight": float(rng.uniform(0, 30)),
         "payment": str(rng.choice(["boleto", "voucher"]))}
        for _ in range(n)
    ])
    mixed = pd.concat([later, stories]).sample(frac=1, random_state=seed).reset_index(drop=True)
    pd.testing.assert_frame_equal(build_features(mixed, CUTOFF, customers), build_features(stories, CUTOFF, customers))
    # Customers first seen after the cutoff are not there yet.
    assert build_features(mixed, CUTOFF).index.tolist() == [WINDOW_SHOPPER, LOYAL_BUYER, LATE_ORDER]


def test_labels_look_only_at_the_horizon_after_the_cutoff():
    events = frame([
        {"customer_id": 1, "type": "purchase", "occurred_at": CUTOFF, "order_id": "a"},  # first instant: in
        {"customer_id": 2, "type": "purchase", "occurred_at": CUTOFF + 7 * DAY, "order_id": "b"},  # end: out
        {"customer_id": 3, "type": "purchase", "occurred_at": CUTOFF - pd.Timedelta(seconds=1), "order_id": "c"},
        {"customer_id": 4, "type": "product_view", "occurred_at": CUTOFF + DAY, "product_id": 1},
        {"customer_id": 5, "type": "review", "occurred_at": CUTOFF + 3 * DAY, "rating": 2, "order_id": "d"},
        {"customer_id": 6, "type": "review", "occurred_at": CUTOFF + 3 * DAY, "rating": 3, "order_id": "e"},
        {"customer_id": 7, "type": "refund", "occurred_at": CUTOFF + 13.9 * DAY, "order_id": "f"},
        {"customer_id": 8, "type": "support_contact", "occurred_at": CUTOFF + 14 * DAY},
        {"customer_id": 9, "type": "support_contact", "occurred_at": CUTOFF - DAY},
    ])
    intent = build_labels(events, CUTOFF, INTENT)
    assert intent[intent].index.tolist() == [1]
    assert len(intent) == 9 and intent.dtype == bool
    risk = build_labels(events, CUTOFF, RISK, customer_ids=pd.Index([5, 6, 7, 8, 9, 10]))
    assert risk.to_dict() == {5: True, 6: False, 7: True, 8: False, 9: False, 10: False}
    # A custom horizon: a purchase within 8 days takes in the one at the end of the 7-day window.
    eight_days = TargetDefinition("intent_8d", 8 * DAY, ("purchase",))
    assert build_labels(events, CUTOFF, eight_days)[lambda y: y].index.tolist() == [1, 2]
    # Churn: no purchase within the horizon, for the customers asked about.
    churn = TargetDefinition("churn", 7 * DAY, churn=True, population="buyers")
    assert build_labels(events, CUTOFF, churn, customer_ids=pd.Index([1, 2, 3])).to_dict() == {
        1: False, 2: True, 3: True}


def test_training_frame_stacks_cutoffs_for_active_customers(stories, customers):
    cutoffs = [CUTOFF - 30 * DAY, CUTOFF - 7 * DAY]
    X, y, groups = training_frame(stories, cutoffs, INTENT, customers)
    # 30 days before: the window shopper (page view 40 days ago) and the loyal buyer; the late-order customer
    # and the newcomer (no events) only later.
    assert X.index.tolist() == [(cutoffs[0], 1), (cutoffs[0], 2), (cutoffs[1], 1), (cutoffs[1], 2), (cutoffs[1], 3)]
    assert y.tolist() == [False, False, False, False, True]  # only o9 (6 days before CUTOFF) is in a horizon
    assert groups.tolist() == [cutoffs[0]] * 2 + [cutoffs[1]] * 3
    assert X.loc[(cutoffs[0], LOYAL_BUYER), "orders"] == 2
    assert X.loc[(cutoffs[1], LOYAL_BUYER), "orders"] == 3


def test_recent_viewers_buy_more_often_in_a_simulated_shop():
    end = datetime(2026, 1, 1, tzinfo=UTC)
    shop = simulate_block(seed=5, block=0, first_customer=0, customers=10_000, days=90, end=end,
                          catalogue=simulate_catalogue(seed=5, products=1_000))
    events = events_for_features(shop.events)
    cutoff = pd.Timestamp(end) - pd.Timedelta(days=14)
    features = build_features(events, cutoff)
    buys = build_labels(events, cutoff, INTENT, customer_ids=features.index)
    viewed = features["product_view_7d"] > 0
    print(f"\nbuy within 7 days: {buys[viewed].mean():.3f} after recent views, {buys[~viewed].mean():.3f} without")
    assert viewed.sum() > 500 and buys.sum() > 50
    assert buys[viewed].mean() > 2 * buys[~viewed].mean()  # measured: 0.053 vs 0.017
