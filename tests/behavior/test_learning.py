"""Training use case: a simulated shop gets champions that beat the heuristic, a re-run changes nothing,
--as-of keeps the future out, and a small shop is served by the transparent heuristic."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from behavior.features import TARGETS
from behavior.models import ModelVersion
from behavior.services.learning import TrainingError, models_train
from behavior.services.simulation import shop_simulate

pytestmark = pytest.mark.django_db
END = datetime(2026, 1, 1, tzinfo=UTC)  # a fixed end: the same events and cutoffs whenever the tests run


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def _champion(target: str) -> ModelVersion:
    return ModelVersion.objects.get(target=target, status=ModelVersion.Status.CHAMPION)


def test_a_shop_gets_xgboost_champions_a_rerun_keeps_them_and_as_of_keeps_the_future_out():
    end = END
    shop_simulate(customers=6_000, days=150, seed=1, end=end, products=500)
    messages = []

    outcomes = models_train(as_of=end, on_progress=messages.append)

    assert [o.target for o in outcomes] == list(TARGETS)
    assert all(o.promoted and o.kind == "xgboost" for o in outcomes)
    assert any("training XGBoost" in m for m in messages)
    intent = _champion("purchase_intent")
    assert intent.kind == ModelVersion.Kind.XGBOOST and intent.artifact
    assert intent.metrics["roc_auc"] > 0.6
    assert intent.metrics["baseline"]["roc_auc"] is not None  # the admin shows model vs baseline
    low, high = intent.metrics["roc_auc_interval"]
    assert low <= intent.metrics["roc_auc"] <= high
    assert intent.trained_from < intent.validated_at <= end - TARGETS["purchase_intent"].horizon

    # Same data, same seed: the candidate is no better, so it is not promoted.
    again = models_train(as_of=end, targets=["purchase_intent"])[0]
    assert not again.promoted and again.version_id != intent.pk
    assert ModelVersion.objects.get(pk=again.version_id).status in ("retired", "candidate")
    assert _champion("purchase_intent").pk == intent.pk

    # A shop bigger than max_customers trains on a fixed sample of its customers.
    messages.clear()
    sampled = models_train(as_of=end, targets=["purchase_intent"], max_customers=3_000, on_progress=messages.append)[0]
    assert any("one customer in every 2" in m for m in messages)
    assert 0.4 * again.rows < sampled.rows < 0.6 * again.rows

    # --as-of: a month earlier; no cutoff's label window reaches past it.
    as_of = end - timedelta(days=30)
    out = StringIO()
    call_command("train", "--as-of", as_of.isoformat(), "--target", "support_risk", stdout=out)
    version = ModelVersion.objects.filter(target="support_risk").latest("pk")
    assert version.validated_at + TARGETS["support_risk"].horizon <= as_of
    text = out.getvalue()
    assert "support_risk" in text and "ROC-AUC" in text and "vs baseline" in text and "PR-AUC" in text
    assert f"#{version.pk} {version.kind}" in text and "\npurchase_intent\n" not in text  # only the target asked
    # Whatever this shorter history gave (a model, or the heuristic for too few positives), a model still serves.
    assert _champion("support_risk").kind == ModelVersion.Kind.XGBOOST


def test_a_small_shop_is_served_by_the_heuristic_scorer():
    shop_simulate(customers=200, days=90, seed=2, end=END, products=100)
    out = StringIO()

    call_command("train", "--as-of", END.isoformat(), stdout=out)

    for name in TARGETS:
        champion = _champion(name)
        assert champion.kind == ModelVersion.Kind.HEURISTIC and not champion.artifact
    assert "heuristic" in out.getvalue() and "promoted to champion" in out.getvalue()


def test_too_short_a_history_is_a_clear_error():
    shop_simulate(customers=100, days=20, seed=3, end=END, products=50)

    clear = r"cannot train purchase_intent on the events from 2025-12-1\d to 2026-01-01: history too short"
    with pytest.raises(TrainingError, match=clear):
        models_train(as_of=END)
    assert not ModelVersion.objects.exists()


def test_a_trained_model_replaces_the_heuristic_once_the_shop_has_grown():
    shop_simulate(customers=200, days=90, seed=2, end=END, products=100)
    heuristic = models_train(as_of=END, targets=["purchase_intent"])[0]
    assert heuristic.kind == "heuristic" and heuristic.promoted

    shop_simulate(customers=6_000, days=150, seed=1, end=END, products=500)
    model = models_train(as_of=END, targets=["purchase_intent"])[0]

    assert model.kind == "xgboost" and model.promoted  # it ranks the validation rows better than the heuristic
    assert _champion("purchase_intent").pk == model.version_id
    assert ModelVersion.objects.get(pk=heuristic.version_id).status == ModelVersion.Status.RETIRED
