"""The simulated shop: realistic rates, consistent orders, hidden traits that really drive behaviour."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from behavior.core.event_types import EVENT_TYPES
from behavior.core.events import FIELDS, Limits, clean_events
from behavior.models import Customer, Event, Product
from foresight_demo.services import shop_simulate
from foresight_demo.simulation import (
    RESPONSES,
    response_draw,
    response_effect,
    response_kinds,
    simulate_block,
    simulate_catalogue,
    simulation_rates,
)

END = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 90
CUSTOMERS = 20_000  # ~200,000 events in about a second: enough orders for stable late and review rates


def simulate(customers: int, *, seed: int = 11, end: datetime = END, block: int = 0, days: int = DAYS):
    catalogue = simulate_catalogue(seed=seed, products=2_000)
    return simulate_block(seed=seed, block=block, first_customer=0, customers=customers, days=days, end=end,
                          catalogue=catalogue)


@pytest.fixture(scope="module")
def shop():
    return simulate(CUSTOMERS)


@pytest.fixture(scope="module")
def rates(shop):
    measured = simulation_rates(shop.events, customers=CUSTOMERS, end=END)
    print("\n" + "\n".join(f"{name:52} {value:8.4f}" for name, value in measured.items()))
    return measured


@pytest.mark.sqlite
def test_the_same_seed_gives_the_same_events_and_ids_whatever_the_end():
    first, again = simulate(2_000), simulate(2_000)
    pd.testing.assert_frame_equal(first.events, again.events)

    later = simulate(2_000, end=END + timedelta(days=3, hours=5))
    assert later.events["event_id"].tolist() == first.events["event_id"].tolist()
    assert (later.events["occurred_at"] - first.events["occurred_at"]).eq(pd.Timedelta(days=3, hours=5)).all()

    other = simulate(2_000, seed=12)
    assert not set(other.events["event_id"]) & set(first.events["event_id"])


@pytest.mark.sqlite
def test_events_are_canonical_and_pass_every_check(shop):
    events = shop.events
    assert list(events.columns) == list(FIELDS)
    assert str(events["occurred_at"].dtype) == "datetime64[us, UTC]"
    uuid8 = r"[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    assert events["event_id"].str.fullmatch(uuid8).all()

    cleaned = clean_events(events, Limits(now=END, max_clock_skew=pd.Timedelta(0)))

    assert cleaned.problems == [] and len(cleaned.repeated) == 0
    assert len(cleaned.frame) == len(events)


@pytest.mark.sqlite
def test_every_event_type_happens_and_nothing_falls_outside_the_period(shop):
    events = shop.events
    assert set(events["type"]) == set(EVENT_TYPES)
    assert events["occurred_at"].min() >= pd.Timestamp(END) - pd.Timedelta(days=DAYS)
    assert events["occurred_at"].max() <= pd.Timestamp(END)
    assert events["customer"].isin(shop.customers["external_id"]).all()


@pytest.mark.sqlite
def test_order_events_follow_their_purchase(shop):
    events = shop.events
    purchases = events[events["type"] == "purchase"].set_index("order_id")
    assert purchases.index.is_unique
    later = events[events["type"].isin(["order_shipped", "order_delivered", "delivery_delayed", "review",
                                        "return_requested", "refund"])]
    bought = purchases.reindex(later["order_id"])
    assert bought["customer"].notna().all(), "an order event without its purchase"
    assert (bought["customer"].to_numpy() == later["customer"].to_numpy()).all()
    assert (bought["occurred_at"].to_numpy() < later["occurred_at"].to_numpy()).all()

    def at(kind: str) -> pd.Series:
        return events[events["type"] == kind].set_index("order_id")["occurred_at"]

    delivered = at("order_delivered")
    assert (at("order_shipped").reindex(delivered.index) < delivered).all()
    assert (delivered.reindex(at("review").index) < at("review")).all()  # reviews come after delivery

    # A delay is announced only when the promise passes before delivery.
    delayed = events[events["type"] == "delivery_delayed"]
    assert (delayed["occurred_at"] > delayed["promised_at"]).all()
    delivered_after = delivered.reindex(delayed["order_id"]).to_numpy()
    known = ~pd.isna(delivered_after)
    assert (delivered_after[known] > delayed["promised_at"].to_numpy()[known]).all()
    assert (delivered_after[known] > delayed["occurred_at"].to_numpy()[known]).all()
    # Every late delivery was announced.
    late = events[(events["type"] == "order_delivered") & (events["occurred_at"] > events["promised_at"])]
    assert late["order_id"].isin(delayed["order_id"]).all()


@pytest.mark.sqlite
def test_delivery_and_reviews_match_olist(rates):
    assert 0.055 <= rates["late deliveries"] <= 0.095  # Olist 7.2%
    assert 0.07 <= rates["1-2 stars, on-time orders"] <= 0.12  # Olist 9.5%
    assert 0.50 <= rates["1-2 stars, late orders"] <= 0.78  # Olist 65%
    assert 4.5 <= rates["bad review ratio late / on-time"] <= 10  # Olist 6.9x
    assert 0.09 <= rates["review 1 stars"] <= 0.14  # Olist 11.4%
    assert 0.52 <= rates["review 5 stars"] <= 0.63  # Olist 57.5%


@pytest.mark.sqlite
def test_the_funnel_matches_the_public_data(rates):
    assert 0.135 <= rates["session conversion"] <= 0.175  # Online Shoppers 15.5%
    assert 0.050 <= rates["add_to_cart / product_view"] <= 0.070  # Taobao 5.9%
    assert 0.33 <= rates["purchase / add_to_cart"] <= 0.45  # Taobao 39%
    assert 0.025 <= rates["add_to_wishlist / product_view"] <= 0.037  # Taobao fav/pv 3.1%
    assert 8 <= rates["events per customer"] <= 13  # ~10 over 90 days: 1M customers -> ~10M events
    assert 0.005 <= rates["customers buying in 7 days (base rate)"] <= 0.03
    assert 0.005 <= rates["customers with support risk in 14 days (base rate)"] <= 0.03


@pytest.mark.sqlite
def test_customers_have_attributes_and_a_realistic_consent_share(shop):
    customers = shop.customers
    assert customers["external_id"].is_unique
    assert set(customers["attributes"].iloc[0]) == {"country", "signup_date", "device", "age_band"}
    assert 0.40 <= customers["marketing_consent"].mean() <= 0.50
    attributes = pd.DataFrame(list(customers["attributes"]), index=customers["external_id"])
    assert 0.40 <= attributes["country"].value_counts(normalize=True)["DE"] <= 0.50
    # About a fifth signed up during the period; nobody does anything before signing up.
    start = f"{pd.Timestamp(END) - pd.Timedelta(days=DAYS):%Y-%m-%d}"
    assert 0.15 <= (attributes["signup_date"] > start).mean() <= 0.25
    first_seen = shop.events.groupby("customer")["occurred_at"].min().dt.strftime("%Y-%m-%d")
    assert (first_seen >= attributes["signup_date"].reindex(first_seen.index)).all()


@pytest.mark.sqlite
def test_hidden_intent_drives_purchases(shop):
    events = shop.events
    purchases = events[events["type"] == "purchase"]
    per_customer = purchases.groupby("customer").size().reindex(shop.traits.index, fill_value=0)
    decile = pd.qcut(shop.traits["intent"], 10, labels=False)
    by_decile = per_customer.groupby(decile).mean()
    assert by_decile[9] > 20 * by_decile[0]
    assert by_decile.is_monotonic_increasing

    # Intent moves over time: customers buy on their own high-intent days.
    row = shop.traits.index.get_indexer(purchases["customer"])
    start = pd.Timestamp(END) - pd.Timedelta(days=DAYS)
    day = ((purchases["occurred_at"] - start).dt.total_seconds() // 86_400).astype(int).to_numpy()
    on_the_day = shop.daily_intent[row, day] / shop.daily_intent[row].mean(axis=1)
    assert np.median(on_the_day) > 2


@pytest.mark.sqlite
def test_hidden_trouble_drives_late_orders_and_complaints(shop):
    orders = shop.orders
    risk = shop.traits["late_risk"].reindex(orders["customer"]).to_numpy()
    high = risk > np.quantile(risk, 0.8)
    low = risk < np.quantile(risk, 0.2)
    assert orders["late"][high].mean() > 3 * orders["late"][low].mean()

    events = shop.events
    contacts = events[events["type"] == "support_contact"].groupby("customer").size()
    contacts = contacts.reindex(shop.traits.index, fill_value=0)
    prone = shop.traits["support"]
    assert contacts[prone > prone.quantile(0.8)].mean() > 2 * contacts[prone < prone.quantile(0.2)].mean()


@pytest.mark.sqlite
@pytest.mark.django_db
def test_the_shop_is_stored_once_however_often_it_runs():
    end = datetime(2026, 1, 1, tzinfo=UTC)
    first = shop_simulate(customers=300, days=30, seed=5, end=end, products=200, block_customers=120)

    assert first.customers == 300 and first.events_generated > 500
    assert first.events_stored == first.events_generated == Event.objects.count()
    assert Customer.objects.count() == 300 and Product.objects.count() == 200
    customer = Customer.objects.get(external_id="sim5-c0000007")
    assert set(customer.attributes) == {"country", "signup_date", "device", "age_band"}
    assert Event.objects.filter(type="review", rating__isnull=True).count() == 0
    assert Event.objects.filter(type="purchase", promised_at__isnull=True).count() == 0

    again = shop_simulate(customers=300, days=30, seed=5, end=end, products=200, block_customers=120)

    assert again.events_generated == first.events_generated
    assert again.events_stored == 0
    assert Event.objects.count() == first.events_stored and Customer.objects.count() == 300


@pytest.mark.sqlite
@pytest.mark.django_db
def test_the_command_reports_what_it_stored(capsys):
    call_command("simulate_shop", customers=50, days=14, seed=3, products=100, end=END, verbosity=0)

    assert "50 customers, 100 products" in capsys.readouterr().out
    assert Event.objects.exists()
    with pytest.raises(CommandError, match="future"):
        call_command("simulate_shop", customers=5, end=datetime.now(UTC) + timedelta(days=1), verbosity=0)


def test_customers_answer_an_offer_as_their_hidden_kind_does_and_busier_ones_show_it(shop):
    kinds = response_kinds(shop)
    treated = np.random.default_rng(1).random(len(kinds)) < 0.5
    bought = response_draw(np.random.default_rng(2), kinds, treated)

    shares = kinds.value_counts(normalize=True)
    assert set(shares.index) == set(RESPONSES) and shares.min() > 0.02
    for kind, (without, with_offer) in RESPONSES.items():
        of_kind = (kinds == kind).to_numpy()
        for group, chance in ((of_kind & ~treated, without), (of_kind & treated, with_offer)):
            spread = 4 * np.sqrt(chance * (1 - chance) / group.sum())  # four standard errors
            assert bought[group].mean() == pytest.approx(chance, abs=spread)
    assert response_effect(kinds)[(kinds == "persuadable").to_numpy()].min() > 0.2
    # The kinds come from the traits behind the events: sure things and persuadables visit more than lost causes.
    visits = shop.events[shop.events["type"].eq("page_view")].groupby("customer").size().reindex(kinds.index,
                                                                                                 fill_value=0)
    by_kind = visits.groupby(kinds).mean()
    assert by_kind["sure thing"] > by_kind["persuadable"] > 2 * by_kind["lost cause"]
