import logging
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
def _keep_djangos_logging(loglevel=None, logfile=None, **kwargs) -> None:
    """Workers and beat log through Django's LOGGING, as the web processes do: Celery's own set-up would replace
    the root logger's handlers, and with them the filter that masks customer ids, coupon codes and rows. Their
    --loglevel and --logfile still count."""
    root = logging.getLogger()
    if loglevel:
        root.setLevel(loglevel)
    if logfile:
        console = next(h for h in root.handlers if type(h) is logging.StreamHandler)  # LOGGING's, filter included
        to_file = logging.FileHandler(logfile)
        to_file.setFormatter(console.formatter)
        for log_filter in console.filters:
            to_file.addFilter(log_filter)
        root.handlers = [to_file]
