"""Foresight as a shop developer meets it: a wheel built from a clean checkout, installed into a fresh
environment, and a fresh `django-admin startproject` project that follows only the README."""

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import time
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from redis import Redis

from tests.conftest import README, free_port

ROOT = README.parent
RUN_TIMEOUT = 120


def _run(*command, cwd: Path, env: dict | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)
    assert done.returncode == 0, f"{' '.join(map(str, command))}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _readme_block(first_line: str) -> str:
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", README.read_text(), flags=re.MULTILINE | re.DOTALL)
    [block] = [block for block in blocks if block.splitlines()[0].strip() == first_line]
    return block


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip wheel .` builds from the files git tracks (a clean checkout: no build leftovers)."""
    source = tmp_path_factory.mktemp("checkout")
    for name in _run("git", "ls-files", cwd=ROOT).splitlines():
        if (ROOT / name).is_file():  # a file deleted but not yet committed is still listed
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--quiet", "--wheel-dir", str(out), cwd=source)
    [built] = out.glob("foresight-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A new virtual environment with the wheel installed: its python. The dependencies come from this one's
    site-packages (a path file), so that nothing is downloaded; this checkout is not on its path."""
    venv = tmp_path_factory.mktemp("venv")
    _run(sys.executable, "-m", "venv", str(venv), cwd=venv)
    python = venv / "bin" / "python"
    site = Path(_run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=venv).strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel), cwd=venv)
    return python


def test_the_wheel_ships_the_three_apps_with_their_migrations_and_templates(wheel, installed, tmp_path):
    names = zipfile.ZipFile(wheel).namelist()
    for app in ("behavior", "campaigns", "support"):
        assert f"{app}/migrations/0001_initial.py" in names or any(
            n.startswith(f"{app}/migrations/0001_") for n in names), app
        assert f"{app}/api/urls.py" in names
    assert "behavior/templates/admin/behavior/customer/change_form.html" in names
    assert not any(n.startswith(("config/", "tests/", "bench/")) for n in names)

    metadata = _run(str(installed), "-m", "pip", "show", "foresight", cwd=tmp_path)
    assert "Requires:" in metadata and "Django" in metadata and "celery" in metadata
    check = subprocess.run([str(installed), "-m", "pip", "check"], cwd=tmp_path, capture_output=True, text=True)
    assert "foresight" not in check.stdout, check.stdout  # every dependency it names is there, in range
    where = _run(str(installed), "-c", "import behavior, campaigns, support; print(behavior.__file__)", cwd=tmp_path)
    assert str(ROOT) not in where and "site-packages" in where


# A project's own DRF view, answering with DRF's defaults: session and basic authentication, the browsable
# API and form parsing. Foresight must not change what it answers.
HOST_VIEW = '''
from rest_framework.decorators import api_view
from rest_framework.response import Response


@api_view(["GET", "POST"])
def whoami(request):
    return Response({"user": str(request.user), "authenticator": type(request.successful_authenticator).__name__,
                     "data": request.data})
'''
HOST_URLS = '''
from host.views import whoami

urlpatterns += [path("whoami/", whoami)]
'''


def _host_answers(base: str) -> list:
    answers = []
    for method, headers, data in [("GET", {"Accept": "application/json"}, None),
                                  ("GET", {"Accept": "application/json", "Authorization": "Bearer fs_not-a-key"}, None),
                                  ("GET", {"Accept": "text/html"}, None),
                                  ("POST", {"Accept": "application/json"}, {"a": "1"})]:
        answer = requests.request(method, base + "whoami/", headers=headers, data=data, timeout=10)
        body = answer.json() if "json" in answer.headers.get("Content-Type", "") else answer.text[:15]
        answers.append((answer.status_code, answer.headers.get("Content-Type"), body))
    return answers


class Server:
    """`manage.py runserver` of the project, on a free port, until the block ends."""

    def __init__(self, python: Path, project: Path, env: dict):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/"
        self.process = subprocess.Popen([str(python), "manage.py", "runserver", "--noreload", f"127.0.0.1:{self.port}"],
                                        cwd=project, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)

    def __enter__(self) -> "Server":
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None, self.process.stderr.read() if self.process.stderr else ""
            try:
                requests.get(self.base, timeout=1)
                return self
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "runserver did not answer within 30 s"
                time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)


def _overdue_ticket_escalated_by_run_schedules(python: Path, project: Path, database: Path, env: dict) -> str:
    """An overdue ticket and the escalation schedule made every second; `run_schedules` until the ticket is
    escalated. Returns what the command printed."""
    script = (
        "from datetime import timedelta\n"
        "from django.utils import timezone\n"
        "from django_celery_beat.models import IntervalSchedule, PeriodicTask\n"
        "from behavior.models import Customer\n"
        "from support.models import Ticket\n"
        "now = timezone.now()\n"
        "Ticket.objects.create(customer=Customer.objects.create(external_id='late'), origin='agent', group='g',"
        " subject='where is my order', opened_at=now - timedelta(days=2), due_at=now - timedelta(days=1))\n"
        "every_second = IntervalSchedule.objects.get_or_create(every=1, period='seconds')[0]\n"
        "PeriodicTask.objects.filter(task='support.tasks.escalate_overdue_tickets').update(interval=every_second)\n"
    )
    _run(str(python), "manage.py", "shell", "-c", script, cwd=project, env=env)
    log = database.parent / "run_schedules.log"
    with log.open("w") as output:
        beat = subprocess.Popen([str(python), "manage.py", "run_schedules"], cwd=project, env={**os.environ, **env},
                                stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not _escalated(database):
            assert beat.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"not escalated within 60 s:\n{log.read_text()}"
            time.sleep(0.5)
    finally:
        beat.terminate()
        beat.wait(timeout=30)
    return log.read_text()


def _escalated(database: Path) -> bool:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT escalated_at FROM support_ticket").fetchone()[0] is not None


def test_a_new_project_that_follows_the_readme_serves_the_api_admin_commands_and_schedules(installed, tmp_path):
    project = tmp_path / "shop"
    project.mkdir()
    _run(str(installed), "-m", "django", "startproject", "host", str(project), cwd=tmp_path)
    (project / "host" / "views.py").write_text(HOST_VIEW)
    settings_file, urls_file = project / "host" / "settings.py", project / "host" / "urls.py"
    # The project already uses DRF with its defaults, and the 32-bit ids of shops started before Django 3.2.
    settings_file.write_text(settings_file.read_text() + '\nINSTALLED_APPS += ["rest_framework"]\n'
                             'DEFAULT_AUTO_FIELD = "django.db.models.AutoField"\n')
    urls_file.write_text(urls_file.read_text() + HOST_URLS)
    env = {"DJANGO_SETTINGS_MODULE": "host.settings", "PYTHONPATH": ""}
    with Server(installed, project, env) as server:
        before = _host_answers(server.base)
    assert [status for status, _, _ in before] == [200, 200, 200, 200]

    settings_file.write_text(settings_file.read_text() + "\n" + _readme_block("# foresight: settings") + "\n"
                             + _readme_block("# foresight: logs and logins"))
    urls_file.write_text(urls_file.read_text() + "\n" + _readme_block("# foresight: urls"))
    _run(str(installed), "manage.py", "migrate", "--verbosity", "0", cwd=project, env=env)
    _run(str(installed), "manage.py", "makemigrations", "--check", "--dry-run", cwd=project, env=env)  # none to write
    key = _run(str(installed), "manage.py", "create_api_key", "shop", "--scope", "admin", cwd=project,
               env=env).splitlines()[0]
    _run(str(installed), "manage.py", "createsuperuser", "--noinput", "--username", "lead", "--email", "l@shop.test",
         cwd=project, env={**env, "DJANGO_SUPERUSER_PASSWORD": "a long admin passphrase"})

    with Server(installed, project, env) as server:
        assert _host_answers(server.base) == before
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {key}"
        base = server.base + "foresight/api/v1/"
        now = datetime.now(UTC)
        events = [{"event_id": str(uuid.uuid4()), "type": "product_view", "customer": "ada", "product": "sku-1",
                   "occurred_at": (now - timedelta(minutes=i)).isoformat()} for i in range(3)]
        assert len(api.post(base + "events", json=events, timeout=10).json()["accepted"]) == 3
        assert api.put(base + "customers/ada", json={"marketing_consent": True}, timeout=10).status_code == 200
        assert api.get(base + "customers/ada", timeout=10).json()["marketing_consent"] is True
        assert api.get(base + "customers/ada", headers={"Authorization": "Bearer fs_wrong"},
                       timeout=10).status_code == 401

        schema = requests.get(base + "schema", headers={"Accept": "application/json"}, timeout=30).json()
        assert schema["info"]["title"] == "Foresight API"
        assert all(path.startswith("/foresight/api/v1/") for path in schema["paths"]), list(schema["paths"])
        docs = requests.get(base + "docs", timeout=10)
        [bundle] = re.findall(r'src="([^"]*swagger-ui-bundle\.js)"', docs.text)
        assert requests.get(server.base.rstrip("/") + bundle, timeout=10).status_code == 200  # no CDN

        admin = requests.Session()
        admin.get(server.base + "admin/login/", timeout=10)
        admin.post(server.base + "admin/login/", timeout=10, data={
            "username": "lead", "password": "a long admin passphrase", "next": "/admin/",
            "csrfmiddlewaretoken": admin.cookies["csrftoken"]}, headers={"Referer": server.base + "admin/login/"})
        for page in ("behavior/customer/", "campaigns/campaign/add/", "support/ticket/", "behavior/modelversion/"):
            answer = admin.get(server.base + "admin/" + page, timeout=10)
            assert answer.status_code == 200 and "login" not in answer.url, page
        assert "ada" in admin.get(server.base + "admin/behavior/customer/", timeout=10).text

        intruder, login = requests.Session(), server.base + "admin/login/"
        intruder.get(login, timeout=10)
        for password in ["wrong"] * 5 + ["a long admin passphrase"]:
            answer = intruder.post(login, timeout=10, headers={"Referer": login}, data={
                "username": "lead", "password": password, "next": "/admin/",
                "csrfmiddlewaretoken": intruder.cookies["csrftoken"]})
        assert answer.status_code == 429  # locked out after five wrong ones, the right one too
    logged = server.process.stderr.read()  # runserver's request lines
    assert "/foresight/api/v1/customers/***" in logged and "customers/ada" not in logged, logged

    manage = [str(installed), "manage.py"]
    settings_file.write_text(settings_file.read_text() + '\nINSTALLED_APPS += ["foresight_demo"]\n')  # to try it
    _run(*manage, "simulate_shop", "--customers", "1500", "--days", "90", cwd=project, env=env)
    assert "ROC-AUC" in _run(*manage, "train", "--target", "purchase_intent", cwd=project, env=env)
    assert "Highest purchase intent" in _run(*manage, "score", "--top", "1", cwd=project, env=env)
    printed = _overdue_ticket_escalated_by_run_schedules(installed, project, project / "db.sqlite3", env)
    assert "their tasks run in this process" in printed


# A shop's own Celery app, as Celery's Django guide has it, with a task of its own and a broker its workers read.
HOST_CELERY = '''
import os
from pathlib import Path

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "host.settings")

app = Celery("host")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task
def note(path):
    Path(path).write_text("the shop's worker ran this")
'''
HOST_BROKER = "redis://127.0.0.1:6379/3"


def _queued_tasks(broker: Redis) -> list[str]:
    """The names of the tasks waiting in the broker's queues (Redis lists of Celery's messages)."""
    return [json.loads(message)["headers"]["task"] for key in broker.scan_iter(_type="list")
            for message in broker.lrange(key, 0, -1)]


def test_a_project_with_its_own_celery_still_queues_its_tasks_while_foresights_run_in_process(installed, tmp_path):
    broker = Redis.from_url(HOST_BROKER)
    broker.flushdb()
    project = tmp_path / "shop"
    project.mkdir()
    _run(str(installed), "-m", "django", "startproject", "host", str(project), cwd=tmp_path)
    (project / "host" / "celery.py").write_text(HOST_CELERY)
    (project / "host" / "__init__.py").write_text("from .celery import app as celery_app\n")
    settings_file, urls_file = project / "host" / "settings.py", project / "host" / "urls.py"
    readme = _readme_block("# foresight: settings") + "\n" + _readme_block("# foresight: logs and logins")
    settings_file.write_text(settings_file.read_text() + f"\nCELERY_BROKER_URL = {HOST_BROKER!r}\n\n{readme}"
                             + '\nINSTALLED_APPS += ["foresight_demo"]\n')
    urls_file.write_text(urls_file.read_text() + "\n" + _readme_block("# foresight: urls"))
    # Celery reads this variable before the setting: here it holds the tests' own broker.
    env = {"DJANGO_SETTINGS_MODULE": "host.settings", "PYTHONPATH": "", "CELERY_BROKER_URL": HOST_BROKER}
    manage = [str(installed), "manage.py"]
    _run(*manage, "migrate", "--verbosity", "0", cwd=project, env=env)

    note = tmp_path / "note.txt"
    _run(*manage, "shell", "-c", f"from host.celery import note; note.delay({str(note)!r})", cwd=project, env=env)
    assert not note.exists(), "the shop's task ran in the calling process, not on its workers"
    assert _queued_tasks(broker) == ["host.celery.note"]

    _run(*manage, "simulate_shop", "--customers", "500", "--days", "60", cwd=project, env=env)
    assert "ROC-AUC" in _run(*manage, "train", "--target", "purchase_intent", cwd=project, env=env)
    scored = subprocess.run([*manage, "score", "--top", "1"], cwd=project, env={**os.environ, **env},
                            capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert "Highest purchase intent" in scored.stdout and "broker unreachable" not in scored.stderr, scored.stderr
    printed = _overdue_ticket_escalated_by_run_schedules(installed, project, project / "db.sqlite3", env)
    assert "their tasks run in this process" in printed
    # After scoring, campaigns and support rules ran in process (nothing queued); the shop's task still waits.
    assert _queued_tasks(broker) == ["host.celery.note"]
    broker.flushdb()


def test_run_schedules_runs_due_tasks_on_the_embedded_default(tmp_path):
    database = tmp_path / "foresight.sqlite3"
    env = {"DJANGO_SETTINGS_MODULE": "config.settings.local", "DATABASE_URL": f"sqlite:///{database}"}
    _run(sys.executable, "manage.py", "migrate", "--verbosity", "0", cwd=ROOT, env=env)

    printed = _overdue_ticket_escalated_by_run_schedules(Path(sys.executable), ROOT, database, env)

    assert "Escalate overdue tickets: every second" in printed
