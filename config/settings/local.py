"""The embedded default: SQLite file, tasks run in-process, debug on."""

import os

os.environ.setdefault("FORESIGHT_TASKS_IN_PROCESS", "1")
os.environ.setdefault("DJANGO_DEBUG", "1")

from .base import *  # noqa: F403
from .base import CELERY_BROKER_URL, INSTALLED_APPS, LOGGING

INSTALLED_APPS = [*INSTALLED_APPS, "foresight_demo"]  # make demo's simulated shop, campaigns, rules and logins

# Tasks run in-process here: Celery's line per finished task would interleave with the commands' output.
LOGGING["loggers"] = {**LOGGING["loggers"], "celery.app.trace": {"level": "WARNING"}}

# In-process tasks still take a producer from Celery's pool; with no broker named it would warn
# that it falls back to AMQP on localhost. The in-memory transport says what happens: nothing leaves.
CELERY_BROKER_URL = CELERY_BROKER_URL or "memory://localhost/"
