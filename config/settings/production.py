"""Production: PostgreSQL, a real broker, a real secret. Refuses to start otherwise."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import (
    CELERY_BROKER_URL,
    CELERY_TASK_ALWAYS_EAGER,
    FORESIGHT_TASKS_IN_PROCESS,
    INSECURE_SECRET_KEY,
    SECRET_KEY,
)

if SECRET_KEY == INSECURE_SECRET_KEY or len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("SECRET_KEY must be set to a random value of at least 32 characters.")
if not CELERY_BROKER_URL:
    raise ImproperlyConfigured("CELERY_BROKER_URL must be set: production runs tasks on Celery workers.")
if FORESIGHT_TASKS_IN_PROCESS or CELERY_TASK_ALWAYS_EAGER:
    raise ImproperlyConfigured("FORESIGHT_TASKS_IN_PROCESS is for local use only.")

DEBUG = False
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = True
SECURE_HSTS_SECONDS = 60 * 60 * 24 * 30
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
