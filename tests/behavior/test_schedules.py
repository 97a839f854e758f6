"""Beat's default schedules exist after migrating, point at real tasks, and run their tasks."""

import pytest
from django_celery_beat.models import PeriodicTask

from config.celery import app

pytestmark = pytest.mark.django_db


def test_scoring_runs_hourly_and_training_weekly_by_default():
    tasks = {t.name: t for t in PeriodicTask.objects.all()}

    score, train = tasks["Score customers hourly"], tasks["Train models weekly"]
    resend = tasks["Resend stalled scoring chunks"]
    assert (score.interval.every, score.interval.period) == (1, "hours")
    assert (train.crontab.minute, train.crontab.hour, train.crontab.day_of_week) == ("0", "3", "mon")
    assert score.expire_seconds < 3600 and train.expire_seconds
    app.loader.import_default_modules()
    assert (resend.interval.every, resend.interval.period) == (5, "minutes")
    assert {score.task, train.task, resend.task} <= set(app.tasks)


def test_campaigns_and_support_rules_run_hourly_without_a_scoring_run():
    app.loader.import_default_modules()
    for name, task in (("Evaluate campaigns", "campaigns.tasks.evaluate_campaigns"),
                       ("Open proactive support tickets", "support.tasks.open_support_tickets")):
        schedule = PeriodicTask.objects.get(name=name)
        assert (schedule.task, schedule.interval.every, schedule.interval.period) == (task, 1, "hours")
        assert schedule.enabled and schedule.args == "[]" and 0 < schedule.expire_seconds < 3600
        assert task in app.tasks
