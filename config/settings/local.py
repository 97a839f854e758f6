"""The embedded default: SQLite file, tasks run in-process, debug on."""

import os

os.environ.setdefault("FORESIGHT_TASKS_IN_PROCESS", "1")
os.environ.setdefault("DJANGO_DEBUG", "1")

from .base import *  # noqa: F403
