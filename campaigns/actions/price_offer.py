"""Price offers: a unique coupon code for each treated customer, with the campaign's discount, scope,
minimum order, expiry and budget (redeemed by campaigns.services.coupon_redeem)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Avg, F, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from behavior.actions import action_register
from behavior.charts import line_chart
from behavior.conf import foresight_settings
from behavior.models import Event
from campaigns.actions.base import Action, CampaignError, money
from campaigns.models import Campaign, Coupon
from campaigns.signals import coupons_minted


@action_register
class PriceOffer(Action):
    kind = "price_offer"
    label = "price offer"
    fields = ("discount_kind", "discount_value", "scope", "scope_value", "min_order", "valid_days", "budget",
              "spent")
    shown_in_placements = True

    def validate(self, campaign):
        errors = {}
        if campaign.discount_value <= 0:
            errors["discount_value"] = "A price offer needs a discount above zero."
        elif campaign.discount_kind == Campaign.Discount.PERCENT and campaign.discount_value > 100:
            errors["discount_value"] = "A percent discount is at most 100."
        if campaign.scope != Campaign.Scope.ALL and not campaign.scope_value:
            errors["scope_value"] = f"Name the {campaign.scope} the discount applies to."
        return errors

    def valid_days(self, campaign):
        return campaign.valid_days

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
        discount = Decimal(campaign.discount_value)
        if campaign.discount_kind == Campaign.Discount.PERCENT:
            average = (Event.objects.filter(type="purchase", occurred_at__gte=now - timedelta(days=90),
                                            occurred_at__lt=now)
                       .aggregate(v=Avg(F("price") * Coalesce(F("quantity"), 1)))["v"]) or Decimal(0)
            discount = Decimal(str(average)) * discount / 100
        return (Decimal(str(buyers)) * discount).quantize(Decimal("0.01"))

    converted = "bought or redeemed their coupon"
    spends_budget = True

    def what_it_did(self, campaign, results):
        return f"{results.redemptions:,} redemptions, {money(results.discount_spent)} discount spent"

    def charts(self, campaign):
        """Discount spent over time: one point a day, from the first redemption to today or the campaign's end."""
        days = (Coupon.objects.filter(assignment__campaign=campaign, redeemed_at__isnull=False)
                .annotate(day=TruncDate("redeemed_at")).values("day").annotate(spent=Sum("discount_amount"))
                .order_by("day"))
        spent = {row["day"].toordinal(): float(row["spent"] or 0) for row in days}
        points = []
        if spent:
            last = (min(timezone.now(), campaign.ends_at) if campaign.ends_at else timezone.now()).date().toordinal()
            total = 0.0
            for day in range(min(spent), max(last, max(spent)) + 1):
                total += spent.get(day, 0.0)
                points.append((day, total))
        return [line_chart({"discount spent": points},
                           title=f"Discount spent over time (cumulative, {foresight_settings.CURRENCY})",
                           x_format=lambda v: date.fromordinal(round(v)).isoformat(), y_format="{:,.0f}".format)]

    def cost_of_orders(self, campaign, first_orders):
        return sum((campaign.discount_on(Decimal(f"{v:.2f}")) for v in first_orders if v >= campaign.min_order),
                   Decimal(0))
