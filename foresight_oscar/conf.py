"""The connector's settings, under FORESIGHT_OSCAR_, with their defaults here (docs/oscar.md)."""

from datetime import datetime
from typing import Any

from django.utils.module_loading import import_string

from behavior.conf import AppSettings

DEFAULTS: dict[str, Any] = {
    # Oscar's order statuses are the shop's own words (OSCAR_ORDER_STATUS_PIPELINE): the ones that mean an
    # order was shipped, delivered or refunded, and the Foresight event each becomes.
    "ORDER_STATUS_EVENTS": {"Shipped": "order_shipped", "Delivered": "order_delivered", "Refunded": "refund"},
    # A function order -> the delivery time promised for it (a timezone-aware datetime) or None, as a dotted
    # path: Oscar has no delivery promise of its own, and Foresight's support risk learns from late orders.
    "PROMISED_AT": None,
}

oscar_settings = AppSettings("FORESIGHT_OSCAR_", DEFAULTS)


def promised_at(order) -> datetime | None:
    path = oscar_settings.PROMISED_AT
    return import_string(path)(order) if path else None
