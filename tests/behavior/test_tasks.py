"""Tasks on a real Celery worker process over Redis."""

import io
import re
from pathlib import Path

import pytest
from django.core.management import call_command

from behavior.models import Event
from behavior.tasks import import_events_file
from config.celery import app

TAOBAO = Path(__file__).parent.parent / "data" / "taobao" / "UserBehavior_excerpt.csv"


def test_a_worker_imports_a_file_end_to_end(on_worker):
    result = import_events_file.delay(str(TAOBAO), "taobao", {})

    summary = on_worker(result)

    assert summary["new"] == 1689 and summary["bad_rows"] == 1 and summary["written"]
    assert Event.objects.count() == 1689


def test_the_import_command_can_queue_its_work_for_a_worker(on_worker):
    out = io.StringIO()
    call_command("import_events", str(TAOBAO), "--format", "taobao", "--queue", stdout=out)

    task_id = re.search(r"task (\S+);", out.getvalue()).group(1)
    summary = on_worker(app.AsyncResult(task_id))

    assert summary["new"] == 1689
    assert Event.objects.filter(type="purchase").count() == 28


@pytest.mark.django_db
def test_with_tasks_in_process_the_import_command_imports_here_when_asked_to_queue(settings):
    settings.FORESIGHT_TASKS_IN_PROCESS = True
    out, err = io.StringIO(), io.StringIO()
    call_command("import_events", str(TAOBAO), "--format", "taobao", "--queue", "--quiet", stdout=out, stderr=err)

    assert "so the import runs here" in err.getvalue() and "1,689 events new" in out.getvalue()
    assert Event.objects.count() == 1689


@pytest.mark.django_db
def test_the_task_rejects_an_unknown_format_clearly():
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        import_events_file.apply(args=[str(TAOBAO), "csv", {}]).get()
