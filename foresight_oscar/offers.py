"""Foresight's coupons as Oscar vouchers: each minted coupon becomes a single-use voucher of the same code and
expiry, attached to its campaign's Oscar offer, in the transaction that minted it."""

from typing import cast

from django.contrib import messages
from django.dispatch import receiver
from django.utils import timezone
from oscar.apps.basket.signals import voucher_addition
from oscar.apps.offer.custom import create_benefit, create_condition
from oscar.core.loading import get_model

from campaigns.actions.price_offer import PriceOfferSettings
from campaigns.models import Campaign
from campaigns.signals import coupons_minted
from foresight_oscar.models import ForesightBenefit, ForesightCondition
from foresight_oscar.quotes import offer_in_basket

Category = get_model("catalogue", "Category")
ConditionalOffer = get_model("offer", "ConditionalOffer")
Range = get_model("offer", "Range")
Voucher = get_model("voucher", "Voucher")


def campaign_offer(campaign: Campaign):
    """The campaign's Oscar voucher offer, made on its first coupon: its range is the campaign's scope, its
    condition and benefit ask Foresight (foresight_oscar.models)."""
    key = f"(Foresight campaign {campaign.pk})"  # what the shopper sees is the campaign's name; this finds it
    offer = ConditionalOffer.objects.filter(name__endswith=key).first()
    if offer is not None:
        return offer
    name = f"{campaign.name[:100]} {key}"
    settings = cast(PriceOfferSettings, campaign.settings)
    scope = Range.objects.create(name=f"{name}: {settings.get_scope_display()}"[:128],
                                 includes_all_products=settings.scope == settings.Scope.ALL)
    if settings.scope == settings.Scope.CATEGORY:
        scope.included_categories.set(Category.objects.filter(name=settings.scope_value))
    elif settings.scope == settings.Scope.PRODUCT and settings.scope_value.isdigit():
        for product in get_model("catalogue", "Product").objects.filter(pk=int(settings.scope_value)):
            scope.add_product(product)  # a product deleted since: the range is empty, the offer gives nothing
    # A coupon takes its discount once a basket (Oscar would apply an offer again while its condition holds).
    return ConditionalOffer.objects.create(
        name=name, description=campaign.name, offer_type=ConditionalOffer.VOUCHER, exclusive=False,
        max_basket_applications=1, condition=create_condition(ForesightCondition),
        benefit=create_benefit(ForesightBenefit, range=scope))


@receiver(coupons_minted, dispatch_uid="foresight_oscar.vouchers")
def vouchers_for_coupons(sender, campaign: Campaign, coupons: list, **kwargs) -> None:
    offer = campaign_offer(campaign)
    now = timezone.now()
    names = {coupon.code: f"{campaign.name[:60]} (Foresight coupon {coupon.pk})" for coupon in coupons}
    # A code a shop's own voucher already has is skipped, not taken over: that coupon then has no voucher.
    Voucher.objects.bulk_create([
        Voucher(name=names[coupon.code], code=coupon.code, usage=Voucher.SINGLE_USE, start_datetime=now,
                end_datetime=coupon.expires_at) for coupon in coupons], batch_size=2_000, ignore_conflicts=True)
    codes = list(names)
    links = []
    for start in range(0, len(codes), 2_000):
        for pk, code, name in Voucher.objects.filter(code__in=codes[start:start + 2_000]).values_list(
                "pk", "code", "name"):
            if name == names[code]:
                links.append(Voucher.offers.through(voucher_id=pk, conditionaloffer_id=offer.pk))
    Voucher.offers.through.objects.bulk_create(links, batch_size=2_000, ignore_conflicts=True)


@receiver(voucher_addition, dispatch_uid="foresight_oscar.voucher_addition")
def voucher_kept_out_in_words(sender, basket, voucher, **kwargs) -> None:
    """Oscar's basket says only that it "does not qualify" for a voucher that gives nothing: a Foresight voucher
    that the basket's other Foresight price offer keeps out says which offer that is."""
    request = getattr(sender, "request", None)
    if request is None:
        return
    for offer in voucher.offers.all():
        if (refusal := offer_in_basket(offer, basket)) is not None:
            messages.warning(request, f"Offer {voucher.code}: {refusal}")
