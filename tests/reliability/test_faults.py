"""Faults, each ending with counts that prove nothing was lost and nothing doubled."""

import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import requests
from django.db import connection

from behavior.models import ApiKey, Contact, ContactPolicy, Customer, Event, Score, ScoringChunk, ScoringRun
from behavior.services.api_keys import api_key_create
from behavior.services.scoring import scoring_chunks_stalled
from behavior.tasks import score_chunk, score_customers
from campaigns.models import Coupon
from campaigns.tasks import evaluate_campaigns
from config.celery import app
from support.models import OutboxMessage, Ticket
from support.tasks import deliver_outbox
from tests.behavior.test_scoring import END, _expected_rows, _finished, _shop_with_champions
from tests.campaigns.conftest import NOW, offer, scored_customers  # noqa: F401  (a fixture)
from tests.conftest import Api, Workers, free_port
from tests.factories import CustomerFactory
from tests.support.conftest import helpdesk  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


class PrivateRedis:
    """A Redis server of this test's own, keeping nothing on disk, that the test can restart."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no"], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout != b"PONG\n":
            assert time.monotonic() < deadline, "the private Redis did not start"
            time.sleep(0.05)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def private_redis():
    redis = PrivateRedis()
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def gunicorn(tmp_path):
    """start(env) -> (base URL, log) of gunicorn serving the app from a process of its own, as deployed.

    One sync worker, so every request reaches the process that served the one before and, with
    DATABASE_CONN_MAX_AGE > 0, reuses its database connection.
    """
    servers = []

    def start(env: dict) -> tuple[str, Path]:
        port, log = free_port(), tmp_path / f"gunicorn-{len(servers)}.log"
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", "1", "--timeout", "60", "--chdir", str(Path(__file__).resolve().parents[2])],
            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        servers.append(server)
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, log.read_text()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                return f"http://127.0.0.1:{port}", log
            assert time.monotonic() < deadline, "gunicorn did not listen within 30 s"
            time.sleep(0.1)

    yield start
    for server in servers:
        server.terminate()
        server.wait(timeout=30)


def _wait_for(condition, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def champions(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path  # before the workers start: they are given it
    return _shop_with_champions()


def test_a_broker_restart_mid_run_loses_queued_chunks_and_the_resend_completes_the_run(
        champions, workers, private_redis):
    workers.start(CELERY_BROKER_URL=private_redis.url)
    with app.connection_for_write(private_redis.url) as broker:
        score_customers.apply_async((END.isoformat(), 150), connection=broker)  # 20 chunks
    _wait_for(lambda: ScoringChunk.objects.filter(finished_at__isnull=False).exists())

    private_redis.stop()  # keeps nothing on disk: the queued chunks are gone
    private_redis.start()
    time.sleep(3)
    run = ScoringRun.objects.get()
    left = run.chunk_rows.filter(finished_at__isnull=True).count()
    assert left > 0 and _finished(run.pk, seconds=2).status == "running"  # stuck without help

    # What beat's resend_stalled_chunks does every five minutes, without the wait.
    with app.connection_for_write(private_redis.url) as broker:
        for chunk in scoring_chunks_stalled(older_than=timedelta(0)):
            score_chunk.apply_async((run.pk, chunk.first, chunk.last), connection=broker)
    run = _finished(run.pk, seconds=120)

    customers = Customer.objects.count()
    assert run.status == "succeeded", run.error
    assert run.customers == customers and not run.chunk_rows.filter(finished_at__isnull=True).exists()
    assert Score.objects.filter(run=run).count() == _expected_rows()
    assert Score.objects.values("customer", "target").distinct().count() == _expected_rows()


def test_a_worker_killed_during_campaign_evaluation_loses_nothing_and_doubles_nothing(
        workers, scored_customers):  # noqa: F811 (the fixture imported above)
    ContactPolicy.objects.update_or_create(pk=1, defaults={"max_contacts": 1, "per_days": 7})
    scored_customers([0.5 + (i % 500) / 1000 for i in range(6_000)])
    first = offer(name="first", priority=2, holdout_percent=10)
    second = offer(name="second", priority=1, holdout_percent=10)
    run = ScoringRun.objects.create(as_of=NOW, status=ScoringRun.Status.SUCCEEDED)
    doomed = workers.start(CELERY_VISIBILITY_TIMEOUT="3")

    evaluation = evaluate_campaigns.delay(run.pk)
    _wait_for(first.assignments.exists)  # the first campaign is committed; the second is under way
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    assert not second.assignments.exists()  # killed in the middle: the second campaign's work rolled back
    workers.start(CELERY_VISIBILITY_TIMEOUT="3")  # gets the task again
    evaluation.get(timeout=120)  # the redelivered task's result: it has run to the end and committed

    audience = set(Customer.objects.values_list("pk", flat=True))
    treated = {c.pk: set(c.assignments.filter(group="treatment").values_list("customer_id", flat=True))
               for c in (first, second)}
    control = {c.pk: set(c.assignments.filter(group="control").values_list("customer_id", flat=True))
               for c in (first, second)}
    assert treated[first.pk] | control[first.pk] == audience
    assert treated[second.pk] == audience - treated[first.pk] - control[second.pk]  # nobody lost
    assert max(Counter(Contact.objects.values_list("customer_id", flat=True)).values()) == 1  # nobody doubled
    assert Contact.objects.count() == len(treated[first.pk]) + len(treated[second.pk])
    assert Coupon.objects.count() == Contact.objects.count()


def test_database_connections_dropped_during_batch_ingest_answer_503_to_resend_and_write_all_or_nothing(
        live_server, make_api, app_log):
    api = make_api(ApiKey.Scope.INGEST)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        own = cursor.fetchone()[0]
    database = connection.settings_dict["NAME"]
    stop = threading.Event()
    killed = []

    def kill_connections():
        with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as killer:
            while not stop.is_set():
                rows = killer.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> %s "
                    "AND state = 'active'", [database, own]).fetchall()
                killed.extend(rows)
                time.sleep(0.02)

    occurred = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    batches = [[{"event_id": str(uuid.uuid4()), "type": "product_view", "customer": f"c{b}-{i % 50}",
                 "product": f"sku-{i % 20}", "occurred_at": occurred} for i in range(500)] for b in range(20)]
    killer = threading.Thread(target=kill_connections)
    killer.start()
    answers: Counter = Counter()  # status codes; None for no answer at all
    busy = []  # the 503s' Retry-After headers and error words
    try:
        for batch in batches:
            for _attempt in range(200):  # a client resends until it hears back; event ids make that safe
                before = Event.objects.count()
                try:
                    response = api.post("events", json=batch, timeout=30)
                except requests.ConnectionError:
                    response = None
                answers[None if response is None else response.status_code] += 1
                if response is not None and response.status_code == 200:
                    assert len(response.json()["accepted"]) + len(response.json()["duplicates"]) == 500
                    break
                if response is not None and response.status_code == 503:
                    busy.append((response.headers.get("Retry-After"), response.json()["detail"]))
                assert Event.objects.count() - before in (0, 500)  # all of the batch or none of it
    finally:
        stop.set()
        killer.join()

    # The server retries a batch once on a new connection; when that fails too it answers 503, never 500.
    assert set(answers) <= {200, 503}, answers
    assert answers[200] == 20 and killed  # the fault really happened
    assert all(after is not None and int(after) >= 1 and "send it again" in words for after, words in busy), busy
    assert len(busy) == answers[503]
    assert Event.objects.count() == 20 * 500
    assert Event.objects.values("event_id").distinct().count() == 20 * 500
    # PostgreSQL's error text quotes the row it was loading (event id, type, customer): none of it is logged.
    logged = app_log.getvalue()
    assert "Service Unavailable: /api/v1/events" in logged or not answers[503]
    assert not any(event["event_id"] in logged or event["customer"] in logged for batch in batches for event in batch)


def test_with_the_broker_down_tickets_answer_201_once_each_and_are_delivered_once_it_is_back(
        workers, private_redis, gunicorn, helpdesk):  # noqa: F811 (the fixture imported above)
    desk = helpdesk()
    customers = CustomerFactory.create_batch(8)
    url, log = gunicorn({**workers.env, "CELERY_BROKER_URL": private_redis.url})
    shop = Api(url, api_key_create(name="the shop's server", scopes=[ApiKey.Scope.INGEST, ApiKey.Scope.CHECKOUT])[1])

    def ask(customer, request_id):
        started = time.monotonic()
        response = shop.post(f"customers/{customer.external_id}/tickets", timeout=30,
                             json={"subject": "Where is my parcel?", "request_id": str(request_id)})
        return response, time.monotonic() - started

    # The first ticket's hand-off reaches the broker, but no worker takes it before the broker restarts
    # empty; the next six are opened while it is down.
    before, _ = ask(customers[0], uuid.uuid4())
    private_redis.stop()
    request_ids = [uuid.uuid4() for _ in customers[1:7]]
    opened = [ask(customer, request_id) for customer, request_id in zip(customers[1:7], request_ids, strict=True)]
    again = [ask(customer, request_id) for customer, request_id in zip(customers[1:7], request_ids, strict=True)]

    assert before.status_code == 201, before.text
    assert [r.status_code for r, _ in opened] == [201] * 6, [r.text for r, _ in opened]
    assert max(seconds for _, seconds in opened) < 5  # the failed hand-off is bounded, not kombu's long retry
    assert [r.status_code for r, _ in again] == [200] * 6  # the client's resend finds its ticket
    assert [r.json()["ticket"] for r, _ in again] == [r.json()["ticket"] for r, _ in opened]
    assert Ticket.objects.count() == 7 and OutboxMessage.objects.filter(delivered_at__isnull=True).count() == 7
    assert log.read_text().count("broker unreachable") == 6 and not desk.received

    private_redis.start()
    workers.start(CELERY_BROKER_URL=private_redis.url)
    # What beat's every-minute delivery does once the broker is back, twice at once as a late beat might.
    with app.connection_for_write(private_redis.url) as broker:
        sweeps = [deliver_outbox.apply_async(connection=broker) for _ in range(2)]
    assert sum(sweep.get(timeout=60)["delivered"] for sweep in sweeps) == 7
    # With the broker back, a new ticket's own hand-off wakes a sender again.
    after, _ = ask(customers[7], uuid.uuid4())
    assert after.status_code == 201, after.text
    _wait_for(lambda: not OutboxMessage.objects.filter(delivered_at__isnull=True).exists())

    tickets = set(Ticket.objects.values_list("pk", flat=True))
    assert len(tickets) == 8 and Ticket.objects.values("customer").distinct().count() == 8  # none doubled
    assert sorted(d.ticket for d in desk.received) == sorted(tickets)  # each delivered exactly once
    assert len({d.key for d in desk.received}) == 8 and {d.event for d in desk.received} == {"ticket.opened"}


def test_with_the_one_redis_of_broker_results_and_cache_down_a_ticket_answers_201_once_and_is_stored_once(
        private_redis, gunicorn, helpdesk, settings, tmp_path):  # noqa: F811 (the fixture imported above)
    """As the README's production example has it: broker, result backend and cache on one Redis. Celery's Redis
    result backend retried for 19 s, then raised a RuntimeError the hand-over let through: a 500, for a ticket
    that was stored, so the client's resend could open a second one."""
    helpdesk()
    customers = CustomerFactory.create_batch(3)
    one_redis = {"CELERY_BROKER_URL": private_redis.url, "CELERY_RESULT_BACKEND": private_redis.url,
                 "REDIS_URL": private_redis.url}
    url, log = gunicorn({**Workers(settings, tmp_path).env, **one_redis})
    shop = Api(url, api_key_create(name="the shop's server", scopes=[ApiKey.Scope.INGEST, ApiKey.Scope.CHECKOUT])[1])

    def ask(customer, request_id):
        started = time.monotonic()
        response = shop.post(f"customers/{customer.external_id}/tickets", timeout=60,
                             json={"subject": "Where is my parcel?", "request_id": str(request_id)})
        return response, time.monotonic() - started

    before, _ = ask(customers[0], uuid.uuid4())  # the process has met the result backend while it was up
    private_redis.stop()
    request_ids = [uuid.uuid4() for _ in customers[1:]]
    opened = [ask(customer, request_id) for customer, request_id in zip(customers[1:], request_ids, strict=True)]
    again = [ask(customer, request_id) for customer, request_id in zip(customers[1:], request_ids, strict=True)]

    assert before.status_code == 201, before.text
    assert [r.status_code for r, _ in opened] == [201, 201], log.read_text()[-3000:]
    assert max(seconds for _, seconds in opened) < 5
    assert [r.status_code for r, _ in again] == [200, 200]
    assert [r.json()["ticket"] for r, _ in again] == [r.json()["ticket"] for r, _ in opened]
    assert Ticket.objects.count() == 3 and OutboxMessage.objects.filter(delivered_at__isnull=True).count() == 3
    assert log.read_text().count("broker unreachable") == 2


def test_the_first_request_after_the_database_killed_idle_connections_is_served(settings, tmp_path, gunicorn):
    url, log = gunicorn({**Workers(settings, tmp_path).env, "DATABASE_CONN_MAX_AGE": "60"})
    api = Api(url, api_key_create(name="ingest", scopes=[ApiKey.Scope.INGEST])[1])
    occurred = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    batches = [[{"event_id": str(uuid.uuid4()), "type": "product_view", "customer": f"c{b}-{i % 10}",
                 "product": f"sku-{i % 5}", "occurred_at": occurred} for i in range(50)] for b in range(10)]

    answers, killed = [], []
    for warm, after_kill in zip(batches[::2], batches[1::2], strict=True):
        answers.append(api.post("events", json=warm, timeout=30).status_code)  # the server keeps its connection
        with connection.cursor() as cursor:  # as a restart, a failover or an idle timeout of PostgreSQL would
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            killed.append(len(cursor.fetchall()))
        answers.append(api.post("events", json=after_kill, timeout=30).status_code)

    assert min(killed) >= 1  # each round really took the server's connection away
    assert answers == [200] * 10, log.read_text()[-3000:]
    assert Event.objects.count() == 10 * 50 == Event.objects.values("event_id").distinct().count()


def test_with_the_broker_down_a_scoring_run_still_succeeds_and_skips_only_the_hand_offs(champions, settings, tmp_path):
    env = {**Workers(settings, tmp_path).env, "CELERY_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}
    # The cycle in one process, as `manage.py score` runs it; its listeners hand campaigns and support to workers.
    done = subprocess.run([sys.executable, "manage.py", "score", "--as-of", END.isoformat(), "--top", "0", "-v", "0"],
                          env=env, capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[2])

    assert done.returncode == 0, done.stderr[-3000:]
    run = ScoringRun.objects.get()
    assert run.status == "succeeded" and run.customers == Customer.objects.count(), run.error
    assert Score.objects.filter(run=run).count() == _expected_rows()
    assert done.stderr.count("broker unreachable") == 2  # campaigns and support, each left for the next run
