"""The scheduler `run_schedules` (and `celery beat -S behavior.beat:Scheduler`) runs the admin's schedules with."""

from __future__ import annotations

import json
import logging
import time

from celery.result import EagerResult
from django_celery_beat.schedulers import DatabaseScheduler

from behavior.broker import is_foresights, tasks_in_process

logger = logging.getLogger(__name__)

SUMMARY_CHARS = 300  # a task's result in the log: its counts, not a page of them


class Scheduler(DatabaseScheduler):
    """django-celery-beat's database scheduler that writes a task's run down as it starts, and logs what it did.

    Beat writes the runs it has counted every 3 minutes only, and a task run in this process holds beat until
    it ends, so the admin's "Last run" of a scoring run that takes minutes stayed empty until after it.
    With FORESIGHT_TASKS_IN_PROCESS, Foresight's tasks run here when due and the project's own are sent.
    """

    def apply_entry(self, entry, producer=None):
        self.sync()  # the run reserve() has just counted: the admin's "Last run" says it now
        logger.info("%s (%s): due, started", entry.name, entry.task)
        started = time.monotonic()
        try:
            if tasks_in_process() and is_foresights(entry.task):  # the project's own tasks go to its workers
                result = self.app.tasks[entry.task].apply(entry.args, entry.kwargs, **entry.options)
            else:
                result = self.apply_async(entry, producer=producer, advance=False)
        except Exception as error:  # beat carries on with the other schedules, as Celery's own does
            logger.error("%s (%s): failed after %.1f s: %s", entry.name, entry.task, time.monotonic() - started,
                         error, exc_info=True)
            return
        seconds = time.monotonic() - started
        if isinstance(result, EagerResult) and result.failed():  # run here, its error kept (not propagated)
            logger.error("%s (%s): failed after %.1f s: %r", entry.name, entry.task, seconds, result.result)
        elif isinstance(result, EagerResult):
            logger.info("%s (%s): done in %.2f s: %s", entry.name, entry.task, seconds, summary(result.result))
        else:
            logger.info("%s (%s): sent to the workers as task %s (a worker logs what it did)", entry.name,
                        entry.task, getattr(result, "id", "?"))


def summary(result: object) -> str:
    """A task's result in one short line: its JSON, cut at SUMMARY_CHARS."""
    text = json.dumps(result, default=str, separators=(", ", ": "))
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 3] + "..."
