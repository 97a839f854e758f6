import string

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from behavior.conditions import validate_condition
from behavior.core.words import duration_in_words
from behavior.models import Customer, ScoringRun, WebhookDelivery, WebhookDestination
from support.facts import stars

# What a rule's message to the customer may name; every value comes from the ticket and its facts.
MESSAGE_PLACEHOLDERS = {
    "ticket": "the ticket's number",
    "order_id": "the latest order past its promised delivery",
    "days_late": "how late that order is, e.g. 5 days",
    "review_order_id": "the order of the customer's latest review",
    "rating": "that review's rating, e.g. 2 stars",
}
FALLBACK_MESSAGE = "We have opened ticket {ticket} to help you; we will be in touch soon."


class Priority(models.IntegerChoices):
    LOW = 1
    NORMAL = 2
    HIGH = 3
    URGENT = 4


def message_placeholders(template: str) -> list[str]:
    """The names a message template uses; raises ValueError for anything but plain known {names}."""
    names = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if name not in MESSAGE_PLACEHOLDERS or spec or conversion:
            known = ", ".join("{" + n + "}" for n in MESSAGE_PLACEHOLDERS)
            raise ValueError(f"{{{name}}} is not a placeholder a message may use; use {known}")
        names.append(name)
    return names


class SupportRule(models.Model):
    """Who gets a proactive ticket (a condition over scores, features and customer fields), and how it is handled."""

    name = models.CharField(max_length=200)
    active = models.BooleanField(default=False)
    condition = models.JSONField(
        validators=[validate_condition],
        help_text='Who gets a ticket, e.g. {"all": [{"field": "score.support_risk", "op": "gte", "value": 0.6}, '
        '{"field": "feature.orders_open_past_due", "op": "gte", "value": 1}]}.'
    )
    priority = models.PositiveSmallIntegerField(
        choices=Priority.choices, default=Priority.NORMAL,
        help_text="The tickets' priority; higher rules also go first when a customer's contact budget is short.",
    )
    group = models.CharField(max_length=100, default="support", help_text="The team that handles the tickets.")
    sla_hours = models.PositiveIntegerField(
        default=24, validators=[MinValueValidator(1)], help_text="A ticket is due this long after it opens; "
        "overdue tickets are escalated one priority level."
    )
    dedupe_days = models.PositiveSmallIntegerField(
        default=14, help_text="After a ticket of this rule, the same customer gets no new one for this many days."
    )
    subject = models.CharField(max_length=200, help_text="The ticket's subject for agents, e.g. Late order.")
    customer_message = models.CharField(
        max_length=500, default="Your order {order_id} is {days_late} late; we have opened ticket {ticket}.",
        help_text="Shown in the storefront. Placeholders: "
        + ", ".join(f"{{{n}}} ({words})" for n, words in MESSAGE_PLACEHOLDERS.items())
        + f". A customer without those facts sees: {FALLBACK_MESSAGE}",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name

    def clean(self):
        errors = {}
        try:
            message_placeholders(self.customer_message)
        except ValueError as error:
            errors["customer_message"] = str(error)
        if errors:
            raise ValidationError(errors)


class Ticket(models.Model):
    """A customer's support case: opened proactively by a rule, by the customer, or by an agent."""

    class Origin(models.TextChoices):
        PROACTIVE = "proactive"
        CUSTOMER = "customer"
        AGENT = "agent"

    class Status(models.TextChoices):
        OPEN = "open"
        PENDING = "pending", "pending (waiting on the customer)"
        SOLVED = "solved"
        CLOSED = "closed"

    UNRESOLVED = (Status.OPEN, Status.PENDING)

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="tickets")
    rule = models.ForeignKey(SupportRule, on_delete=models.PROTECT, null=True, blank=True, related_name="tickets")
    origin = models.CharField(max_length=16, choices=Origin.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    group = models.CharField(max_length=100)
    subject = models.CharField(max_length=200)
    description = models.TextField(blank=True, help_text="What the customer wrote, for tickets they started.")
    reasons = models.JSONField(default=list, blank=True, help_text="Why the rule opened it, in plain words.")
    facts = models.JSONField(default=dict, blank=True, help_text="The order, lateness and review behind it.")
    source_event = models.UUIDField(
        null=True, blank=True, unique=True, help_text="The support_contact event a customer's ticket came from."
    )
    run = models.ForeignKey(ScoringRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    opened_at = models.DateTimeField()
    due_at = models.DateTimeField()
    escalated_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True, help_text="When the customer saw the message.")
    updated_at = models.DateTimeField(auto_now=True)
    external_reference = models.CharField(max_length=255, blank=True, help_text="The helpdesk's id for it.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "customer"], condition=Q(origin="proactive", status__in=["open", "pending"]),
                name="one_open_proactive_ticket_per_rule",
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "status"], name="ticket_customer_status"),
            models.Index(fields=["due_at"], name="ticket_unresolved_due",
                         condition=Q(status__in=["open", "pending"], escalated_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"ticket {self.pk}: {self.subject}"

    @property
    def customer_message(self) -> str:
        """What the storefront shows: the rule's message with the ticket's facts, or the fallback without them."""
        values = {**self.facts, "ticket": self.pk}
        if "days_late" in values:
            values["days_late"] = duration_in_words(values["days_late"])
        if "rating" in values:
            values["rating"] = stars(values["rating"])
        template = self.rule.customer_message if self.rule else FALLBACK_MESSAGE
        if any(values.get(name) is None for name in message_placeholders(template)):
            template = FALLBACK_MESSAGE
        return template.format_map(values)


class HelpdeskSettings(WebhookDestination):
    """Where ticket changes are sent: one row, edited in the admin."""

    service = "helpdesk"

    class Meta:
        verbose_name_plural = "helpdesk settings"


class TicketNote(models.Model):
    """An agent's note on a ticket: never shown to the customer, sent to the helpdesk as a change of the ticket."""

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="+")
    text = models.TextField(max_length=10_000)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"note on ticket {self.ticket_id}"


class OutboxMessage(WebhookDelivery):
    """One ticket change to send to the helpdesk; a ticket's messages are delivered in sequence order.

    The one message without a ticket says that an erased customer's tickets must be erased there too.
    """

    class Kind(models.TextChoices):
        OPENED = "ticket.opened"
        STATUS_CHANGED = "ticket.status_changed"
        ESCALATED = "ticket.escalated"
        ACKNOWLEDGED = "ticket.acknowledged"
        NOTE_ADDED = "ticket.note_added"
        ERASED = "tickets.erased"

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="outbox", null=True, blank=True,
                               help_text="Empty for an erasure: the tickets it names are gone here.")
    sequence = models.PositiveIntegerField(help_text="The change's number within its ticket, from 1.")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    payload = models.JSONField(help_text="The ticket as it was after the change.")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["ticket", "sequence"], name="one_outbox_message_per_sequence")]
        indexes = [models.Index(fields=["next_attempt_at"], name="outbox_undelivered",
                                condition=Q(delivered_at__isnull=True))]

    def __str__(self) -> str:
        if self.ticket_id is None:
            return f"{self.kind} ({len(self.payload.get('tickets', []))} tickets)"
        return f"{self.kind} #{self.sequence} of ticket {self.ticket_id}"
