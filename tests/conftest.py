import pytest
import requests

from behavior.models import ApiKey
from behavior.services.api_keys import api_key_create


class Api(requests.Session):
    """A real HTTP client for the live test server, with an API key."""

    def __init__(self, base_url: str, key: str | None):
        super().__init__()
        self.base_url = base_url.rstrip("/") + "/api/v1/"
        if key:
            self.headers["Authorization"] = f"Bearer {key}"

    def request(self, method, url, *args, **kwargs):
        return super().request(method, self.base_url + url.lstrip("/"), *args, **kwargs)


@pytest.fixture(autouse=True)
def _empty_cache():
    """Throttle counts live in the cache (Redis in tests); one test's must not leak into the next."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def make_api(live_server):
    """make_api("ingest", "read") -> a client whose key has those scopes; make_api() has no key."""

    def make(*scopes: str) -> Api:
        raw = api_key_create(name="test " + "+".join(scopes), scopes=list(scopes))[1] if scopes else None
        return Api(live_server.url, raw)

    return make


@pytest.fixture
def ingest_api(make_api) -> Api:
    return make_api(ApiKey.Scope.INGEST)


@pytest.fixture
def admin_api(make_api) -> Api:
    return make_api(ApiKey.Scope.ADMIN)


@pytest.fixture
def on_worker(transactional_db, settings, tmp_path):
    """A real Celery worker process on the Redis broker, using the test database.

    Yields `on_worker(result)`, which waits for a task result. The worker is stopped afterwards.
    """
    import os
    import subprocess
    import sys
    import time

    from django.db import connection

    from config.celery import app

    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_RESULT_BACKEND": settings.CELERY_RESULT_BACKEND,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    app.control.purge()
    log = tmp_path / "celery-worker.log"  # read it when a test on the worker fails
    log = log.open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--loglevel=INFO",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"test-{os.getpid()}@%h"],
        env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 30
    while not app.control.ping(timeout=0.5):
        assert worker.poll() is None, (tmp_path / "celery-worker.log").read_text()
        assert time.monotonic() < deadline, "the Celery worker did not start within 30 s"
    try:
        yield lambda result, timeout=60: result.get(timeout=timeout)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
