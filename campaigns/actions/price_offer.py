"""Price offers: a unique coupon code for each treated customer, with the campaign's discount, scope,
minimum order, expiry and budget (redeemed by campaigns.services.coupon_redeem)."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import IntegrityError, models, transaction
from django.db.models import F, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from behavior.actions import action_register
from behavior.charts import line_chart
from behavior.selectors import average_order_value
from campaigns.actions.base import Action, ActionSettings, CampaignError, money, shop_currency
from campaigns.models import Campaign, Coupon
from campaigns.signals import coupons_minted


class PriceOfferSettings(ActionSettings):
    class Discount(models.TextChoices):
        PERCENT = "percent", "percent off"
        FIXED = "fixed", "fixed amount off"

    class Scope(models.TextChoices):
        ALL = "all", "whole order"
        CATEGORY = "category", "one category"
        PRODUCT = "product", "one product"

    headline = models.CharField(max_length=200, blank=True, help_text="e.g. Ten percent off, for you")
    discount_kind = models.CharField(max_length=16, choices=Discount.choices, default=Discount.PERCENT)
    discount_value = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.ALL)
    scope_value = models.CharField(max_length=255, blank=True, help_text="The category, or the product's id.")
    min_order = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    valid_days = models.PositiveSmallIntegerField(default=7, validators=[MinValueValidator(1)])
    budget = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True,
                                 help_text="Total discount this campaign may grant.")
    discount_spent = models.DecimalField(max_digits=12, decimal_places=2, default=0, editable=False)
    may_stack = models.BooleanField(
        default=False, help_text="Its coupon may join another Foresight price offer on one order, if that offer's "
                                 "campaign allows stacking too. Off: an order takes this offer alone.")

    class Meta:
        verbose_name = verbose_name_plural = "price offer settings"
        constraints = [models.CheckConstraint(condition=Q(budget__isnull=True) | Q(discount_spent__lte=F("budget")),
                                              name="offer_spend_within_budget")]

    def clean(self):
        errors = {}
        if self.discount_value is None:
            pass  # a field error already
        elif self.discount_value <= 0:
            errors["discount_value"] = "A price offer needs a discount above zero."
        elif self.discount_kind == self.Discount.PERCENT and self.discount_value > 100:
            errors["discount_value"] = "A percent discount is at most 100."
        if self.scope != self.Scope.ALL and not self.scope_value:
            errors["scope_value"] = f"Name the {self.scope} the discount applies to."
        if self.budget is not None and self.budget < self.discount_spent:
            errors["budget"] = f"The offer has spent {money(self.discount_spent)} already: the budget cannot be less."
        if errors:
            raise ValidationError(errors)

    @property
    def discount_in_words(self) -> str:
        """The discount as a shopper reads it: "15% off", "5.00 EUR off"."""
        if self.discount_kind == self.Discount.PERCENT:
            return f"{Decimal(self.discount_value).normalize():f}% off"
        return f"{money(self.discount_value)} off"

    def discount_on(self, eligible: Decimal) -> Decimal:
        """The discount on an amount in the offer's scope: a percentage of it, or the fixed value up to it."""
        value = Decimal(self.discount_value)
        discount = eligible * value / 100 if self.discount_kind == self.Discount.PERCENT else min(value, eligible)
        return discount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@action_register
class PriceOffer(Action):
    kind = "price_offer"
    label = "price offer"
    settings_model = PriceOfferSettings
    shown_in_placements = True

    def valid_days(self, campaign):
        return campaign.settings.valid_days

    def treat(self, campaign, assignments, expires):
        """One unguessable code per treated assignment; a (vanishingly rare) clash draws new codes."""
        for _ in range(3):
            try:
                with transaction.atomic():
                    coupons = Coupon.objects.bulk_create([
                        Coupon(assignment=a, customer_id=a.customer_id, code=Coupon.generate_code(),
                               expires_at=expires) for a in assignments
                    ], batch_size=2_000)
                break
            except IntegrityError:
                continue
        else:
            raise CampaignError("could not mint unique coupon codes three times in a row")
        if coupons:
            coupons_minted.send(sender=Campaign, campaign=campaign, coupons=coupons)

    def expected_cost(self, campaign, buyers, now):
        """Each expected buyer redeems on the shop's average order (of the last 90 days)."""
        offer = campaign.settings
        discount = Decimal(offer.discount_value)
        if offer.discount_kind == offer.Discount.PERCENT:
            discount = average_order_value(now) * discount / 100
        return (Decimal(str(buyers)) * discount).quantize(Decimal("0.01"))

    converted = "bought or redeemed their coupon"
    spends_budget = True

    def budget(self, campaign):
        return campaign.settings.budget

    def what_it_did(self, campaign, results):
        return f"{results.redemptions:,} redemptions, {money(results.discount_spent)} discount spent"

    def charts(self, campaign):
        """Discount spent over time: one point a day, from none the day before the first redemption to today or
        the campaign's end (a line from zero even when every redemption fell on one day)."""
        days = (Coupon.objects.filter(assignment__campaign=campaign, redeemed_at__isnull=False)
                .annotate(day=TruncDate("redeemed_at")).values("day").annotate(spent=Sum("discount_amount"))
                .order_by("day"))
        spent = {row["day"].toordinal(): float(row["spent"] or 0) for row in days}
        points = []
        if spent:
            last = (min(timezone.now(), campaign.ends_at) if campaign.ends_at else timezone.now()).date().toordinal()
            total = 0.0
            points.append((min(spent) - 1, total))
            for day in range(min(spent), max(last, max(spent)) + 1):
                total += spent.get(day, 0.0)
                points.append((day, total))
        return [line_chart({"discount spent": points},
                           title=f"Discount spent over time (cumulative, {shop_currency()})",
                           x_format=lambda v: date.fromordinal(round(v)).isoformat(), y_format="{:,.0f}".format)]

    def cost_of_orders(self, campaign, first_orders):
        offer = campaign.settings
        return sum((offer.discount_on(Decimal(f"{v:.2f}")) for v in first_orders if v >= offer.min_order),
                   Decimal(0))
