"""Where Foresight's tasks run, and handing committed work to the broker without letting an outage fail the caller.

With FORESIGHT_TASKS_IN_PROCESS, Foresight's own tasks run where they are sent from (`dispatch`, `hand_over`,
the scheduler), while the project's Celery app, its broker and its own tasks stay as they were.

Work handed over here has a durable record in the database (an outbox message, a scoring chunk) that
a periodic task sends again, so a broker that cannot be reached only delays it. The caller, often a
request whose transaction has already committed, answers as if the broker had taken it.
"""

import logging

from celery import current_app
from celery.canvas import Signature
from celery.result import AsyncResult

from behavior.conf import foresight_settings

logger = logging.getLogger(__name__)

# One retry 0.2 s later instead of Celery's default three: with the broker down a request waits about a
# second (each attempt is ~0.6 s with Redis refusing connections), not several.
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


# The packages whose tasks are Foresight's: the scheduler runs these in process, and sends the project's own.
PACKAGES = ("behavior", "campaigns", "support", "foresight_oscar", "foresight_demo")


def tasks_in_process() -> bool:
    """Whether Foresight's tasks run where they are sent from: FORESIGHT_TASKS_IN_PROCESS, or a Celery app that
    runs every task so (CELERY_TASK_ALWAYS_EAGER)."""
    return bool(foresight_settings.TASKS_IN_PROCESS or current_app.conf.task_always_eager)


def is_foresights(task_name: str) -> bool:
    return task_name.partition(".")[0] in PACKAGES


def dispatch(work: Signature, **options) -> AsyncResult:
    """Run Foresight's `work` (a task's signature, a group, a chord) here when its tasks run in process, else
    send it to the broker with `options`."""
    return work.apply() if tasks_in_process() else work.apply_async(**options)


def hand_over(work: Signature, *, sweeper: str) -> bool:
    """Send `work` to the broker (or run it here: `dispatch`); when the broker cannot be reached, log a warning
    and return False.

    `sweeper` names what sends the work again later; it goes in the warning for the operator.
    """
    try:
        # Nobody reads a hand-over's result: without ignore_result, Celery's Redis result backend subscribes to
        # it before sending, and with Redis down retried that for 19 s, then raised a RuntimeError.
        dispatch(work, retry=True, retry_policy=PUBLISH_RETRY_POLICY, ignore_result=True)
    except Exception as error:
        # Whatever the broker's or a backend's client raises (kombu's OperationalError, a socket's OSError, a
        # result backend's RuntimeError or RedisError): the work is recorded, and the sweeper sends it again.
        logger.warning("broker unreachable, %s left for %s: %s: %s", _name(work), sweeper, type(error).__name__,
                       error)
        return False
    return True


def _name(work: Signature) -> str:
    return work.get("task") or type(work).__name__  # a group has no task name
