"""Concurrent writers on PostgreSQL (the embedded SQLite default serves one writer at a time)."""

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from django.db import connection

from behavior.models import Customer, Event
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


@contextmanager
def sorting_dear():
    """The live server's connections plan as for big batches: grouping by hashing rather than sorting."""
    database = connection.settings_dict["NAME"]
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER DATABASE "{database}" SET enable_sort = off')  # read by each new connection
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'ALTER DATABASE "{database}" RESET enable_sort')


def test_new_customers_are_created_in_the_order_of_their_ids_whatever_the_batch_order(ingest_api):
    """Two batches that name the same new customers each insert them, holding each new row's key until they
    commit: in different orders, each can wait for a row the other holds, a deadlock (a 500). One order for
    all batches, the ids', makes the second wait at its first shared customer instead; the rows' primary keys,
    drawn as they are inserted, show the order.

    The planner groups a small batch by sorting, which happens to give that order; a bigger one it may group by
    hashing, which gives none. Sorting is made dear here, as it is for the planner then."""
    names = [f"new-{i:03d}" for i in range(120)]
    random.Random(26).shuffle(names)

    with sorting_dear():
        assert ingest_api.post("events", json=[event_payload(customer=name) for name in names]).status_code == 200

    assert list(Customer.objects.order_by("pk").values_list("external_id", flat=True)) == sorted(names)


def test_batches_naming_the_same_new_customers_in_other_orders_are_all_stored(make_api):
    clients = [make_api("ingest") for _ in range(4)]
    orders = random.Random(7)

    def send(api, names):
        return api.post("events", json=[event_payload(customer=name) for name in names]).status_code

    codes, sent = [], []
    with sorting_dear():
        for round_ in range(10):
            names = [f"r{round_}-c{i:03d}" for i in range(150)]
            # Of different sizes: a hash table of another size holds the same customers in another order.
            batches = [orders.sample(names, 30 + 40 * i) for i in range(len(clients))]
            sent += [name for batch in batches for name in batch]
            with ThreadPoolExecutor(len(clients)) as pool:
                codes += list(pool.map(send, clients, batches))

    assert codes == [200] * 40
    assert Customer.objects.count() == len(set(sent)) and Event.objects.count() == len(sent)


def test_an_erasure_while_events_arrive_leaves_no_event_behind(make_api, admin_api):
    """Three storefronts send the customer's events (by id and by their linked visitor id) while the customer is
    erased again and again; afterwards every stored event belongs to a customer that exists."""
    clients = [make_api("ingest") for _ in range(3)]
    stop = threading.Event()

    def send(api):
        codes = []
        while not stop.is_set():
            codes.append(api.post("identify", json={"anonymous_id": "visitor-9", "customer": "c9"}).status_code)
            batch = [event_payload(customer="c9") for _ in range(20)]
            batch += [event_payload(customer=None, anonymous_id="visitor-9") for _ in range(5)]
            batch += [event_payload(customer=f"other-{i}") for i in range(5)]
            codes.append(api.post("events", json=batch).status_code)
        return codes

    with ThreadPoolExecutor(3) as pool:
        senders = [pool.submit(send, api) for api in clients]
        erasures = []
        for _ in range(12):
            time.sleep(0.2)
            erasures.append(admin_api.delete("customers/c9").status_code)
        stop.set()
        codes = [code for sender in senders for code in sender.result()]

    assert set(codes) == {200} and erasures.count(204) >= 6, (set(codes), erasures)
    orphans = Event.objects.filter(customer__isnull=False).exclude(customer_id__in=Customer.objects.values("pk"))
    assert orphans.count() == 0
    assert Event.objects.filter(customer__external_id__startswith="other-").count() == 5 * len(codes) / 2


def test_an_event_after_the_erasure_starts_a_new_customer_with_nothing_from_before(ingest_api, admin_api):
    ingest_api.post("identify", json={"anonymous_id": "visitor-1", "customer": "c1"})
    ingest_api.post("events", json=[event_payload(customer="c1", type="purchase", order_id="o-1")])
    before = Customer.objects.get(external_id="c1")
    assert admin_api.delete("customers/c1").status_code == 204

    ingest_api.post("events", json=[event_payload(customer="c1"),
                                    event_payload(customer=None, anonymous_id="visitor-1")])

    after = Customer.objects.get(external_id="c1")
    assert after.pk != before.pk
    assert list(Event.objects.filter(customer=after).values_list("type", flat=True)) == ["product_view"]
    assert Event.objects.filter(customer__isnull=True, anonymous_id="visitor-1").count() == 1  # the link went too
    assert not Event.objects.filter(order_id="o-1").exists()
