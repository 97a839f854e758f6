"""Concurrent writers on PostgreSQL (the embedded SQLite default serves one writer at a time)."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from behavior.models import Event
from tests.factories import event_payload

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_same_batch_sent_twice_at_once_is_stored_once(make_api):
    batch = [event_payload(customer=f"c{i}") for i in range(200)]
    clients = [make_api("ingest"), make_api("ingest")]

    with ThreadPoolExecutor(2) as pool:
        bodies = [r.json() for r in pool.map(lambda api: api.post("events", json=batch), clients)]

    accepted = [len(b["accepted"]) for b in bodies]
    duplicates = [len(b["duplicates"]) for b in bodies]
    assert sum(accepted) == 200, bodies
    assert sum(accepted) + sum(duplicates) == 400
    assert Event.objects.count() == 200
