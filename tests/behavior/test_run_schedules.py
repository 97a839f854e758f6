"""`run_schedules` writes each due task's run down as it starts (the admin's "Last run") and logs what it did."""

import logging

import pytest
from celery import current_app
from celery.utils.imports import symbol_by_name
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

import support.tasks
from behavior.management.commands.run_schedules import SCHEDULER

pytestmark = pytest.mark.django_db

ESCALATE = "Escalate overdue tickets"


@pytest.fixture
def scheduler(monkeypatch):
    """The scheduler `run_schedules` runs, with tasks run in this process (the embedded default)."""
    app = current_app._get_current_object()
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    # Beat closes old connections before it reads and writes; inside the test's transaction that would end it.
    monkeypatch.setattr("django_celery_beat.schedulers.close_old_connections", lambda: None)
    PeriodicTask.objects.filter(name=ESCALATE).update(last_run_at=None)
    return symbol_by_name(SCHEDULER)(app=app)


def _run_due(scheduler, name: str) -> None:
    """What beat's tick does with a due entry: count the run, then apply it."""
    scheduler.apply_entry(scheduler.reserve(scheduler.schedule[name]), producer=None)


def test_a_task_is_written_down_as_it_starts_and_logged_with_what_it_did_and_how_long(scheduler, monkeypatch,
                                                                                     caplog):
    seen = []

    def escalate():  # what the admin's "Last run" says while the task runs
        seen.append(PeriodicTask.objects.get(name=ESCALATE).last_run_at)
        return 3

    monkeypatch.setattr(support.tasks, "tickets_escalate_overdue", escalate)
    started = timezone.now()

    with caplog.at_level(logging.INFO):
        _run_due(scheduler, ESCALATE)

    assert seen and seen[0] is not None and seen[0] >= started.replace(microsecond=0)
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith(f"{ESCALATE} (support.tasks.escalate_overdue_tickets): done in ")
               and line.endswith(" s: 3") for line in lines), lines


def test_a_failing_task_is_logged_with_its_error_and_the_next_ones_still_run(scheduler, monkeypatch, caplog):
    def escalate():
        raise RuntimeError("the helpdesk is down")

    monkeypatch.setattr(support.tasks, "tickets_escalate_overdue", escalate)

    with caplog.at_level(logging.INFO):
        _run_due(scheduler, ESCALATE)

    failed = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failed) == 1 and f"{ESCALATE} (support.tasks.escalate_overdue_tickets): failed after " in \
        failed[0].getMessage() and "the helpdesk is down" in failed[0].getMessage()
    assert PeriodicTask.objects.get(name=ESCALATE).last_run_at is not None


def test_a_task_sent_to_the_workers_is_logged_with_its_id(scheduler, monkeypatch, caplog):
    class Sent:
        id = "4f1c-task-id"

    monkeypatch.setitem(scheduler.app.conf, "task_always_eager", False)  # tasks go to the workers
    monkeypatch.setattr(type(scheduler), "apply_async", lambda self, entry, producer=None, advance=True: Sent())

    with caplog.at_level(logging.INFO):
        _run_due(scheduler, ESCALATE)

    assert any("sent to the workers as task 4f1c-task-id" in r.getMessage() for r in caplog.records)


def test_with_foresights_tasks_in_process_the_projects_own_scheduled_tasks_still_go_to_its_workers(
        scheduler, monkeypatch, settings, caplog):
    settings.FORESIGHT_TASKS_IN_PROCESS = True
    monkeypatch.setitem(scheduler.app.conf, "task_always_eager", False)  # the project's Celery sends its tasks
    sent = []
    monkeypatch.setattr(type(scheduler), "apply_async",
                        lambda self, entry, producer=None, advance=True: sent.append(entry.task))
    monkeypatch.setattr(support.tasks, "tickets_escalate_overdue", lambda: 3)
    every_hour = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.HOURS)[0]
    PeriodicTask.objects.create(name="The shop's report", task="shop.tasks.report", interval=every_hour)

    with caplog.at_level(logging.INFO):
        _run_due(scheduler, ESCALATE)
        _run_due(scheduler, "The shop's report")

    assert sent == ["shop.tasks.report"]
    assert any(r.getMessage().startswith(f"{ESCALATE} (support.tasks.escalate_overdue_tickets): done in ")
               for r in caplog.records)
