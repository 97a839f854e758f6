"""The embedded default: SQLite file, tasks run in-process, debug on."""

import os

os.environ.setdefault("FORESIGHT_TASKS_IN_PROCESS", "1")
os.environ.setdefault("DJANGO_DEBUG", "1")

from .base import *  # noqa: F403
from .base import LOGGING

# Tasks run in-process here: Celery's line per finished task would interleave with the commands' output.
LOGGING["loggers"] = {"celery.app.trace": {"level": "WARNING"}}
