import io
import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
import requests
from django.apps import apps as django_apps
from django.db import connections
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import RunPython
from django.db.models.signals import post_migrate

from behavior.api.auth import CUSTOMER_TOKEN_HEADER
from behavior.api.tokens import customer_token
from behavior.core.features import default_targets
from behavior.models import ApiKey, Target
from behavior.services.api_keys import api_key_create


def _seed_default_targets(sender, **kwargs) -> None:
    """A transactional test's teardown flushes every table, the targets migration 0011 and the schedules'
    migrations stored too; the flush then sends post_migrate, and this puts them back for the next test (which,
    under pytest-xdist, may be any test)."""
    if sender.name == "behavior":
        for definition in default_targets().values():
            fields = definition.as_dict()
            Target.objects.using(kwargs.get("using", "default")).get_or_create(name=fields.pop("name"),
                                                                               defaults=fields)
        for operation in _schedule_migrations():
            operation.code(django_apps, None)


def _schedule_migrations() -> list:
    """The data migrations of Foresight's apps that store beat schedules (those that depend on django-celery-beat);
    each adds its rows with get_or_create, so running one again adds nothing."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return [operation for (app, _), migration in sorted(loader.disk_migrations.items())
            if app in ("behavior", "campaigns", "support")
            and any(dependency[0] == "django_celery_beat" for dependency in migration.dependencies)
            for operation in migration.operations if isinstance(operation, RunPython)]


post_migrate.connect(_seed_default_targets, dispatch_uid="tests-seed-default-targets")

# The shared sample of published data sets sits beside the checkout (../shared); SHARED_DATASETS names another place.
SHARED = Path(os.environ.get("SHARED_DATASETS") or Path(__file__).resolve().parents[1].parent / "shared" / "datasets")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    """A test marked shared_data(path) compares with published figures: where the file is missing it is skipped
    with its reason, but in CI (CI set, as .ci/run sets it) it fails, so that no figure goes unchecked unnoticed."""
    for marker in item.iter_markers("shared_data"):
        path = Path(marker.args[0])
        if not path.exists():
            reason = f"{path} is not on this machine (the shared data sets sit beside the checkout, in ../shared)"
            if _in_ci():
                pytest.fail(f"in CI the published figures must be checked: {reason}", pytrace=False)
            pytest.skip(reason)

# The Oscar connector's tests run in an Oscar shop of their own settings (make test's third pass).
OSCAR_SHOP = "tests.oscar.settings"
collect_ignore = [] if os.environ.get("DJANGO_SETTINGS_MODULE") == OSCAR_SHOP else ["oscar"]


class Api(requests.Session):
    """A real HTTP client for the live test server, with an API key."""

    def __init__(self, base_url: str, key: str | None):
        super().__init__()
        self.base_url = base_url.rstrip("/") + "/api/v1/"
        if key:
            self.headers["Authorization"] = f"Bearer {key}"

    def request(self, method, url, *args, **kwargs):
        return super().request(method, self.base_url + url.lstrip("/"), *args, **kwargs)


class Storefront(Api):
    """A shop's pages with a public key: each call for a customer carries the token the shop's server signed for
    them, as a page rendered for the logged-in customer would."""

    def __init__(self, base_url: str, key: str, token_secret: str):
        super().__init__(base_url, key)
        self.token_secret = token_secret

    def request(self, method, url, *args, **kwargs):
        if match := re.match(r"/?customers/([^/?]+)", url):
            token = customer_token(secret=self.token_secret, customer_id=unquote(match[1]))
            kwargs["headers"] = {CUSTOMER_TOKEN_HEADER: token, **(kwargs.get("headers") or {})}
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def app_log():
    """What the app writes to its log (the root console handler of LOGGING, filters included) during the test."""
    console = next(h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler)
    logged = io.StringIO()
    previous = console.setStream(logged)
    yield logged
    console.setStream(previous)


@pytest.fixture
def storefront(live_server) -> Storefront:
    key, raw = api_key_create(name="storefront", scopes=[ApiKey.Scope.INGEST])
    return Storefront(live_server.url, raw, key.token_secret)


def free_port() -> int:
    """A TCP port on this machine that nothing listens on (at this moment)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture
def readme_block():
    """readme_block("# foresight: ...") -> the README's fenced code block whose first line is that comment."""

    def find(first_line: str) -> str:
        blocks = re.findall(r"^```[a-z]*\n(.*?)^```", README.read_text(), flags=re.MULTILINE | re.DOTALL)
        found = [block for block in blocks if block.splitlines()[0].strip() == first_line]
        assert len(found) == 1, f"README.md needs exactly one code block starting with {first_line!r}"
        return found[0]

    return find


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


class Workers:
    """Starts real Celery worker processes on the Redis broker, using the test database; stops them after."""

    def __init__(self, settings, log_dir):
        from django.db import connection

        db = connection.settings_dict
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CELERY_RESULT_BACKEND": settings.CELERY_RESULT_BACKEND,
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        }
        self.log_dir, self.processes = log_dir, []

    def start(self, *, queues: str = "", **env) -> subprocess.Popen:
        """A worker serving every queue, or only `queues` ("scoring,campaigns"); `env` overrides settings."""
        log = self.log_dir / f"celery-worker-{len(self.processes)}.log"  # read it when a test on a worker fails
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--loglevel=INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-n", f"test-{os.getpid()}-{len(self.processes)}@%h", *(["-Q", queues] if queues else [])],
            env={**self.env, **env}, stdout=log.open("w"), stderr=subprocess.STDOUT, text=True,
        )
        self.processes.append(worker)
        deadline = time.monotonic() + 30
        ready = f"test-{os.getpid()}-{len(self.processes) - 1}@{socket.gethostname()} ready."
        while ready not in log.read_text():  # its own words: works whichever broker it was given
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the Celery worker did not start within 30 s"
            time.sleep(0.1)
        return worker

    def stop_all(self) -> None:
        for worker in self.processes:
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()


@pytest.fixture
def workers(transactional_db, settings, tmp_path):
    from config.celery import app

    app.control.purge()
    started = Workers(settings, tmp_path)
    yield started
    started.stop_all()


@pytest.fixture
def on_worker(workers):
    """One real worker; yields `on_worker(result)`, which waits for a task's result."""
    workers.start()
    return lambda result, timeout=60: result.get(timeout=timeout)


# A real browser: Debian's Chromium, headless, driven by Playwright. Screenshots go to tests/screenshots/
# (git-ignored), to look at after a run.
CHROMIUM = "/usr/bin/chromium"  # installed by `make chromium`, a step of `make test`
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
# Without the background-networking flags Chromium keeps calling out, and this machine's network refuses it.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API keeps an event loop on this thread, which makes Django refuse ORM calls here.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "no Chromium: run `make chromium` (it installs Debian's package)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()
        # While Playwright runs, the test's ORM calls get a connection of their own (Django keeps connections
        # per context), which pytest-django never closes: it would keep the test database from being dropped.
        connections.close_all()


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
