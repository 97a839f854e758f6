"""Messages: for each treated customer, one message through the shop's own e-mail or messaging service.

Foresight decides who gets a message and when (the campaign's audience, holdout, caps and contact budget,
as for any action); the shop's service writes and sends it, from this signed webhook (behavior.webhooks):

    POST <messaging service URL>
    X-Foresight-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>
    Idempotency-Key: <the message's id>
    {"id": "...", "campaign": {"id": 3, "name": "..."}, "customer": "<the shop's customer id>",
     "subject": "<the campaign's headline>", "reason": "<why this customer>", "assigned_at": "...",
     "expires_at": "..."}

A message is stored with its assignment, in the evaluation's transaction, and sent after the commit; a
failed send (an error status, a timeout, a dropped connection) is retried with backoff until delivered
(behavior.models.WebhookDelivery: a leased send, never two at once, the same Idempotency-Key again). A message
is sent only while its campaign is active, its assignment live and the customer consenting: one that misses
its window stays unsent, and says so in the admin.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

import orjson
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from behavior.actions import action_register
from behavior.broker import hand_over
from behavior.services.deliveries import DeliveryReport, deliveries_send
from campaigns.actions.base import Action, ActionSettings
from campaigns.models import Campaign, Message, MessagingSettings


class MessageContent(ActionSettings):
    headline = models.CharField(max_length=200, help_text="The shop's service gets it as the subject.")

    class Meta:
        verbose_name = verbose_name_plural = "message content"

    def clean(self):
        if not MessagingSettings.current().enabled:
            raise ValidationError("Messages go through the shop's e-mail or messaging service: set it up in the "
                                  "admin's Messaging settings first.")


@action_register
class MessageAction(Action):
    kind = "message"
    label = "message (e-mail or app)"
    settings_model = MessageContent

    def what_it_did(self, campaign, results):
        messages = Message.objects.filter(assignment__campaign=campaign)
        return f"{messages.filter(delivered_at__isnull=False).count():,} of {messages.count():,} messages delivered"

    def treat(self, campaign, assignments, expires):
        now = timezone.now()
        Message.objects.bulk_create([Message(assignment=a, next_attempt_at=now) for a in assignments],
                                    batch_size=2_000)
        if assignments:
            transaction.on_commit(_deliver_soon)


def _deliver_soon() -> None:
    """Wake a sender now; with the broker down the messages wait for the every-minute delivery instead."""
    from campaigns.tasks import deliver_messages

    hand_over(deliver_messages.si(), sweeper="the every-minute message delivery")


def messages_deliver(*, now: datetime | None = None, limit: int = 1_000) -> DeliveryReport:
    """Send due messages until none is due or `limit` were tried."""
    service = MessagingSettings.current()
    return deliveries_send(destination=service, due=_due, now=now, limit=limit,
                           send=lambda session, message, clock: message.send(
                               session, service, body=orjson.dumps(payload(message)), event="message",
                               clock=clock, still=_sendable(clock()))[0])


def _sendable(at: datetime) -> Q:
    """A message may go out only while its campaign is active, its assignment live and its customer consenting."""
    return Q(assignment__expires_at__gt=at, assignment__customer__marketing_consent=True,
             assignment__campaign__status=Campaign.Status.ACTIVE)


def _due(at: datetime):
    return (Message.objects.filter(delivered_at__isnull=True, next_attempt_at__lte=at)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=at)).filter(_sendable(at))
            .select_related("assignment__campaign__messagecontent", "assignment__customer")
            .order_by("next_attempt_at", "pk"))


def payload(message: Message) -> dict:
    assignment = message.assignment
    content = cast(MessageContent, assignment.campaign.settings)
    return {"id": str(message.idempotency_key), "campaign": {"id": assignment.campaign_id,
                                                             "name": assignment.campaign.name},
            "customer": assignment.customer.external_id, "subject": content.headline,
            "reason": assignment.reason, "assigned_at": assignment.assigned_at.isoformat(),
            "expires_at": assignment.expires_at.isoformat()}
