"""Foresight's coupons as Oscar vouchers: each minted coupon becomes a single-use voucher of the same code and
expiry, attached to its campaign's Oscar offer, in the transaction that minted it."""

from typing import cast

from django.contrib import messages
from django.db.models.signals import m2m_changed
from django.dispatch import receiver
from django.utils import timezone
from oscar.apps.basket.signals import voucher_addition
from oscar.apps.offer.custom import create_benefit, create_condition
from oscar.core.loading import get_model

from campaigns.actions.price_offer import PriceOfferSettings
from campaigns.models import Campaign
from campaigns.services import RedemptionError
from campaigns.signals import coupons_minted
from foresight_oscar.models import CampaignOffer, ForesightBenefit, ForesightCondition
from foresight_oscar.quotes import basket_quote, offer_words, refusal_in_words

Basket = get_model("basket", "Basket")
Category = get_model("catalogue", "Category")
ConditionalOffer = get_model("offer", "ConditionalOffer")
Range = get_model("offer", "Range")
Voucher = get_model("voucher", "Voucher")
VoucherSet = get_model("voucher", "VoucherSet")


def _free_name(model, words: str, *, mine=None) -> str:
    """`words`, or with a number after them when another row of `model` has that name (Oscar's offer and
    voucher set names are unique)."""
    limit = model._meta.get_field("name").max_length
    taken = model.objects.exclude(pk=getattr(mine, "pk", None))
    for n in range(1, 1_000):
        name = words[:limit] if n == 1 else f"{words[:limit - 6]} ({n})"
        if not taken.filter(name=name).exists():
            return name
    raise ValueError(f"no free {model._meta.verbose_name} name for {words!r}")


def campaign_offer(campaign: Campaign, *, until) -> CampaignOffer:
    """The campaign's Oscar voucher offer and the voucher set of its vouchers, made on its first coupons: the
    range is the campaign's scope, the condition and benefit ask Foresight (foresight_oscar.models).

    What Oscar shows shoppers (the offer's name and description, the voucher set's name beside each code) is the
    offer's headline, kept up to date as coupons are minted; the campaign's name is only in the range's, which
    shoppers do not see (its page is not public)."""
    settings = cast(PriceOfferSettings, campaign.settings)
    words = offer_words(settings)
    link = CampaignOffer._default_manager.select_related("offer", "voucher_set").filter(campaign=campaign).first()
    if link is None:
        scope = Range.objects.create(
            name=_free_name(Range, f"Foresight campaign {campaign.pk}, {campaign.name[:60]}: "
                                   f"{settings.get_scope_display()}"),
            includes_all_products=settings.scope == settings.Scope.ALL)
        if settings.scope == settings.Scope.CATEGORY:
            scope.included_categories.set(Category.objects.filter(name=settings.scope_value))
        elif settings.scope == settings.Scope.PRODUCT and settings.scope_value.isdigit():
            for product in get_model("catalogue", "Product").objects.filter(pk=int(settings.scope_value)):
                scope.add_product(product)  # a product deleted since: the range is empty, the offer gives nothing
        # A coupon takes its discount once a basket (Oscar would apply an offer again while its condition holds).
        offer = ConditionalOffer.objects.create(
            name=_free_name(ConditionalOffer, words), description=words, offer_type=ConditionalOffer.VOUCHER,
            exclusive=False, max_basket_applications=1, condition=create_condition(ForesightCondition),
            benefit=create_benefit(ForesightBenefit, range=scope))
        link = CampaignOffer._default_manager.create(campaign=campaign, offer=offer)
    if link.voucher_set is None:
        link.voucher_set = VoucherSet.objects.create(
            name=_free_name(VoucherSet, words), count=0, description=words, start_datetime=timezone.now(),
            end_datetime=until)
        link.save(update_fields=["voucher_set"])
        # An offer made before voucher sets (its vouchers named after the campaign): they join the set now.
        Voucher.objects.filter(offers=link.offer, voucher_set__isnull=True).update(voucher_set=link.voucher_set)
    if link.offer.description != words:  # the headline changed: the shopper reads the new one
        link.offer.name, link.offer.description = _free_name(ConditionalOffer, words, mine=link.offer), words
        link.offer.save(update_fields=["name", "description"])
        link.voucher_set.name = _free_name(VoucherSet, words, mine=link.voucher_set)
        link.voucher_set.description = words
    link.voucher_set.end_datetime = max(link.voucher_set.end_datetime, until)
    link.voucher_set.save(update_fields=["name", "description", "end_datetime"])
    return link


@receiver(coupons_minted, dispatch_uid="foresight_oscar.vouchers")
def vouchers_for_coupons(sender, campaign: Campaign, coupons: list, **kwargs) -> None:
    link = campaign_offer(campaign, until=max(coupon.expires_at for coupon in coupons))
    now = timezone.now()
    # Staff's name of each voucher (unique, as Oscar wants); shoppers read the voucher set's, beside the code.
    names = {coupon.code: f"Foresight coupon {coupon.pk}, {campaign.name[:60]}" for coupon in coupons}
    # A code a shop's own voucher already has is skipped, not taken over: that coupon then has no voucher.
    Voucher.objects.bulk_create([
        Voucher(name=names[coupon.code], code=coupon.code, usage=Voucher.SINGLE_USE, start_datetime=now,
                end_datetime=coupon.expires_at, voucher_set=link.voucher_set) for coupon in coupons],
        batch_size=2_000, ignore_conflicts=True)
    codes = list(names)
    links = []
    for start in range(0, len(codes), 2_000):
        for pk, code, name in Voucher.objects.filter(code__in=codes[start:start + 2_000]).values_list(
                "pk", "code", "name"):
            if name == names[code]:
                links.append(Voucher.offers.through(voucher_id=pk, conditionaloffer_id=link.offer.pk))
    Voucher.offers.through.objects.bulk_create(links, batch_size=2_000, ignore_conflicts=True)
    link.voucher_set.update_count()


# Reasons a basket can lose before the code would give its discount: its code stays in the basket meanwhile.
KEPT_WHILE = {"below_minimum", "out_of_scope", "empty_order", "budget_spent"}


@receiver(voucher_addition, dispatch_uid="foresight_oscar.voucher_addition")
def voucher_refused_in_words(sender, basket, voucher, **kwargs) -> None:
    """Oscar's basket says only that it "does not qualify" for a voucher that gives nothing, and takes the code
    out again: a Foresight code says why, and stays in the basket while the basket may yet qualify (its discount
    then applies on its own, at the latest as the order is placed)."""
    request = getattr(sender, "request", None)
    if request is None:
        return
    for offer in voucher.offers.filter(foresight__isnull=False):
        offer.set_voucher(voucher)
        refusal = basket_quote(offer, basket)
        if not isinstance(refusal, RedemptionError):
            continue
        messages.warning(request, f"Code {voucher.code}: {refusal_in_words(refusal, offer, basket)}")
        if refusal.reason in KEPT_WHILE:
            # An attribute of the basket itself (request.basket is a lazy object in front of it).
            basket._foresight_kept_vouchers = getattr(basket, "_foresight_kept_vouchers", set()) | {voucher.pk}
            messages.info(request, f"Code {voucher.code} stays in your basket: its discount applies once the "
                                   "basket qualifies.")


@receiver(m2m_changed, sender=Basket.vouchers.through, dispatch_uid="foresight_oscar.voucher_kept")
def voucher_kept(sender, instance, action, pk_set, **kwargs) -> None:
    """Oscar's voucher form takes a code that gives nothing yet out of the basket right after adding it (the
    same basket object, in the same request): a Foresight code that may yet qualify is put back."""
    kept: set[int] = getattr(instance, "_foresight_kept_vouchers", set()) & (pk_set or set())
    if action == "post_remove" and kept:
        instance._foresight_kept_vouchers -= kept
        instance.vouchers.add(*kept)
