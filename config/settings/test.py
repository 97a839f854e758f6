"""Tests run against the real services: PostgreSQL and Redis on this machine."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/foresight")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")

from .base import *  # noqa: F403
from .base import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "foresight_demo"]  # the simulated shops tests and benches use

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The tests' helpdesk is a receiver on 127.0.0.1; the tests of the address rule turn this off again.
FORESIGHT_WEBHOOKS_ALLOW_PRIVATE = True
