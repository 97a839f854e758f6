import hashlib
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Self, cast

import pandas as pd
import requests
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from .core.event_types import EVENT_TYPES
from .core.features import TargetDefinition
from .webhooks import backoff, post_signed, refusal

MAX_HORIZON_DAYS = 365


class Customer(models.Model):
    """A shopper known by the shop's own id. Erasing one erases everything derived from them."""

    external_id = models.CharField(max_length=255, unique=True)
    attributes = models.JSONField(default=dict, blank=True)
    marketing_consent = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.external_id

    @classmethod
    def data_models(cls) -> list[tuple[type[models.Model], str]]:
        """Every model that holds rows about a customer, with the lookup from it to the customer: what export
        and the admin walk. The models that point at Customer ("customer"), then those an erasure deletes
        with theirs ("ticket__customer": a ticket's notes, the changes sent to the helpdesk)."""
        found: dict[type[models.Model], str] = {}
        reached = [(cast(type[models.Model], r.related_model), r.field.name) for r in cls._meta.related_objects]
        while reached:
            model, lookup = reached.pop(0)
            if model in found:
                continue  # a coupon points at its customer and at its assignment: once, by the shorter way
            found[model] = lookup
            reached += [(cast(type[models.Model], r.related_model), f"{r.field.name}__{lookup}")
                        for r in model._meta.related_objects if r.on_delete is models.CASCADE]
        return list(found.items())


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
    type = models.CharField(max_length=32, choices=[(t, t.replace("_", " ")) for t in EVENT_TYPES])
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
    """A key for the REST API. Only its SHA-256 is stored; the key is shown once, when made.

    A key with only the ingest scope is public (it ships in a storefront): what it reads or does for one
    customer needs a customer token, which the shop's server signs with the key's token secret
    (behavior.api.tokens). The secret must be stored as it is, to check signatures; it can mint tokens only.
    """

    class Scope(models.TextChoices):
        INGEST = "ingest", "ingest: send events, identify; with a customer token, placements and help (storefront)"
        CHECKOUT = "checkout", "checkout: redeem coupons (the shop's server)"
        READ = "read", "read: customers and scores"
        ADMIN = "admin", "admin: customers, products, erase and export"

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, editable=False, help_text="First characters, to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_secret = models.CharField(max_length=64, editable=False, default="",
                                    help_text="Signs customer tokens; shown once, when the key is made.")
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

    @staticmethod
    def generate_token_secret() -> str:
        return "fst_" + secrets.token_urlsafe(32)

    @property
    def is_public(self) -> bool:
        """Only the ingest scope: a storefront key, so anyone may hold it."""
        return set(self.scopes) <= {self.Scope.INGEST}


class Target(models.Model):
    """What a model predicts and for whom, as the shop defines it (behavior.core.features.TargetDefinition).

    Changing a definition retires the target's models and removes its scores: they answer another question
    (services.targets.target_change).
    """

    class Population(models.TextChoices):
        ALL = "all", "every customer with an event"
        BUYERS = "buyers", "customers with a purchase"
        ACTIVE = "active", "customers active in the last N days"
        IN_FLIGHT = "in_flight", "customers with an order in flight (or delivered in the last N days)"

    # No <name> in the help: the admin shows help texts as HTML, where it is a tag and vanishes ("score..").
    name = models.SlugField(max_length=32, unique=True,
                            help_text="Used in conditions as score.NAME, e.g. score.purchase_intent.")
    description = models.CharField(max_length=200, blank=True)
    horizon_days = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_HORIZON_DAYS)],
        help_text="Predicts what happens within this many days after scoring.")
    event_types = models.JSONField(default=list, blank=True, help_text="Any event of these types counts.")
    max_rating = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(5)],
        help_text="A review rated at most this counts too.")
    churn = models.BooleanField(default=False, help_text="Predicts the absence of any purchase within the horizon.")
    population = models.CharField(max_length=16, choices=Population.choices, default=Population.ALL,
                                  help_text="Whom the target scores and is judged on.")
    population_days = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(3 * MAX_HORIZON_DAYS)],
        help_text="N for active and in-flight populations; empty: what suits the horizon.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def definition(self) -> TargetDefinition:
        return TargetDefinition(
            name=self.name, horizon=pd.Timedelta(days=self.horizon_days), event_types=tuple(self.event_types),
            max_rating=self.max_rating, churn=self.churn, population=self.population,
            population_days=self.population_days, description=self.description,
        )

    def clean(self) -> None:
        unknown = sorted(set(self.event_types or []) - set(EVENT_TYPES))
        if unknown:
            raise ValidationError({"event_types": f"unknown event types {', '.join(unknown)}; known: "
                                                  f"{', '.join(EVENT_TYPES)}"})
        if self.churn and (self.event_types or self.max_rating):
            raise ValidationError("a churn target counts the absence of purchases: give no event types or rating")
        if not self.churn and not self.event_types and self.max_rating is None:
            raise ValidationError("say what counts: event types, a maximum review rating, or churn")
        if self.population_days is not None and self.population not in ("active", "in_flight"):
            raise ValidationError({"population_days": f"only active and in_flight populations take days, not "
                                                      f"{self.population}"})


class ModelVersion(models.Model):
    """A trained scorer for one target: its artifact, what it was trained on, how good it is."""

    class Kind(models.TextChoices):
        XGBOOST = "xgboost", "XGBoost"
        RECENCY = "recency", "recency"
        RECENCY_FREQUENCY = "recency_frequency", "recency/frequency"
        BROWSING = "browsing", "recent browsing"
        BG_NBD = "bg_nbd", "BG/NBD expected purchases"
        ORDER_TIMING = "order_timing", "order timing"
        RFM_LOGISTIC = "rfm_logistic", "logistic RFM"
        UPLIFT = "uplift", "uplift (whom an action persuades)"

    class Status(models.TextChoices):
        CANDIDATE = "candidate"
        CHAMPION = "champion"
        RETIRED = "retired"

    target = models.CharField(max_length=32)
    definition = models.JSONField(default=dict, blank=True, help_text="The target's definition it was trained for.")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.XGBOOST)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CANDIDATE)
    feature_names = models.JSONField(default=list)
    params = models.JSONField(default=dict, blank=True)
    trained_from = models.DateTimeField(null=True, blank=True, help_text="First training cutoff.")
    validated_at = models.DateTimeField(null=True, blank=True, help_text="The validation cutoff.")
    metrics = models.JSONField(default=dict, blank=True)
    threshold = models.FloatField(null=True, blank=True, help_text="Operating threshold chosen on validation.")
    artifact = models.FileField(upload_to="models/", blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["target"], condition=Q(status="champion"), name="one_champion_per_target"),
        ]

    def __str__(self) -> str:
        return f"{self.target} #{self.pk} ({self.status})"

    @property
    def promised(self) -> str:
        """What its validation promised, in words: its ROC-AUC on the validation rows."""
        metrics = self.metrics or {}
        if metrics.get("unvalidated"):
            return "nothing yet: unvalidated"
        if metrics.get("roc_auc") is None:
            return "no validation figure stored"
        return f"ROC-AUC {_with_interval(metrics['roc_auc'], metrics.get('roc_auc_interval'))} on the validation rows"

    @property
    def delivered(self) -> str:
        """What it delivered on the customers it scored once their horizon had passed, beside the best simple rule
        on the same customers (behavior.services.outcomes)."""
        d = (self.metrics or {}).get("delivered") or {}
        if d.get("roc_auc") is None:
            return "no outcome yet: the day's first scoring run is checked once its horizon has passed"
        words = (f"ROC-AUC {_with_interval(d['roc_auc'], d.get('roc_auc_interval'))} on {d.get('n', 0):,} customers "
                 f"scored {d['as_of'][:10]}")
        gain, low, high = d.get("versus_rule") or (None, None, None)
        if d.get("rule") and None not in (gain, low, high):
            verdict = "below the rule" if d.get("below_rule") else "at or above the rule"
            words += (f"; {d['rule']}, the best simple rule there, {d['rule_roc_auc']:.3f}: {verdict} "
                      f"({gain:+.3f} [{low:+.3f}, {high:+.3f}])")
        return words


def _with_interval(value: float, interval) -> str:
    low, high = interval or (None, None)
    return f"{value:.3f}" + (f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else "")


class ScoringRun(models.Model):
    """One scoring cycle: what ran, when, how long each stage took, how many customers."""

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    as_of = models.DateTimeField(help_text="The moment taken as now for the features.")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    chunks = models.PositiveIntegerField(default=0)
    customers = models.PositiveIntegerField(default=0)
    stage_seconds = models.JSONField(default=dict, blank=True)
    model_versions = models.JSONField(default=dict, blank=True, help_text="Target -> model version id.")
    skipped = models.JSONField(default=dict, blank=True, help_text="Target -> why it was not scored.")
    norms = models.JSONField(default=dict, blank=True, help_text="The shop's usual figures its chunks compare with.")
    error = models.TextField(blank=True)
    keeps_scores = models.BooleanField(
        default=False, help_text="The first run of each day keeps a copy of its scores, to see how they turned out."
    )
    outcomes = models.JSONField(
        default=dict, blank=True,
        help_text="Target -> how the kept scores did against what customers did within the target's horizon.",
    )

    def __str__(self) -> str:
        return f"scoring run {self.pk} ({self.status})"


class ScoringChunk(models.Model):
    """A range of customers of a run: the database, not the broker, knows which ranges are still to score."""

    run = models.ForeignKey(ScoringRun, on_delete=models.CASCADE, related_name="chunk_rows")
    first = models.BigIntegerField(help_text="First customer id of the range.")
    last = models.BigIntegerField(help_text="Last customer id of the range.")
    dispatched_at = models.DateTimeField(help_text="When it was last sent to the workers.")
    finished_at = models.DateTimeField(null=True, blank=True)
    customers = models.PositiveIntegerField(default=0)
    stage_seconds = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "first"], name="one_chunk_per_range")]

    def __str__(self) -> str:
        return f"run {self.run_id} customers {self.first}..{self.last}"


class Score(models.Model):
    """A customer's current probability for a target, with the reasons behind it.

    Every scoring run rewrites every row, so the table keeps only the unique (customer, target) index
    besides its key, and half of each page free (migration 0010): an update that changes no indexed
    column and finds room on its page is a heap-only tuple, which touches no index. Measured on
    2,000,000 rows, a chunk of 100,000 took 2.0 s with indexes on customer, model version and run too,
    1.4 s without them, 0.96 s with the free half. Reads by run or model version scan the table: a
    deletion's check 0.2 s, a run's score distribution in the admin 0.6 s.
    """

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="scores", db_index=False)
    target = models.CharField(max_length=32)
    probability = models.FloatField()
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+", db_index=False)
    run = models.ForeignKey(ScoringRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                            db_index=False)
    scored_at = models.DateTimeField()
    reasons = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "target"], name="one_score_per_customer_target")]

    def __str__(self) -> str:
        return f"{self.target} {self.probability:.3f} for {self.customer_id}"


class PastScore(models.Model):
    """A score as a run that keeps its scores wrote it, read once the horizon has passed (ScoringRun.outcomes)."""

    # The unique key below starts with the run: it is the run's index too.
    run = models.ForeignKey(ScoringRun, on_delete=models.CASCADE, related_name="past_scores", db_index=False)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="past_scores")
    target = models.CharField(max_length=32)
    probability = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "customer", "target"], name="one_past_score_per_run")]

    def __str__(self) -> str:
        return f"{self.target} {self.probability:.3f} for {self.customer_id} in run {self.run_id}"


class Singleton(models.Model):
    """Settings of one row: whatever saves it (the admin's add page too) saves row 1, the row `current()` reads, so
    a row added after another was deleted is not left beside an empty one that everyone reads."""

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)

    @classmethod
    def current(cls) -> Self:
        return cls._default_manager.get_or_create(pk=1)[0]


class ContactPolicy(Singleton):
    """The contact-pressure budget that campaigns and support share: one row, edited in the admin."""

    max_contacts = models.PositiveSmallIntegerField(
        default=3, help_text="At most this many outreaches (ads, offers, proactive tickets) per customer ..."
    )
    per_days = models.PositiveSmallIntegerField(default=7, help_text="... in any window of this many days.")

    class Meta:
        verbose_name_plural = "contact policy"

    def __str__(self) -> str:
        return f"at most {self.max_contacts} contacts in {self.per_days} days"



class Contact(models.Model):
    """One outreach to a customer, by a campaign or a support rule; it spends their contact budget."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="contacts")
    source = models.CharField(max_length=64, help_text='Who reached out, e.g. "campaign 12" or "support rule 3".')
    contacted_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["customer", "contacted_at"], name="contact_customer_time")]

    def __str__(self) -> str:
        return f"{self.source} -> {self.customer_id} at {self.contacted_at:%Y-%m-%d %H:%M}"


class WebhookDestination(Singleton):
    """A service of the shop's that Foresight posts signed webhooks to (behavior.webhooks): one row each."""

    service: str  # what the service is called, in messages: "helpdesk"
    enabled = models.BooleanField(default=False, help_text="Send to this service.")
    url = models.URLField(blank=True, help_text="The service's webhook receiver.")
    secret = models.CharField(
        max_length=255, blank=True,
        help_text="Shared secret: each request carries an HMAC-SHA256 of its timestamp and body in "
        "X-Foresight-Signature (t=<unix time>,v1=<hex>).",
    )
    retry_base_seconds = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1)],
        help_text="First retry after this long, doubling after each failure up to an hour.",
    )

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.service} at {self.url}" if self.enabled else f"{self.service} (disabled)"

    def clean(self):
        if self.enabled and not (self.url and self.secret):
            raise ValidationError(f"An enabled {self.service} needs a URL and a secret.")
        refused = refusal(self.url)
        if refused:
            raise ValidationError({"url": refused})


class WebhookDelivery(models.Model):
    """One webhook to send to a WebhookDestination until it is delivered (its subclass says what it carries)."""

    LEASE = timedelta(seconds=60)  # far over a request's timeout: a lease never ends while its request runs

    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    next_attempt_at = models.DateTimeField()
    lease_until = models.DateTimeField(null=True, blank=True, help_text="A sender holds it until then.")
    attempts = models.PositiveIntegerField(default=0)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        abstract = True

    def send(self, session: requests.Session, destination: WebhookDestination, *, body: bytes, event: str,
             clock: Callable[[], datetime], still: Q | None = None) -> tuple[bool | None, bytes]:
        """Deliver it once: (True, the answer) when delivered; False when it failed, to be tried again with
        backoff; None when another sender holds it. A sender takes it by a conditional update of its lease
        (the row count says who won) and sends with no transaction open, so two workers never send it at
        once and no database lock waits on the network; one whose answer was lost is sent again with the same
        Idempotency-Key, for the receiver to drop. `still`: what must hold when the lease is taken, or it is not."""
        at = clock()
        free = Q(lease_until__isnull=True) | Q(lease_until__lt=at)
        mine = type(self)._default_manager.filter(pk=self.pk, delivered_at__isnull=True)
        if not mine.filter(free, still or Q()).update(lease_until=at + self.LEASE):
            return None, b""
        error, answer = post_signed(session, url=destination.url, secret=destination.secret, body=body,
                                    headers={"Idempotency-Key": str(self.idempotency_key), "X-Foresight-Event": event})
        if error:
            mine.update(attempts=F("attempts") + 1, lease_until=None, last_error=error,
                        next_attempt_at=clock() + backoff(destination.retry_base_seconds, self.attempts))
            return False, answer
        mine.update(attempts=F("attempts") + 1, delivered_at=clock(), lease_until=None, last_error="")
        return True, answer
