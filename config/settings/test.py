"""Tests run against the real services: PostgreSQL and Redis on this machine."""

import os

# pytest-xdist's workers (gw0, gw1, ...) each get their own Redis databases, as pytest-django gives each its own
# test database, so one worker's cache flush or queued task never reaches another's. A worker inherits the
# defaults its controller set, so those (and only those: a test's private broker stays) move two databases down
# per worker; the Celery workers a test starts inherit the moved values.
# Two test processes share two cores, each fitting XGBoost on two threads: OpenMP's waiting threads then spin
# on the cores the other process needs. Passive waiting (read when XGBoost loads, after these settings) took the
# uplift tests from 75 s to 48 s under pytest -n 2; the Celery workers tests start inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/foresight")
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")
for _name, _db in (("REDIS_URL", 15), ("CELERY_BROKER_URL", 14)):
    _default = f"redis://127.0.0.1:6379/{_db}"
    if os.environ.setdefault(_name, _default) == _default:
        os.environ[_name] = f"redis://127.0.0.1:6379/{_db - 2 * int(os.environ.get('PYTEST_XDIST_WORKER', 'gw0')[2:])}"

from .base import *  # noqa: E402, F403  (the environment above is read by base)
from .base import INSTALLED_APPS  # noqa: E402

INSTALLED_APPS = [*INSTALLED_APPS, "foresight_demo"]  # the simulated shops tests and benches use

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The tests' helpdesk is a receiver on 127.0.0.1; the tests of the address rule turn this off again.
FORESIGHT_WEBHOOKS_ALLOW_PRIVATE = True
