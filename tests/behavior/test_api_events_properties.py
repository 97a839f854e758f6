"""A property of event ingest, over real HTTP: whatever a batch mixes, good events are stored and bad ones are
rejected by index and field, and the answer is never a 5xx.

Hypothesis draws batches of events a store can hold and events broken in one field each (NUL characters,
numbers past their columns, times no store holds, JSON nested too deep, customer ids with a slash, unknown
fields and types, things that are not events at all). Seeded, and bounded to stay well under a minute.
"""

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from behavior.core.event_types import EVENT_TYPES, REQUIRED_FIELDS
from behavior.models import ApiKey, Event

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime.now(UTC)
SAFE_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="/\x00", exclude_categories=["Cs"]),
                    min_size=1, max_size=40)
ID_TEXT = st.from_regex(r"[A-Za-z0-9_.-]{1,40}", fullmatch=True).filter(lambda s: s.strip("."))
# Short, so that even the largest drawn properties stay under FORESIGHT_MAX_PROPERTIES_BYTES (2,048).
PROPERTY_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00",
                                               exclude_categories=["Cs", "Cc"]), max_size=8)
JSON_LEAF = (st.none() | st.booleans() | st.integers(-(2**53), 2**53)
             | st.floats(allow_nan=False, allow_infinity=False) | PROPERTY_TEXT)
PROPERTIES = st.dictionaries(PROPERTY_TEXT, st.recursive(
    JSON_LEAF, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(PROPERTY_TEXT, inner, max_size=3),
    max_leaves=4), max_size=3)


def _time(at: datetime, offset_hours: int) -> str:
    return at.astimezone(timezone(timedelta(hours=offset_hours))).isoformat()


@st.composite
def good_events(draw) -> dict:
    """An event the store can hold: every field within its bounds, the ones its type needs present."""
    event_type = draw(st.sampled_from(EVENT_TYPES))
    occurred = NOW - timedelta(seconds=draw(st.integers(3_600, 300 * 86_400)))
    event = {"type": event_type, "occurred_at": _time(occurred, draw(st.integers(-12, 14)))}
    if draw(st.booleans()):
        event["customer"] = draw(ID_TEXT)
    else:
        event["anonymous_id"] = draw(SAFE_TEXT)
    optional = {
        "product": ID_TEXT, "category": SAFE_TEXT, "order_id": SAFE_TEXT, "session_id": SAFE_TEXT,
        "price": st.decimals(0, 9_999_999_999, places=2).map(float), "quantity": st.integers(1, 1_000_000),
        "rating": st.integers(1, 5), "properties": PROPERTIES,
        "promised_at": st.integers(-700, 700).map(lambda days: _time(occurred + timedelta(days=days), 0)),
    }
    needed = set(REQUIRED_FIELDS.get(event_type, ()))
    for name, values in optional.items():
        if name in needed or draw(st.booleans()):
            event[name] = draw(values)
    return event


# One way to break an event, and the field its rejection must name.
NUL = "a\x00b"
BREAKERS = [
    *[(name, lambda e, name=name: {**e, name: NUL}) for name in
      ("customer", "anonymous_id", "product", "category", "order_id", "session_id")],
    ("event_id", lambda e: {**e, "event_id": NUL}),
    ("event_id", lambda e: {**e, "event_id": "not-a-uuid"}),
    ("type", lambda e: {**e, "type": NUL}),
    ("type", lambda e: {**e, "type": "teleport"}),
    ("customer", lambda e: {**e, "customer": "a/b"}),
    ("customer", lambda e: {**e, "customer": "x" * 256}),
    ("properties", lambda e: {**e, "properties": {"note": NUL}}),
    ("properties", lambda e: {**e, "properties": {NUL: 1}}),
    ("properties", lambda e: {**e, "properties": _deep(17)}),
    ("properties", lambda e: {**e, "properties": _deep(300)}),
    ("properties", lambda e: {**e, "properties": ["not", "an", "object"]}),
    *[("price", lambda e, n=n: {**e, "price": n}) for n in (1e10, 9999999999.995, 2**63, 1e308, -1, "12")],
    *[("quantity", lambda e, n=n: {**e, "quantity": n}) for n in (0, 2**63, 1.5, "2")],
    *[("rating", lambda e, n=n: {**e, "rating": n}) for n in (0, 6, 2**63)],
    *[(name, lambda e, name=name, t=t: {**e, name: t}) for name in ("occurred_at", "promised_at") for t in
      ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "2026-01-01T00:00:00", NUL, 20260101)],
    ("occurred_at", lambda e: {**e, "occurred_at": _time(NOW + timedelta(days=1), 0)}),
    ("order_id", lambda e: {**{k: v for k, v in e.items() if k != "order_id"}, "type": "purchase"}),
    ("colour", lambda e: {**e, "colour": "red"}),
    ("event", lambda e: [e]),
    ("event", lambda e: NUL),
]


def _deep(levels: int) -> dict:
    node: dict = {}
    for _ in range(levels - 1):
        node = {"next": node}
    return node


@st.composite
def bad_events(draw) -> tuple[object, str]:
    field, breaker = draw(st.sampled_from(BREAKERS))
    return breaker(draw(good_events())), field


BATCHES = st.lists(st.one_of(good_events().map(lambda e: (e, None)), bad_events()), min_size=1, max_size=25)


@given(batch=BATCHES)
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_any_batch_stores_its_good_events_and_rejects_each_bad_one_by_index_and_field(batch, make_api_once):
    records = []
    for event, _ in batch:  # ids are made here, not drawn: no two examples send the same id by chance
        if isinstance(event, dict) and "event_id" not in event:
            event = {"event_id": str(uuid.uuid4()), **event}
        records.append(event)
    good = [records[i]["event_id"] for i, (_, broken) in enumerate(batch) if broken is None]

    response = make_api_once.post("events", json=records)

    assert response.status_code < 500, response.text
    assert response.status_code == (200 if good else 400), response.text
    report = response.json()
    rejected = {r["index"]: r["errors"] for r in report["rejected"]}
    for index, (_, broken) in enumerate(batch):
        if broken is not None:
            assert broken in rejected.get(index, {}), (index, broken, records[index], rejected.get(index))
    assert sorted(rejected) == [i for i, (_, broken) in enumerate(batch) if broken is not None]
    assert sorted(report["accepted"]) == sorted(good)
    assert Event.objects.filter(event_id__in=good).count() == len(good)
    sent_ids = [r.get("event_id") for r in records if isinstance(r, dict)]
    stored_bad = [i for i in sent_ids if i not in good and _is_uuid(i)]
    assert not Event.objects.filter(event_id__in=stored_bad).exists()


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@pytest.fixture
def make_api_once(make_api):
    """One ingest client for all of a test's examples: Hypothesis runs them inside one test."""
    return make_api(ApiKey.Scope.INGEST)
