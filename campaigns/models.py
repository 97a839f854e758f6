import secrets
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from behavior.conditions import validate_condition
from behavior.models import Customer, ScoringRun, WebhookDelivery, WebhookDestination
from campaigns.actions import Action, action_of, kind_choices
from campaigns.actions.base import ActionSettings

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I: codes are read aloud and typed
CODE_LENGTH = 12  # 32**12 = 2**60 codes: guessing one of a million live codes takes ~10**12 tries


class Campaign(models.Model):
    """An audience (a condition over scores, features and customer fields) and what its members get."""

    class Status(models.TextChoices):
        DRAFT = "draft"
        ACTIVE = "active"
        PAUSED = "paused"
        ENDED = "ended"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=kind_choices, help_text="What its treated customers get.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    condition = models.JSONField(
        validators=[validate_condition],
        help_text='Who is in the audience, e.g. {"field": "score.purchase_intent", "op": "gte", "value": 0.5}; '
        'combine rules with {"all": [...]}, {"any": [...]} and {"not": {...}}. Only customers with marketing '
        "consent are ever reached."
    )
    priority = models.IntegerField(default=0, help_text="Higher goes first when the contact budget is short.")
    slot = models.CharField(max_length=64, default="home", help_text="The storefront placement that shows it.")
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    holdout_percent = models.DecimalField(
        max_digits=5, decimal_places=2, default=10, validators=[MinValueValidator(0), MaxValueValidator(50)],
        help_text="Share of the audience kept as a control group: they get nothing and are measured.",
    )
    period_days = models.PositiveSmallIntegerField(
        default=7, validators=[MinValueValidator(1)], help_text="A customer is assigned at most once per period."
    )
    attribution_days = models.PositiveSmallIntegerField(
        default=7, validators=[MinValueValidator(1)], help_text="Purchases this long after assignment count."
    )
    max_assignments = models.PositiveIntegerField(
        null=True, blank=True, help_text="Cap on customers treated (offers minted) over the campaign's life."
    )
    skip_likely_buyers_above = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="Leave out customers whose purchase intent is at least this: they would buy anyway.",
    )
    uplift_top_percent = models.DecimalField(
        max_digits=5, decimal_places=2, null=True, blank=True,
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(100)],
        help_text="Keep to this share of the audience: those the campaign's uplift model expects its action to "
        "persuade most (the control group is held out from them). Until the campaign has such a model, learnt "
        "from its own treatment and control groups, the condition alone chooses.",
    )
    uplift_top_count = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Keep to at most this many customers of the audience, those with the highest predicted uplift "
        "(with the share above, the smaller of the two).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name

    @property
    def targets_by_uplift(self) -> bool:
        return self.uplift_top_percent is not None or self.uplift_top_count is not None

    @property
    def uplift_target(self) -> str:
        """The name its uplift models are registered under (behavior's model registry)."""
        return f"uplift:campaign:{self.pk}"

    def clean(self):
        errors = {}
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            errors["ends_at"] = "The end must come after the start."
        if self.targets_by_uplift and self.holdout_percent is not None and self.holdout_percent <= 0:
            errors["holdout_percent"] = ("Targeting by uplift learns whom the action persuades from the control "
                                         "group: hold some of the audience out.")
        if errors:
            raise ValidationError(errors)

    def period_at(self, now: datetime) -> int:
        """The period a moment falls in: a customer is assigned at most once in each."""
        return (now - datetime(1970, 1, 1, tzinfo=now.tzinfo)).days // self.period_days

    @property
    def action(self) -> Action:
        return action_of(self.kind)

    @property
    def settings(self) -> ActionSettings | None:
        """The campaign's settings of its action (each action's own model, in its module), None for an action
        without any; a campaign not given its settings yet has the defaults (unsaved)."""
        model = self.action.settings_model
        if model is None:
            return None
        try:
            return getattr(self, model._meta.get_field("campaign").remote_field.get_accessor_name())
        except model.DoesNotExist:
            return model(campaign=self)


class CampaignAudience(models.Model):
    """A campaign's audience figures (campaigns.selectors.AudiencePreview) as last computed, for its page: by the
    evaluation that follows a scoring run (live campaigns), else in the background (campaign_audience_request). The
    page never computes them: that reads every customer's events (12.6 s at 100,000 customers)."""

    class Source(models.TextChoices):
        EVALUATION = "evaluation"
        BACKGROUND = "background"

    campaign = models.OneToOneField(Campaign, on_delete=models.CASCADE, primary_key=True,
                                    related_name="audience_stored")
    # What they were computed for: the campaign's condition and settings (campaign_fingerprint) at `as_of`.
    fingerprint = models.CharField(max_length=64, blank=True)
    as_of = models.DateTimeField(null=True, blank=True, help_text="The moment the figures are for; none yet.")
    source = models.CharField(max_length=16, choices=Source.choices, blank=True)
    run = models.ForeignKey(ScoringRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    audience = models.PositiveIntegerField(default=0)
    targeting = models.CharField(max_length=500, blank=True)
    kept = models.PositiveIntegerField(default=0)
    holdout = models.PositiveIntegerField(default=0)
    treated = models.PositiveIntegerField(default=0)
    expected_redemptions = models.FloatField(default=0)
    expected_uplift = models.FloatField(null=True, blank=True)
    expected_cost = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, help_text="Why the last computation gave no figures.")
    # A background computation asked for (for `requested_fingerprint`), and how far it has come.
    requested_fingerprint = models.CharField(max_length=64, blank=True)
    requested_at = models.DateTimeField(null=True, blank=True)
    progress = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"audience of {self.campaign_id}"


class Assignment(models.Model):
    """A customer picked by a campaign in one period: treated (shown the ad or offer) or held out as control."""

    class Group(models.TextChoices):
        TREATMENT = "treatment"
        CONTROL = "control"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="assignments")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="campaign_assignments")
    period = models.PositiveIntegerField(help_text="Days since 1970 divided by the campaign's period.")
    group = models.CharField(max_length=16, choices=Group.choices)
    run = models.ForeignKey(ScoringRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    assigned_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    products = models.JSONField(default=list, blank=True, help_text="An ad's products: id and why.")
    reason = models.CharField(max_length=500, blank=True)
    impressions = models.PositiveIntegerField(default=0)
    first_shown_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "customer", "period"], name="one_assignment_per_period"),
        ]
        indexes = [models.Index(fields=["customer", "expires_at"], name="assignment_customer_live")]

    def __str__(self) -> str:
        return f"{self.campaign} -> {self.customer} ({self.group})"


class Coupon(models.Model):
    """A price offer's code for one customer: single use, expires, spends the campaign's budget."""

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="coupon")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="coupons")
    code = models.CharField(max_length=CODE_LENGTH, unique=True)
    expires_at = models.DateTimeField()
    redeemed_at = models.DateTimeField(null=True, blank=True)
    order_id = models.CharField(max_length=255, blank=True)
    discount_amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)

    class Meta:
        # A redemption looks for the offers already redeemed on its order (one price offer per order).
        indexes = [models.Index(fields=["order_id"], condition=Q(redeemed_at__isnull=False),
                                name="coupon_redeemed_order")]

    def __str__(self) -> str:
        return self.code

    @staticmethod
    def generate_code() -> str:
        return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


class MessagingSettings(WebhookDestination):
    """Where message campaigns send their messages: the shop's own e-mail or messaging service; one row."""

    service = "messaging service"

    class Meta:
        verbose_name_plural = "messaging settings"


class Message(WebhookDelivery):
    """A message campaign's message to one treated customer, sent as a signed webhook until delivered."""

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="message")

    class Meta:
        indexes = [models.Index(fields=["next_attempt_at"], condition=Q(delivered_at__isnull=True),
                                name="message_undelivered")]

    def __str__(self) -> str:
        return f"message {self.pk}"


# Each action keeps its settings model in its own module: importing them here registers the models and the
# actions (campaigns.actions.registry).
from campaigns.actions import ad, message, price_offer  # noqa: E402, F401
