"""Handing committed work to the broker without letting a broker outage fail the caller.

Work handed over here has a durable record in the database (an outbox message, a scoring chunk) that
a periodic task sends again, so a broker that cannot be reached only delays it. The caller, often a
request whose transaction has already committed, answers as if the broker had taken it.
"""

import logging

from celery.canvas import Signature

logger = logging.getLogger(__name__)

# One retry 0.2 s later instead of Celery's default three: with the broker down a request waits about a
# second (each attempt is ~0.6 s with Redis refusing connections), not several.
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


def hand_over(work: Signature, *, sweeper: str) -> bool:
    """Send `work` to the broker; when it cannot be reached, log a warning and return False.

    `sweeper` names what sends the work again later; it goes in the warning for the operator.
    """
    try:
        # Nobody reads a hand-over's result: without ignore_result, Celery's Redis result backend subscribes to
        # it before sending, and with Redis down retried that for 19 s, then raised a RuntimeError.
        work.apply_async(retry=True, retry_policy=PUBLISH_RETRY_POLICY, ignore_result=True)
    except Exception as error:
        # Whatever the broker's or a backend's client raises (kombu's OperationalError, a socket's OSError, a
        # result backend's RuntimeError or RedisError): the work is recorded, and the sweeper sends it again.
        logger.warning("broker unreachable, %s left for %s: %s: %s", _name(work), sweeper, type(error).__name__,
                       error)
        return False
    return True


def _name(work: Signature) -> str:
    return work.get("task") or type(work).__name__  # a group has no task name
