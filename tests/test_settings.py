"""Production settings refuse to start half-configured; nothing falls back silently."""

import os
import subprocess
import sys

import pytest

GOOD = {"SECRET_KEY": "x" * 50, "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"}


def _load_production(**env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "CELERY_BROKER_URL")}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings.production", **env},
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"CELERY_BROKER_URL": GOOD["CELERY_BROKER_URL"]}, "SECRET_KEY must be set"),
        ({"SECRET_KEY": GOOD["SECRET_KEY"]}, "CELERY_BROKER_URL must be set"),
        ({**GOOD, "FORESIGHT_TASKS_IN_PROCESS": "1"}, "for local use only"),
    ],
)
def test_production_refuses_to_start_half_configured(env, complaint):
    result = _load_production(**env)

    assert result.returncode != 0
    assert complaint in result.stderr


def test_production_starts_when_configured():
    assert _load_production(**GOOD).returncode == 0


def test_local_settings_run_tasks_in_process_on_sqlite_without_a_word_about_brokers():
    code = ("import django; django.setup()\n"
            "from config.celery import app\n"
            "from django.conf import settings as s\n"
            "@app.task\n"
            "def probe(): return 42\n"
            "print(s.CELERY_TASK_ALWAYS_EAGER, s.DATABASES['default']['ENGINE'], probe.delay().get())")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "FORESIGHT_TASKS_IN_PROCESS", "CELERY_BROKER_URL")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings.local"},
        capture_output=True,
        text=True,
    )
    assert result.stdout.split() == ["True", "django.db.backends.sqlite3", "42"], result.stderr
    assert result.stderr == ""  # kombu warned of a fallback to AMQP on localhost before the memory broker


@pytest.mark.parametrize("entry_point", ["config.wsgi", "config.asgi", "config.celery"])
def test_the_server_entry_points_run_the_production_settings_unless_told(entry_point):
    """A server started without DJANGO_SETTINGS_MODULE must not come up with DEBUG and the insecure key."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("DJANGO_SETTINGS_MODULE", "SECRET_KEY", "CELERY_BROKER_URL", "FORESIGHT_TASKS_IN_PROCESS")}
    load = [sys.executable, "-c", f"import {entry_point}; from django.conf import settings as s; "
                                  "print(s.SETTINGS_MODULE, s.DEBUG)"]

    refused = subprocess.run(load, env=clean, capture_output=True, text=True)
    assert refused.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY must be set" in refused.stderr

    started = subprocess.run(load, env={**clean, **GOOD}, capture_output=True, text=True)
    assert started.stdout.split() == ["config.settings.production", "False"], started.stderr


def test_every_foresight_setting_has_its_default_and_a_line_in_the_settings_reference(settings):
    from behavior.conf import DEFAULTS, PREFIX, foresight_settings

    reference = (settings.BASE_DIR / "docs" / "settings.md").read_text()
    assert [name for name in DEFAULTS if f"`{PREFIX}{name}`" not in reference] == []

    del settings.FORESIGHT_MAX_BATCH_EVENTS  # a project that does not set it gets the default
    batch = foresight_settings.MAX_BATCH_EVENTS
    assert batch == DEFAULTS["MAX_BATCH_EVENTS"]
    settings.FORESIGHT_API_RATES = {"customer": "7/min"}  # a dict names only what it changes
    rates = foresight_settings.API_RATES
    assert rates == {**DEFAULTS["API_RATES"], "customer": "7/min"}
    with pytest.raises(AttributeError, match="no setting FORESIGHT_MAX_BATCH"):
        getattr(foresight_settings, "MAX_BATCH")  # noqa: B009  (a misspelt name fails loudly)
