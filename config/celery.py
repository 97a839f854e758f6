import os

from celery import Celery
from celery.signals import setup_logging

# Workers and beat run as deployed unless told otherwise, like config.wsgi; the local settings run tasks in-process.
# Every import of `config` runs this first, so it decides the default for the servers' entry points too.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("foresight")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def _keep_djangos_logging(**kwargs) -> None:
    """Workers and beat log through Django's LOGGING, as the web processes do: Celery's own set-up would replace
    the root logger's handlers, and with them the filter that masks customer ids, coupon codes and rows."""
