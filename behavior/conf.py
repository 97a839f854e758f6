"""Foresight's settings, each with its default here: a project sets `FORESIGHT_<NAME>` to change one.

    from behavior.conf import foresight_settings
    foresight_settings.MAX_BATCH_EVENTS

Read on every use, so that a changed setting (a test's override) applies at once. docs/settings.md
says what each one does.
"""

from datetime import timedelta
from typing import Any

from django.conf import settings

PREFIX = "FORESIGHT_"

DEFAULTS: dict[str, Any] = {
    # Events: at most this many per API call, properties at most this many bytes of JSON, times at most
    # this far in the future, and (API only; imports of history are not limited) at most this old.
    "MAX_BATCH_EVENTS": 1000,
    "MAX_PROPERTIES_BYTES": 2048,
    "MAX_CLOCK_SKEW": timedelta(minutes=5),
    "MAX_EVENT_AGE": timedelta(days=365),
    # API calls a minute: a server key, all its calls; a public key, per client address and per customer.
    "API_RATES": {"api_key": "6000/min", "address": "600/min", "customer": "120/min"},
    # Proxies in front of the API whose X-Forwarded-For names the client; 0: the connection's own address.
    "API_TRUSTED_PROXIES": 0,
    # How long a process keeps an API key it looked up: revoking a key takes effect within this (seconds).
    "API_KEY_CACHE_SECONDS": 5,
    # The longest a storefront's placements answer is kept in Redis (seconds): it is retired at once by any
    # change that Foresight makes; this bounds one a missed retirement (Redis unreachable just then) leaves.
    "PLACEMENTS_CACHE_SECONDS": 300,
    # The longest a customer token may live (seconds).
    "CUSTOMER_TOKEN_MAX_AGE": 24 * 3600,
    # The first scoring run of each day keeps its scores this long, to check how they turned out (days).
    "KEEP_SCORES_DAYS": 90,
    # Campaign audiences are computed by workers in ranges of this many customers.
    "AUDIENCE_CHUNK_CUSTOMERS": 200_000,
    # The shop's currency (an ISO 4217 code), shown beside every amount in the admin.
    "CURRENCY": "EUR",
    # The helpdesk webhook may go to loopback, link-local and private addresses (a helpdesk on the shop's
    # own network); off, only public ones are reached.
    "WEBHOOKS_ALLOW_PRIVATE": False,
    # Foresight's tasks run where they are sent from (a request, a command, `run_schedules`), not on Celery
    # workers; the project's own Celery tasks are not affected.
    "TASKS_IN_PROCESS": False,
}


class AppSettings:
    """Settings named PREFIX + NAME, each read with its default from `defaults` (the Oscar connector has its own)."""

    def __init__(self, prefix: str, defaults: dict[str, Any]):
        self._prefix, self._defaults = prefix, defaults

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self._defaults:
            raise AttributeError(f"Foresight has no setting {self._prefix}{name}")
        default = self._defaults[name]
        value = getattr(settings, self._prefix + name, default)
        # A dict setting names only what it changes: FORESIGHT_API_RATES = {"customer": "60/min"}.
        return {**default, **value} if isinstance(default, dict) else value


foresight_settings = AppSettings(PREFIX, DEFAULTS)
