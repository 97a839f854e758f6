"""One scoring run and one campaign evaluation, each spread over worker processes by queue, equal one process's work."""

import time

import pytest

from behavior.models import Contact, ContactPolicy, Customer, Score, ScoringRun
from behavior.services.scoring import scoring_cycle_run
from behavior.tasks import score_customers
from campaigns.models import Assignment, Coupon
from campaigns.services import campaigns_evaluate
from config.celery import app
from tests.behavior.test_scoring import END, _finished, _shop_with_champions
from tests.campaigns.conftest import offer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def champions(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path  # before the workers start: they are given it
    return _shop_with_champions()


def _outcome() -> tuple[dict, set]:
    scores = {(c, t): round(p, 12) for c, t, p in Score.objects.values_list("customer_id", "target", "probability")}
    assignments = set(Assignment.objects.values_list("campaign_id", "customer_id", "group"))
    return scores, assignments


def test_scoring_and_campaigns_on_workers_by_queue_give_what_one_process_gives(champions, workers):
    Customer.objects.update(marketing_consent=True)
    ContactPolicy.objects.update_or_create(pk=1, defaults={"max_contacts": 1, "per_days": 7})
    offer(name="capped", condition={"field": "score.purchase_intent", "op": "gte", "value": 0.05}, holdout_percent=20,
          max_assignments=200, priority=2)
    offer(name="repeat buyers", condition={"field": "feature.orders", "op": "gte", "value": 1}, priority=1)
    one_process = scoring_cycle_run(as_of=END, chunk_customers=300)
    campaigns_evaluate(run=one_process)
    expected_scores, expected_assignments = _outcome()
    assert len(expected_assignments) > 100
    Assignment.objects.all().delete()  # the same period again must assign anew, with the budgets unspent
    Contact.objects.all().delete()
    app.control.purge()  # the in-process run's signal queued a campaign task no worker should see

    scorers = [workers.start(queues="scoring"), workers.start(queues="scoring")]
    # Campaign audiences in ranges of 300 customers (10 tasks), shared by two workers; one of them assigns.
    evaluators = [workers.start(queues="campaigns", FORESIGHT_AUDIENCE_CHUNK_CUSTOMERS="300") for _ in range(2)]
    workers.start(queues="celery,support")
    run = _finished(score_customers.delay(END.isoformat(), 300).get(timeout=60), seconds=120)  # 10 chunks
    deadline = time.monotonic() + 60
    while Assignment.objects.count() < len(expected_assignments) and time.monotonic() < deadline:
        time.sleep(0.2)

    assert run.status == "succeeded" and run.pk != one_process.pk
    assert _outcome() == (expected_scores, expected_assignments)
    assert Coupon.objects.count() == Assignment.objects.filter(group="treatment").count()
    logs = [log.read_text() for log in sorted(workers.log_dir.glob("celery-worker-*.log"))]
    assert all("score_chunk[" in log for log in logs[:2])  # both scoring workers took chunks
    assert all("campaign_audiences[" in log for log in logs[2:4])  # both evaluators took audience ranges
    assert ScoringRun.objects.count() == 2 and all(w.poll() is None for w in scorers + evaluators)
