"""Evaluating a stored model over a time window and backtesting the training recipe."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from behavior.services.learning import models_train
from foresight_demo.services import shop_simulate

pytestmark = pytest.mark.django_db
END = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def shop(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    shop_simulate(customers=4_000, days=150, seed=9, end=END, products=300)


def test_evaluate_reports_the_champion_beside_the_baseline_at_each_cutoff(shop):
    models_train(as_of=END - timedelta(days=30), targets=["purchase_intent"])
    out = io.StringIO()

    call_command("evaluate", "--target", "purchase_intent", "--from", "2026-02-01", "--to", "2026-02-20", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0].startswith("purchase_intent model version")
    rows = [line.split() for line in lines[2:]]
    assert [r[0] for r in rows] == ["2026-02-01", "2026-02-08", "2026-02-15"]
    assert all(0.5 < float(r[3]) <= 1 and 0 < float(r[4]) <= 1 for r in rows)  # model and baseline ROC-AUC


def test_backtest_trains_at_each_cutoff_on_what_was_known_then(shop):
    out, progress = io.StringIO(), io.StringIO()

    call_command("backtest", "--target", "purchase_intent", "--from", "2026-02-01", "--to", "2026-02-15",
                 stdout=out, stderr=progress)

    assert "trained and scored at 3 cutoffs" in out.getvalue()
    assert progress.getvalue().count("training on") == 3
    # Validation labels end before the first cutoff: 2026-01-25 + 7 days of labels is 2026-02-01.
    assert "validating on 4 up to 2026-01-25" in progress.getvalue()
    assert progress.getvalue().count(" serves") == 3  # the candidate chosen at each cutoff, and why


def test_a_cutoff_whose_outcome_is_not_known_yet_is_refused(shop):
    with pytest.raises(CommandError, match="not known yet"):
        call_command("backtest", "--from", "2026-02-25", "--to", "2026-02-26")
