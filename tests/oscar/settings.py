"""A django-oscar shop with Foresight and its Oscar connector, set up as a shop developer would: Oscar's own
settings (its INSTALLED_APPS, middleware, context processors, search), then the README's Foresight lines.
The settings of the connector's tests (`pytest tests/oscar --ds tests.oscar.settings`)."""

import os
from pathlib import Path

import dj_database_url
from oscar import INSTALLED_APPS as OSCAR_APPS
from oscar.defaults import *  # noqa: F403  (Oscar's OSCAR_ settings)

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "oscar-shop-for-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
SITE_ID = 1
ROOT_URLCONF = "tests.oscar.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
MEDIA_ROOT = os.environ.get("MEDIA_ROOT", "/tmp/foresight-oscar-media")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

DATABASES = {"default": dj_database_url.parse(
    os.environ.get("OSCAR_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/foresight_oscar"))}

INSTALLED_APPS = [*OSCAR_APPS, "sorl.thumbnail"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "oscar.apps.basket.middleware.BasketMiddleware",
    "django.contrib.flatpages.middleware.FlatpageFallbackMiddleware",
]
AUTHENTICATION_BACKENDS = ["oscar.apps.customer.auth_backends.EmailBackend",
                           "django.contrib.auth.backends.ModelBackend"]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [BASE_DIR / "templates"],  # the shop's own templates: Oscar's, with Foresight's tags in them
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.debug",
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.template.context_processors.i18n",
        "django.contrib.messages.context_processors.messages",
        "oscar.apps.search.context_processors.search_form",
        "oscar.apps.checkout.context_processors.checkout",
        "oscar.apps.communication.notifications.context_processors.notifications",
        "oscar.core.context_processors.metadata",
    ]},
}]
HAYSTACK_CONNECTIONS = {"default": {"ENGINE": "haystack.backends.simple_backend.SimpleEngine"}}
OSCAR_ORDER_STATUS_PIPELINE = {"Pending": ("Shipped", "Cancelled"), "Shipped": ("Delivered", "Refunded"),
                               "Delivered": ("Refunded",), "Cancelled": (), "Refunded": ()}
OSCAR_INITIAL_ORDER_STATUS = "Pending"

# foresight: settings (the README's lines)
INSTALLED_APPS += [app for app in [
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "behavior",
    "campaigns",
    "support",
] if app not in INSTALLED_APPS]  # the project may use some of them already
FORESIGHT_TASKS_IN_PROCESS = True

# foresight: oscar settings (the README's lines)
INSTALLED_APPS += ["foresight_oscar"]
FORESIGHT_OSCAR_ORDER_STATUS_EVENTS = {"Shipped": "order_shipped", "Delivered": "order_delivered",
                                       "Refunded": "refund"}
