"""Settings shared by every deployment; the only module that reads the environment."""

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent

INSECURE_SECRET_KEY = "django-insecure-foresight-local-only"
SECRET_KEY = os.environ.get("SECRET_KEY", INSECURE_SECRET_KEY)
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "behavior",
    "campaigns",
    "support",
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: it turns a lockout into its 429 page
]

# Admin logins: after 5 wrong passwords for one username from one address, that pair is locked out for 15
# minutes (django-axes, counted in the database). Pairs, so a stranger cannot lock an admin out everywhere.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = int(os.environ.get("ADMIN_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("ADMIN_LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # no banner in every command's output; failures and lockouts still log warnings
# The client address as the API's throttles see it: X-Forwarded-For only through API_TRUSTED_PROXIES proxies.
AXES_CLIENT_IP_CALLABLE = "behavior.api.auth.client_address"

# Admin passwords: Django's own checks (length 12, not like the user's name, not a common or all-digit one).
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The embedded default is a SQLite file in the project folder.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'foresight.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        # A kept connection the server has closed (restart, failover, idle kill) is found at the start of
        # a request and replaced, instead of failing that request (config.postgresql: a poll of its socket).
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["ENGINE"] = "config.postgresql"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers take the lock when their transaction starts and wait for each other, rather than
    # failing with "database is locked" when two requests write at once.
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
CACHES = {
    "default": (
        # Short timeouts: a cache that hangs must not hold up API calls (the throttle then counts per process).
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
         "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))

# A batch of 1,000 events with full properties stays well under this; bigger bodies get a 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("API_MAX_BODY_BYTES", 4 * 1024 * 1024))

# Celery. In-process mode is an explicit switch, never a silent fallback: Foresight's setting, and (this project
# has no tasks but Foresight's) Celery's for every task, so that tasks sent any other way run in process too.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", REDIS_URL or None)
FORESIGHT_TASKS_IN_PROCESS = os.environ.get("FORESIGHT_TASKS_IN_PROCESS", "") == "1"
CELERY_TASK_ALWAYS_EAGER = FORESIGHT_TASKS_IN_PROCESS
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A task a dead worker had taken is handed out again after this many seconds (Redis broker):
# it must be longer than the longest task, or a slow task would also run twice.
# Kombu looks for such tasks every interval x throttle seconds, 100 s by its defaults; a throttle
# of 1 looks every 10 s (one cheap sorted-set read), so a lost task comes back soon after it is due.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600")),
    "unacked_restore_throttle": 1,
    # A broker host that does not answer fails a publish in seconds, not the system's minutes of SYN retries.
    "socket_connect_timeout": 2,
}
# Queues by workload, so each can get workers of its own size (`celery worker -Q scoring`) on any
# machine; a worker started without -Q serves them all.
CELERY_TASK_QUEUES: dict[str, dict] = {
    name: {} for name in ("celery", "scoring", "imports", "training", "campaigns", "support")}
CELERY_TASK_ROUTES = {
    "behavior.tasks.score_*": {"queue": "scoring"},
    "behavior.tasks.resend_stalled_chunks": {"queue": "scoring"},
    "behavior.tasks.check_score_outcomes": {"queue": "scoring"},
    "behavior.tasks.import_events_file": {"queue": "imports"},
    "behavior.tasks.train_models": {"queue": "training"},
    "campaigns.tasks.*": {"queue": "campaigns"},
    "support.tasks.*": {"queue": "support"},
}
CELERY_TIMEZONE = TIME_ZONE
# django-celery-beat's, writing each run down as it starts and logging what each task did (run_schedules' too).
CELERY_BEAT_SCHEDULER = "behavior.beat:Scheduler"

# Foresight's own settings (defaults and meanings: behavior/conf.py, docs/settings.md), from the environment.
FORESIGHT_API_RATES = {
    "api_key": os.environ.get("API_RATE_PER_KEY", "6000/min"),  # a server key, all its calls
    "address": os.environ.get("API_RATE_PER_ADDRESS", "600/min"),  # a public key, per client address
    "customer": os.environ.get("API_RATE_PER_CUSTOMER", "120/min"),  # a public key, per customer
}
FORESIGHT_API_TRUSTED_PROXIES = int(os.environ.get("API_TRUSTED_PROXIES", "0"))
FORESIGHT_AUDIENCE_CHUNK_CUSTOMERS = int(os.environ.get("FORESIGHT_AUDIENCE_CHUNK_CUSTOMERS", 200_000))
FORESIGHT_KEEP_SCORES_DAYS = int(os.environ.get("FORESIGHT_KEEP_SCORES_DAYS", "90"))
FORESIGHT_WEBHOOKS_ALLOW_PRIVATE = os.environ.get("FORESIGHT_WEBHOOKS_ALLOW_PRIVATE", "") == "1"
FORESIGHT_API_KEY_CACHE_SECONDS = int(os.environ.get("FORESIGHT_API_KEY_CACHE_SECONDS", "5"))
FORESIGHT_CUSTOMER_TOKEN_MAX_AGE = int(os.environ.get("FORESIGHT_CUSTOMER_TOKEN_MAX_AGE_SECONDS", 24 * 3600))
FORESIGHT_MAX_PROPERTIES_BYTES = int(os.environ.get("FORESIGHT_MAX_PROPERTIES_BYTES", "2048"))
FORESIGHT_MAX_CLOCK_SKEW = timedelta(seconds=int(os.environ.get("FORESIGHT_MAX_CLOCK_SKEW_SECONDS", "300")))
FORESIGHT_MAX_EVENT_AGE = timedelta(days=int(os.environ.get("FORESIGHT_MAX_EVENT_AGE_DAYS", "365")))

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "behavior.redaction.RedactIdentifiers"}},
    # runserver's request lines keep Django's own format, redacted like the rest (gunicorn: config/gunicorn.py).
    "formatters": {"django.server": {"()": "django.utils.log.ServerFormatter", "format": "[{server_time}] {message}",
                                     "style": "{"},
                   "plain": {"format": "[{asctime}: {levelname}/{processName}] {name}: {message}", "style": "{"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]},
        "django.server": {"class": "logging.StreamHandler", "formatter": "django.server", "filters": ["redact"]},
    },
    # Django's own handlers (a console one under DEBUG, mail to ADMINS) would print paths unredacted.
    "loggers": {"django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
                "django": {"handlers": ["console"], "level": "INFO", "propagate": False}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
