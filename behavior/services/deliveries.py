"""Sending queued webhooks (behavior.models.WebhookDelivery) to their destination until none is due."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import requests
from django.db.models import QuerySet
from django.utils import timezone

from behavior.models import WebhookDelivery, WebhookDestination
from behavior.webhooks import webhook_session

BATCH = 100
D = TypeVar("D", bound=WebhookDelivery)


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0


def deliveries_send(*, destination: WebhookDestination, due: Callable[[datetime], QuerySet[D]],
                    send: Callable[[requests.Session, D, Callable[[], datetime]], bool | None],
                    now: datetime | None = None, limit: int = 1_000) -> DeliveryReport:
    """Send what `due(at)` lists, a batch at a time, until nothing is due or `limit` were tried; nothing while
    the destination is disabled. `send` sends one (WebhookDelivery.send, with its body); `now` fixes the clock
    that schedules retries (tests step it forward), by default the real time."""
    report = DeliveryReport()
    if not destination.enabled:
        return report
    clock: Callable[[], datetime] = (lambda: now) if now else timezone.now
    with webhook_session() as session:
        while report.delivered + report.failed < limit:
            batch = list(due(clock())[:BATCH])
            if not batch:
                break
            for delivery in batch:
                sent = send(session, delivery, clock)
                if sent is not None:
                    report.delivered += sent
                    report.failed += not sent
    return report
