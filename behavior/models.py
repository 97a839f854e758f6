import hashlib
import secrets

from django.db import models
from django.db.models import Q

from .event_types import EVENT_TYPES


class Customer(models.Model):
    """A shopper known by the shop's own id. Erasing one erases everything derived from them."""

    external_id = models.CharField(max_length=255, unique=True)
    attributes = models.JSONField(default=dict, blank=True)
    marketing_consent = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.external_id


class AnonymousLink(models.Model):
    """An anonymous visitor id that an identify call tied to a customer."""

    anonymous_id = models.CharField(max_length=255, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="anonymous_links")
    linked_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.anonymous_id} -> {self.customer_id}"


class Product(models.Model):
    external_id = models.CharField(max_length=255, unique=True)
    name = models.CharField(max_length=500, blank=True)
    category = models.CharField(max_length=255, blank=True, db_index=True)
    brand = models.CharField(max_length=255, blank=True)
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name or self.external_id


class Event(models.Model):
    """One thing a customer (or a not yet identified visitor) did, as the shop reported it."""

    Type = models.TextChoices("Type", [(t, t.replace("_", " ")) for t in EVENT_TYPES])

    # The client's id is the primary key: one index less to maintain on the biggest table.
    event_id = models.UUIDField(
        primary_key=True, help_text="Made by the client; the same event sent twice is stored once."
    )
    # No database foreign keys or single-column indexes on the two relations of this big table:
    # checking both keys at commit cost about 14 us an event (as much as the insert itself), and
    # (customer, occurred_at) below serves every read by customer. Events are only written
    # joined to existing rows (services.ingest), and erase deletes them through the ORM cascade.
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, null=True, blank=True, related_name="events",
        db_index=False, db_constraint=False,
    )
    anonymous_id = models.CharField(max_length=255, blank=True)
    type = models.CharField(max_length=32, choices=Type.choices)
    product = models.ForeignKey(
        Product, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False, db_constraint=False
    )
    category = models.CharField(max_length=255, blank=True)
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    quantity = models.PositiveIntegerField(null=True, blank=True)
    order_id = models.CharField(max_length=255, blank=True)
    session_id = models.CharField(max_length=255, blank=True)
    rating = models.PositiveSmallIntegerField(null=True, blank=True)
    promised_at = models.DateTimeField(null=True, blank=True, help_text="Promised delivery time of an order.")
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    properties = models.JSONField(null=True, blank=True)

    class Meta:
        indexes = [
            # Feature building reads each customer's history up to a cutoff.
            models.Index(fields=["customer", "occurred_at"], name="event_customer_time"),
            # Identify looks up a visitor's events that are not linked yet.
            models.Index(
                fields=["anonymous_id"], name="event_unlinked_anonymous", condition=Q(customer__isnull=True)
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(type__in=EVENT_TYPES), name="event_type_known"),
            models.CheckConstraint(
                condition=Q(rating__isnull=True) | Q(rating__gte=1, rating__lte=5), name="event_rating_1_to_5"
            ),
            models.CheckConstraint(
                condition=Q(customer__isnull=False) | ~Q(anonymous_id=""), name="event_has_someone"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class ApiKey(models.Model):
    """A key for the REST API. Only its SHA-256 is stored; the key is shown once, when made."""

    class Scope(models.TextChoices):
        INGEST = "ingest", "ingest: send events and identify (safe in a storefront)"
        READ = "read", "read: customers and scores"
        ADMIN = "admin", "admin: customers, products, erase and export"

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, editable=False, help_text="First characters, to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash(raw_key: str) -> str:
        # Keys are 256-bit random tokens, so a fast hash is enough: nothing to brute-force.
        return hashlib.sha256(raw_key.encode()).hexdigest()

    @classmethod
    def generate(cls) -> str:
        return "fs_" + secrets.token_urlsafe(32)
