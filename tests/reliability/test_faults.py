"""Faults, each ending with counts that prove nothing was lost and nothing doubled."""

import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import requests
from django.db import connection

from behavior.models import ApiKey, Contact, ContactPolicy, Customer, Event, Score, ScoringChunk, ScoringRun
from behavior.services.scoring import scoring_chunks_stalled
from behavior.tasks import score_chunk, score_customers
from campaigns.models import Coupon
from campaigns.tasks import evaluate_campaigns
from config.celery import app
from tests.behavior.test_scoring import END, _expected_rows, _finished, _shop_with_champions
from tests.campaigns.conftest import NOW, offer, scored_customers  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A Redis server of this test's own, keeping nothing on disk, that the test can restart."""

    def __init__(self):
        self.port = _free_port()
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


def test_database_connections_dropped_during_batch_ingest_write_all_or_nothing(live_server, make_api):
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
    failures = 0
    try:
        for batch in batches:
            for _attempt in range(50):  # a client resends until it hears back; event ids make that safe
                before = Event.objects.count()
                try:
                    response = api.post("events", json=batch, timeout=30)
                except requests.ConnectionError:
                    response = None
                if response is not None and response.status_code == 200:
                    assert len(response.json()["accepted"]) + len(response.json()["duplicates"]) == 500
                    break
                failures += 1
                assert Event.objects.count() - before in (0, 500)  # all of the batch or none of it
    finally:
        stop.set()
        killer.join()

    assert killed and failures > 0  # the fault really happened
    assert Event.objects.count() == 20 * 500
    assert Event.objects.values("event_id").distinct().count() == 20 * 500
