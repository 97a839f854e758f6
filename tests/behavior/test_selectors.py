"""The columnar read that feeds the features: the same frame from PostgreSQL and SQLite."""

from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest

from behavior.core.features import build_features
from behavior.selectors import customers_frame, events_frame
from tests.factories import CustomerFactory, EventFactory, ProductFactory

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _story():
    alice, bob = CustomerFactory(), CustomerFactory()
    boots = ProductFactory()
    EventFactory(customer=alice, type="product_view", product=boots, category="shoes", session_id="s1",
                 occurred_at=NOW - timedelta(days=2))
    EventFactory(customer=alice, type="purchase", product=boots, price="49.90", quantity=2, order_id="o1",
                 promised_at=NOW - timedelta(days=1), occurred_at=NOW - timedelta(days=1, hours=5))
    EventFactory(customer=bob, type="review", rating=2, order_id="o9", occurred_at=NOW - timedelta(hours=3))
    EventFactory(customer=None, anonymous_id="visitor", type="page_view", occurred_at=NOW - timedelta(hours=1))
    return alice, bob, boots


def test_events_come_back_typed_with_empty_text_as_missing():
    alice, bob, boots = _story()

    frame = events_frame().sort_values("occurred_at", ignore_index=True)

    assert frame["customer_id"].tolist() == [alice.pk, alice.pk, bob.pk]  # the anonymous event is left out
    assert frame["type"].tolist() == ["product_view", "purchase", "review"]
    assert str(frame["occurred_at"].dtype) == "datetime64[us, UTC]"
    assert frame.loc[1, "occurred_at"] == pd.Timestamp(NOW - timedelta(days=1, hours=5))
    assert frame.loc[1, ["price", "quantity", "order_id"]].tolist() == [49.9, 2, "o1"]
    assert frame.loc[0, "product_id"] == boots.pk and pd.isna(frame.loc[2, "product_id"])
    assert frame.loc[2, "rating"] == 2 and pd.isna(frame.loc[0, "rating"])
    assert pd.isna(frame.loc[2, "category"]) and pd.isna(frame.loc[0, "order_id"])


def test_events_can_be_read_up_to_a_time_and_for_a_range_of_customers():
    _, bob, _ = _story()

    assert len(events_frame(until=NOW - timedelta(days=1))) == 2
    assert events_frame(customers=(bob.pk, bob.pk))["customer_id"].tolist() == [bob.pk]


def test_the_frames_feed_the_features():
    alice, bob, _ = _story()

    features = build_features(events_frame(), NOW, customers_frame())

    assert features.loc[alice.pk, "product_view_7d"] == 1
    assert features.loc[alice.pk, "orders"] == 1
    assert features.loc[bob.pk, "bad_reviews_90d"] == 1


def test_a_stored_time_no_reader_can_hold_reads_as_missing_and_breaks_nothing():
    """Rows stored before times were bounded: a promise in the year 10000 (UTC) once failed every read."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("SQLite cannot store a time past 9999 in the first place")
    alice, _, _ = _story()
    EventFactory(customer=alice, type="purchase", order_id="o2", occurred_at=NOW - timedelta(hours=2),
                 promised_at=datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5))))

    frame = events_frame()

    assert len(frame) == 4 and frame["promised_at"].isna().sum() == 3  # the story's review, view, and this one
    assert build_features(frame, NOW, customers_frame()).loc[alice.pk, "orders"] == 2


def test_no_events_read_as_an_empty_frame_of_the_same_columns():
    empty = events_frame()
    EventFactory(customer=CustomerFactory(), type="purchase", occurred_at=NOW)
    some = events_frame()

    assert empty.empty and len(some) == 1
    assert empty.dtypes.to_dict() == some.dtypes.to_dict()
