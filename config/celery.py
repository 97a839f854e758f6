import os

from celery import Celery

# Workers and beat run as deployed unless told otherwise, like config.wsgi; the local settings run tasks in-process.
# Every import of `config` runs this first, so it decides the default for the servers' entry points too.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("foresight")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
