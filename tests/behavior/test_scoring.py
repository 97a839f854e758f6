"""The scoring cycle: each target's population scored by its champion, reasons where they are acted on, safe to
rerun; a target without a champion gets one before the run scores it, never a reason to score nobody."""

import csv
import io
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Min

from behavior.core.features import build_features, model_features, training_frame
from behavior.core.reasons import reason_text
from behavior.core.scorers import SCORERS, scorer_fit
from behavior.core.training import choose_cutoffs, train
from behavior.models import Customer, Event, ModelVersion, Score, ScoringChunk, ScoringRun, Target
from behavior.selectors import customers_frame, events_frame
from behavior.services.registry import model_version_promote, model_version_register
from behavior.services.scoring import scoring_chunks_stalled, scoring_cycle_run, scoring_run_start
from behavior.signals import scoring_finished
from behavior.tasks import score_customers
from foresight_demo.services import shop_simulate

END = datetime(2026, 6, 1, tzinfo=UTC)
FEATURES = model_features(timedelta(days=7))


def _definition(name: str):
    return Target.objects.get(name=name).definition()


def _frames(name: str):
    events, customers = events_frame(), customers_frame()
    split = choose_cutoffs(events["occurred_at"].min(), END, _definition(name))
    X, y, _ = training_frame(events, split.training, _definition(name), customers)
    X_valid, y_valid, _ = training_frame(events, split.validation, _definition(name), customers)
    return X, y, X_valid, y_valid


_FITTED: dict = {}  # what the first shop of a process fitted: the same seeded shop fits the same again


def _shop_with_champions(support: bool = True):
    """XGBoost for purchase intent; the recency/frequency rule for support risk (unless `support` is False).

    Fitting is these tests' setup, not their subject (test_training's and test_learning's): it runs once in a
    process, and later shops register what it fitted."""
    shop_simulate(customers=3_000, days=120, seed=4, end=END, products=300)
    if not _FITTED:
        X, y, X_valid, y_valid = _frames("purchase_intent")
        model = train(X[FEATURES], y, X_valid[FEATURES], y_valid)
        X, y, _, _ = _frames("support_risk")
        params = scorer_fit(SCORERS["recency_frequency"], X, y.to_numpy(), _definition("support_risk"))
        _FITTED.update(booster=model.booster, threshold=model.threshold, params=params)
    purchase = _champion("purchase_intent", kind="xgboost", booster=_FITTED["booster"], feature_names=FEATURES,
                         threshold=_FITTED["threshold"])
    if not support:
        return purchase, None
    rule = _champion("support_risk", kind="recency_frequency", booster=None, feature_names=[], threshold=0.2,
                     params=_FITTED["params"])
    return purchase, rule


def _champion(name: str, **fitted) -> ModelVersion:
    version = model_version_register(definition=_definition(name), metrics={}, **fitted)
    return model_version_promote(version=version)


def _population(name: str, as_of: datetime = END) -> set[int]:
    """The customers a default target scores at `as_of`, read from the events with the ORM (not the features):
    purchase intent, a customer event in the 90 days before; support risk, an order bought in the last 90 days
    and not delivered yet, or an order delivered in the last 14 days."""
    before = Event.objects.filter(occurred_at__lt=as_of, customer__isnull=False)
    if name == "purchase_intent":
        return set(before.filter(occurred_at__gt=as_of - timedelta(days=90)).values_list("customer", flat=True))
    assert name == "support_risk"
    delivered = before.filter(type="order_delivered")
    landed = set(delivered.filter(occurred_at__gt=as_of - timedelta(days=14)).values_list("customer", flat=True))
    orders = (before.filter(type="purchase").exclude(order_id="").exclude(order_id__isnull=True)
              .exclude(order_id__in=delivered.values("order_id")).values("order_id")
              .annotate(bought=Min("occurred_at")).filter(bought__gt=as_of - timedelta(days=90)))
    flying = set(before.filter(type="purchase", order_id__in=orders.values("order_id"))
                 .values_list("customer", flat=True))
    return landed | flying


def _expected_rows(as_of: datetime = END) -> int:
    return len(_population("purchase_intent", as_of)) + len(_population("support_risk", as_of))


def _finished(run_id: int, seconds: float = 60) -> ScoringRun:
    """The run once it is no longer running (or as it is when the time is up)."""
    deadline = time.monotonic() + seconds
    run = ScoringRun.objects.get(pk=run_id)
    while run.status == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
        run.refresh_from_db()
    return run


@pytest.fixture
def shop(settings, tmp_path, django_db_blocker):
    settings.MEDIA_ROOT = tmp_path
    return _shop_with_champions()


@pytest.mark.django_db
def test_each_population_gets_its_scores_and_a_rerun_changes_nothing(shop):
    purchase, support = shop
    heard = []
    scoring_finished.connect(lambda run, **kw: heard.append(run.pk), weak=False, dispatch_uid="test-heard")

    run = scoring_cycle_run(as_of=END, chunk_customers=1_000)
    first = dict(Score.objects.values_list("customer_id", "probability").filter(target="purchase_intent"))
    again = scoring_cycle_run(as_of=END, chunk_customers=700)

    customers = Customer.objects.count()
    assert (run.status, run.customers, run.chunks) == ("succeeded", customers, 3)
    for target in ("purchase_intent", "support_risk"):
        scored = set(Score.objects.filter(target=target).values_list("customer_id", flat=True))
        assert scored == _population(target) and 0 < len(scored) < customers
    assert dict(Score.objects.values_list("customer_id", "probability").filter(target="purchase_intent")) == first
    assert set(run.stage_seconds) >= {"read", "features", "predict_purchase_intent", "write"}
    assert run.model_versions == {"purchase_intent": purchase.pk, "support_risk": support.pk}
    assert run.skipped == {} and run.norms["usual_ship_days"] > 0
    assert Score.objects.filter(run=again).count() == Score.objects.count() == _expected_rows()
    scoring_finished.disconnect(dispatch_uid="test-heard")


@pytest.mark.django_db
def test_customers_who_leave_a_population_lose_its_score(shop):
    scoring_cycle_run(as_of=END)
    before = set(Score.objects.filter(target="support_risk").values_list("customer_id", flat=True))
    later = END + timedelta(days=30)  # a month without events: most orders in flight have landed long ago

    scoring_cycle_run(as_of=later)

    for target in ("purchase_intent", "support_risk"):
        scored = set(Score.objects.filter(target=target).values_list("customer_id", flat=True))
        assert scored == _population(target, later)
    assert len(_population("support_risk", later)) < len(before) / 2


@pytest.mark.django_db
def test_a_target_without_a_champion_gets_one_before_the_run_scores_it(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    purchase, _ = _shop_with_champions(support=False)
    out = io.StringIO()

    call_command("score", "--as-of", END.isoformat(), stdout=out, verbosity=0)

    run = ScoringRun.objects.get()
    risk = ModelVersion.objects.get(target="support_risk", status="champion")
    assert run.status == "succeeded" and run.skipped == {}
    assert run.model_versions == {"purchase_intent": purchase.pk, "support_risk": risk.pk}  # the champion kept
    assert risk.validated_at is not None and risk.validated_at + timedelta(days=14) <= END  # validated: 120 days
    assert f"support_risk: #{risk.pk} " in out.getvalue()
    assert Score.objects.filter(target="support_risk").count() == len(_population("support_risk"))


@pytest.mark.django_db
def test_a_rerun_rewrites_the_scores_in_place_without_touching_an_index(shop):
    scoring_cycle_run(as_of=END)
    scoring_cycle_run(as_of=END)

    with connection.cursor() as cursor:  # this transaction's own counts
        cursor.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = %s",
                       [Score._meta.db_table])
        updated, heap_only = cursor.fetchone()
    assert updated == _expected_rows()
    assert heap_only >= 0.95 * updated  # room on the page and no indexed column changed


@pytest.mark.django_db
def test_customers_at_or_above_the_threshold_get_their_reasons_in_words(shop):
    purchase, _ = shop

    scoring_cycle_run(as_of=END)

    acted_on = Score.objects.filter(target="purchase_intent", probability__gte=purchase.threshold)
    below = Score.objects.filter(target="purchase_intent", probability__lt=purchase.threshold)
    assert acted_on.exists() and below.exists()
    assert all(s.reasons and all(r["contribution"] > 0 and r["text"] for r in s.reasons) for s in acted_on)
    assert not any(s.reasons for s in below)
    # The rule's reasons are the facts it ranks by, with no contribution to give.
    rule = Score.objects.filter(target="support_risk", probability__gte=0.2)
    assert rule.exists() and all(r["contribution"] is None and r["text"] for s in rule for r in s.reasons)
    assert not Score.objects.filter(target="support_risk", probability__lt=0.2).exclude(reasons=[]).exists()


@pytest.mark.django_db(transaction=True)
def test_the_api_explains_any_score_on_demand(shop, make_api):
    purchase, _ = shop
    run = scoring_cycle_run(as_of=END)
    both = Score.objects.filter(target="support_risk").values("customer_id")
    # Below the threshold, so the cycle stored no reasons; the likeliest of those, who has some to give.
    low = (Score.objects.filter(target="purchase_intent", customer_id__in=both, probability__lt=purchase.threshold)
           .order_by("-probability").select_related("customer")[0])
    assert low.reasons == []

    body = make_api("read").get(f"customers/{low.customer.external_id}/scores").json()

    assert [s["target"] for s in body] == ["purchase_intent", "support_risk"]
    assert body[0]["model_version"] == purchase.pk and body[0]["model_kind"] == "xgboost"
    assert body[1]["model_kind"] == "recency_frequency" and body[1]["reasons"]
    assert all(r["contribution"] is None and r["text"] for r in body[1]["reasons"])
    assert body[1]["population"].startswith("customers with an order in flight")
    assert body[0]["probability"] == pytest.approx(low.probability)
    # Computed now, and they say something true: the customer's own feature values, in words, that pushed
    # the score up, largest first.
    reasons = body[0]["reasons"]
    assert 1 <= len(reasons) <= 3, reasons
    X = build_features(events_frame(until=END), END, customers_frame(), norms=run.norms)
    for reason in reasons:
        assert reason["feature"] in purchase.feature_names and reason["contribution"] > 0
        assert reason["value"] == pytest.approx(X.loc[low.customer_id, reason["feature"]])
        assert reason["text"] == reason_text(reason["feature"], reason["value"])
    contributions = [r["contribution"] for r in reasons]
    assert contributions == sorted(contributions, reverse=True)


@pytest.mark.django_db
def test_the_score_command_exports_one_row_per_customer_and_target(shop, tmp_path):
    out = io.StringIO()

    call_command("score", "--as-of", END.isoformat(), "--export", str(tmp_path / "scores.csv"), stdout=out,
                 verbosity=0)

    rows = list(csv.DictReader((tmp_path / "scores.csv").read_text().splitlines()))
    assert list(rows[0]) == ["customer", "target", "probability", "model_version"]
    assert len(rows) == _expected_rows()  # a row for every customer of each target's population
    assert "Highest purchase intent" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_a_worker_scores_the_chunks_and_the_last_one_closes_the_run(shop, on_worker):
    run_id = score_customers.delay(END.isoformat(), chunk_customers=1_000).get(timeout=60)
    run = _finished(run_id)

    assert run.status == "succeeded", run.error
    assert run.chunks == 3 and not ScoringChunk.objects.filter(run=run, finished_at__isnull=True).exists()
    assert run.customers == Customer.objects.count() and Score.objects.count() == _expected_rows()
    assert ModelVersion.objects.filter(status="champion").count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_chunk_fails_for_good_is_marked_failed(shop, on_worker):
    purchase, _ = shop
    with open(purchase.artifact.path, "r+b") as file:
        file.write(b"broken")

    run = _finished(score_customers.delay(END.isoformat()).get(timeout=60))

    assert run.status == "failed" and "does not match its checksum" in run.error


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_in_the_middle_of_a_run_loses_nothing_and_doubles_nothing(shop, workers):
    first = workers.start(CELERY_VISIBILITY_TIMEOUT="3")
    run_id = score_customers.delay(END.isoformat(), chunk_customers=150).get(timeout=60)  # 20 chunks
    deadline = time.monotonic() + 60
    while not Score.objects.filter(run_id=run_id).exists():
        assert first.poll() is None, "the worker died before it scored a chunk"
        assert time.monotonic() < deadline, "no chunk was scored within 60 s: no middle to kill the worker in"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=15)
    done_when_killed = Score.objects.filter(run_id=run_id).count()

    workers.start(CELERY_VISIBILITY_TIMEOUT="3")  # takes over, and gets the dead worker's chunk again
    run = _finished(run_id, seconds=180)

    expected = _expected_rows()
    assert 0 < done_when_killed < expected
    assert run.status == "succeeded", f"the run is {run.status} after 180 s: {run.error or 'no error recorded'}"
    assert run.customers == Customer.objects.count()
    assert Score.objects.filter(run_id=run_id).count() == expected
    assert Score.objects.values("customer", "target").distinct().count() == expected


@pytest.mark.django_db
def test_chunks_not_finished_in_time_are_handed_out_again_once(shop):
    run = scoring_run_start(as_of=END, chunk_customers=1_000)
    ScoringChunk.objects.filter(run=run, first=run.chunk_rows.order_by("first")[0].first).update(
        finished_at=END)  # one chunk is done

    assert scoring_chunks_stalled(older_than=timedelta(minutes=10)) == []  # just sent
    stalled = scoring_chunks_stalled(older_than=timedelta(0))
    assert len(stalled) == 2 and all(c.finished_at is None for c in stalled)
    assert scoring_chunks_stalled(older_than=timedelta(seconds=30)) == []  # marked as sent again
    ScoringRun.objects.filter(pk=run.pk).update(status="failed")
    assert scoring_chunks_stalled(older_than=timedelta(0)) == []  # an ended run needs nothing


@pytest.mark.django_db
def test_odd_properties_stored_before_validation_leave_the_run_whole(shop):
    # Rows written before properties were checked: an order line's freight in words, a seller as a number, a payment
    # as a list. Stored through the ORM, as the importer and the API then did; the run must score everyone anyway.
    buyers = list(Customer.objects.filter(events__type="purchase", events__occurred_at__gt=END - timedelta(days=30))
                  .distinct().order_by("pk").values_list("pk", flat=True)[:5])
    odd = [{"freight": "free"}, {"freight": {"amount": 3}}, {"seller": 7, "payment": ["card"]}, {"freight": True},
           {"freight": "", "payment": 12}]
    Event.objects.bulk_create([
        Event(event_id=uuid.uuid4(), customer_id=customer, type="purchase", price=20, quantity=1,
              order_id=f"odd-{customer}", occurred_at=END - timedelta(days=2), received_at=END - timedelta(days=2),
              properties=properties)
        for customer, properties in zip(buyers, odd, strict=True)
    ])

    run = scoring_cycle_run(as_of=END)

    assert run.status == "succeeded" and run.customers == Customer.objects.count()
    for target in ("purchase_intent", "support_risk"):
        scored = set(Score.objects.filter(target=target).values_list("customer_id", flat=True))
        assert scored == _population(target) and set(buyers) <= _population("purchase_intent")
