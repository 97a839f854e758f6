"""POST /api/v1/events over real HTTP: what a storefront sees."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from behavior.models import Customer, Event, Product
from tests.factories import event_payload

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sqlite]


def test_a_batch_is_stored_with_its_customers_and_products(ingest_api):
    batch = [event_payload(customer=f"c{i % 3}", product=f"sku-{i % 2}") for i in range(10)]

    response = ingest_api.post("events", json=batch)

    assert response.status_code == 200, response.text
    assert sorted(response.json()["accepted"]) == sorted(e["event_id"] for e in batch)
    assert response.json()["duplicates"] == [] and response.json()["rejected"] == []
    assert Event.objects.count() == 10
    assert set(Customer.objects.values_list("external_id", flat=True)) == {"c0", "c1", "c2"}
    assert Product.objects.get(external_id="sku-1").category == "shoes"
    stored = Event.objects.select_related("customer", "product").get(event_id=batch[3]["event_id"])
    assert (stored.customer.external_id, stored.product.external_id, float(stored.price)) == ("c0", "sku-1", 49.9)


def test_a_single_event_object_is_accepted(ingest_api):
    response = ingest_api.post("events", json=event_payload(type="search", product=None, properties={"q": "boots"}))

    assert response.status_code == 200
    assert Event.objects.get().properties == {"q": "boots"}


def test_the_same_batch_twice_is_stored_once_and_says_so(ingest_api):
    batch = [event_payload() for _ in range(5)]
    ingest_api.post("events", json=batch)

    again = ingest_api.post("events", json=batch).json()

    assert again["accepted"] == []
    assert sorted(again["duplicates"]) == sorted(e["event_id"] for e in batch)
    assert Event.objects.count() == 5


def test_an_event_repeated_inside_a_batch_counts_once(ingest_api):
    event = event_payload()

    body = ingest_api.post("events", json=[event, dict(event)]).json()

    assert body["accepted"] == [event["event_id"]] and body["duplicates"] == [event["event_id"]]
    assert Event.objects.count() == 1


def test_invalid_events_are_rejected_by_index_and_field_while_valid_ones_are_stored(ingest_api):
    good = event_payload()
    batch = [
        event_payload(type="teleport"),
        good,
        event_payload(price="cheap", quantity=0),
        event_payload(occurred_at="2026-01-01T10:00:00"),
        event_payload(type="review", product=None),
        event_payload(colour="red"),
        "not an event",
    ]

    response = ingest_api.post("events", json=batch)

    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == [good["event_id"]]
    errors = {r["index"]: r["errors"] for r in body["rejected"]}
    assert list(errors) == [0, 2, 3, 4, 5, 6]
    assert "not a known event type" in errors[0]["type"][0]
    assert errors[2] == {"price": ["must be a number"], "quantity": ["must be between 1 and 1000000"]}
    assert "time zone" in errors[3]["occurred_at"][0]
    assert errors[4] == {"rating": ["is required for this type"]}
    assert errors[5] == {"colour": ["is not a known field"]}
    assert errors[6] == {"event": ["must be a JSON object"]}
    assert body["rejected"][0]["event_id"] == batch[0]["event_id"]
    assert Event.objects.count() == 1


def test_a_batch_with_nothing_valid_is_a_400(ingest_api):
    response = ingest_api.post("events", json=[event_payload(event_id="not-a-uuid")])

    assert response.status_code == 400
    assert response.json()["rejected"][0]["errors"] == {
        "event_id": ["must be a UUID like 0b7e9b8a-5d6f-4c1e-9a3b-2f1d4c5e6a7b"]
    }


def test_clock_skew_and_the_oldest_date_are_checked(ingest_api, settings):
    now = datetime.now(UTC)
    batch = [
        event_payload(occurred_at=(now + timedelta(minutes=2)).isoformat()),  # within the allowed skew
        event_payload(occurred_at=(now + timedelta(hours=2)).isoformat()),
        event_payload(occurred_at=(now - timedelta(days=400)).isoformat()),
    ]

    body = ingest_api.post("events", json=batch).json()

    assert body["accepted"] == [batch[0]["event_id"]]
    assert [r["index"] for r in body["rejected"]] == [1, 2]
    assert "future" in body["rejected"][0]["errors"]["occurred_at"][0]
    assert "before" in body["rejected"][1]["errors"]["occurred_at"][0]


def test_input_the_database_cannot_hold_is_rejected_by_index_and_field_and_the_rest_is_stored(ingest_api):
    deep: dict = {}
    node = deep
    for _ in range(300):  # past orjson's own limit, which used to fail the whole batch with a 500
        node["a"] = {}
        node = node["a"]
    bad = [
        event_payload(customer="ali\x00ce"), event_payload(session_id="s\x00"), event_payload(customer="a/b"),
        event_payload(properties={"note": "x\x00"}), event_payload(properties={"k\x00": 1}),
        event_payload(properties=deep), event_payload(price=1e10), event_payload(price=9_999_999_999.995),
        event_payload(customer=".."),
    ]
    good = [event_payload(customer=f"c{i}") for i in range(991)]
    batch = good[:500] + bad + good[500:]

    response = ingest_api.post("events", json=batch)

    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["accepted"]) == 991 and Event.objects.count() == 991
    fields = {r["index"]: next(iter(r["errors"])) for r in body["rejected"]}
    assert fields == {500: "customer", 501: "session_id", 502: "customer", 503: "properties", 504: "properties",
                      505: "properties", 506: "price", 507: "price", 508: "customer"}
    words = " ".join(m for r in body["rejected"] for ms in r["errors"].values() for m in ms)
    assert "NUL character" in words and "nested at most 16 levels" in words and "9999999999.99" in words
    assert "must not contain a slash" in words
    identify = ingest_api.post("identify", json={"anonymous_id": "v1", "customer": "a/b"})
    assert identify.status_code == 400 and "slash" in identify.text
    assert ingest_api.post("identify", json={"anonymous_id": "v1", "customer": "."}).status_code == 400


def test_an_empty_required_field_is_rejected_by_index_and_field_and_the_rest_is_stored(ingest_api):
    """An empty string is no value: each of these used to fail the whole batch with a 500 (a NULL the database
    refused), losing the good events beside it."""
    bad = [
        event_payload(customer=""),  # and no anonymous id
        event_payload(customer=None, anonymous_id=""),
        event_payload(customer="", anonymous_id=""),
        event_payload(event_id=""),
        event_payload(type=""),
        event_payload(product=""),  # a product view names its product
        event_payload(type="purchase", order_id=""),
    ]
    good = [event_payload(customer=f"c{i}") for i in range(20)]
    anonymous = event_payload(customer="", anonymous_id="visitor-3")  # the visitor id is enough
    batch = good[:10] + bad + good[10:] + [anonymous]

    response = ingest_api.post("events", json=batch)

    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(body["accepted"]) == sorted(e["event_id"] for e in [*good, anonymous])
    assert Event.objects.count() == 21
    assert Event.objects.get(event_id=anonymous["event_id"]).anonymous_id == "visitor-3"
    assert {r["index"]: r["errors"] for r in body["rejected"]} == {
        10: {"customer": ["must not be empty: send the customer's id, or an anonymous_id"]},
        11: {"anonymous_id": ["must not be empty: send the visitor's id, or a customer"]},
        12: {"customer": ["must not be empty: send the customer's id, or an anonymous_id"],
             "anonymous_id": ["must not be empty: send the visitor's id, or a customer"]},
        13: {"event_id": ["must not be empty"]},
        14: {"type": ["must not be empty"]},
        15: {"product": ["is required for this type"]},
        16: {"order_id": ["is required for this type"]},
    }
    assert [r["event_id"] for r in body["rejected"]][3] == ""


def test_times_a_store_cannot_hold_and_promises_far_from_the_order_are_rejected(ingest_api):
    now = datetime.now(UTC)
    batch = [
        event_payload(type="purchase", order_id="o1", promised_at="9999-12-31T23:59:59-05:00"),
        event_payload(type="purchase", order_id="o2", promised_at="0001-01-01T00:00+05:00"),
        event_payload(type="purchase", order_id="o3", promised_at=(now + timedelta(days=800)).isoformat()),
        event_payload(type="purchase", order_id="o4", promised_at=(now + timedelta(days=5)).isoformat()),
    ]

    body = ingest_api.post("events", json=batch).json()

    assert body["accepted"] == [batch[3]["event_id"]]
    errors = {r["index"]: r["errors"]["promised_at"][0] for r in body["rejected"]}
    assert "between 1900-01-01 and 9000-01-01" in errors[0] and "between 1900-01-01" in errors[1]
    assert "within 730 days of occurred_at" in errors[2]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[]", 400, "at least one event"),
        (b"42", 400, "must be a JSON object"),
        (b"[" + b",".join([b"{}"] * 1001) + b"]", 400, "at most 1000 events"),
        (b'[{"properties": "' + b"x" * (5 * 1024 * 1024) + b'"}]', 413, "larger than"),
    ],
)
def test_malformed_bodies_get_a_4xx_that_names_the_problem_and_change_nothing(ingest_api, body, status, words):
    ingest_api.post("events", json=[event_payload()])

    response = ingest_api.post("events", data=body, headers={"Content-Type": "application/json"})

    assert response.status_code == status
    assert words in response.text
    assert Event.objects.count() == 1


def test_oversized_properties_are_rejected(ingest_api):
    body = ingest_api.post("events", json=[event_payload(properties={"note": "x" * 5000})]).json()

    assert body["rejected"][0]["errors"] == {"properties": ["must be at most 2048 bytes as JSON"]}


def test_events_of_an_anonymous_visitor_follow_them_once_identified(ingest_api):
    before = [event_payload(customer=None, anonymous_id="visitor-7") for _ in range(3)]
    ingest_api.post("events", json=before)

    response = ingest_api.post("identify", json={"anonymous_id": "visitor-7", "customer": "bob"})
    after = event_payload(customer=None, anonymous_id="visitor-7")
    ingest_api.post("events", json=[after])

    assert response.json() == {"customer": "bob", "linked_events": 3}
    assert Event.objects.filter(customer__external_id="bob").count() == 4


def test_identify_refuses_to_move_a_visitor_to_another_customer(ingest_api):
    ingest_api.post("identify", json={"anonymous_id": "visitor-8", "customer": "bob"})

    response = ingest_api.post("identify", json={"anonymous_id": "visitor-8", "customer": "carol"})

    assert response.status_code == 409
    assert "already linked" in response.json()["detail"]
    assert ingest_api.post("identify", json={"anonymous_id": "visitor-8", "customer": "bob"}).status_code == 200



@pytest.mark.parametrize(
    ("method", "body", "content_type", "status"),
    [
        ("post", b"type=page_view", "application/x-www-form-urlencoded", 415),
        ("post", b"\xff\xfe not utf-8", "application/json", 400),
        ("post", b'[{"event_id": NaN}]', "application/json", 400),
        ("get", b"", "application/json", 405),
    ],
)
def test_wrong_media_types_encodings_and_methods_get_a_json_4xx(ingest_api, method, body, content_type, status):
    response = getattr(ingest_api, method)("events", data=body, headers={"Content-Type": content_type})

    assert response.status_code == status
    assert response.json()["detail"]
    assert Event.objects.count() == 0


def test_properties_nested_sixteen_levels_are_stored_and_seventeen_rejected(ingest_api):
    # Written by hand: each `{"a":` or `[` opens a level; a text or a number inside the innermost is no level.
    sixteen = ['{"a":' * 15 + '{"a": "x"}' + "}" * 15, '{"a":' * 15 + '["x", 1]' + "}" * 15]
    seventeen = ['{"a":' * 16 + '{"a": "x"}' + "}" * 16, '{"a":' * 16 + "[1]" + "}" * 16]
    batch = [event_payload(properties=json.loads(text)) for text in sixteen + seventeen]

    body = ingest_api.post("events", json=batch).json()

    assert body["accepted"] == [batch[0]["event_id"], batch[1]["event_id"]]
    assert [(r["index"], r["errors"]) for r in body["rejected"]] == [
        (2, {"properties": ["must be nested at most 16 levels deep"]}),
        (3, {"properties": ["must be nested at most 16 levels deep"]}),
    ]
    stored = dict(Event.objects.values_list("event_id", "properties"))
    assert [stored[uuid.UUID(e["event_id"])] for e in batch[:2]] == [json.loads(text) for text in sixteen]
