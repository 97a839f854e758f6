"""What a Foresight coupon takes off an Oscar basket, and its redemption with the order."""

from decimal import Decimal

from django.apps import apps
from oscar.templatetags.currency_filters import currency

from campaigns.actions.base import shop_currency
from campaigns.actions.price_offer import PriceOfferSettings
from campaigns.services import OrderItem, Quote, Redemption, RedemptionError, coupon_quote, coupon_redeem
from foresight_oscar.identity import category_of, customer_id, product_id


def basket_items(basket) -> list[OrderItem]:
    """The basket's lines as Foresight's order items, at the price Oscar's offers work on (with or without tax, as
    the shop's OSCAR_OFFERS_INCL_TAX says); each product's category read once a request."""
    categories = basket.__dict__.setdefault("_foresight_categories", {})
    items = []
    for line in basket.all_lines():
        if line.product_id not in categories:
            categories[line.product_id] = category_of(line.product)
        items.append(OrderItem(product=product_id(line.product), category=categories[line.product_id],
                               price=line.unit_effective_price or Decimal(0), quantity=line.quantity))
    return items


def basket_quote(offer, basket) -> Quote | RedemptionError:
    """The discount of the voucher `offer` was applied with, for this basket's owner, or why there is none.

    Oscar asks its condition and benefit several times as it applies offers: the answer is kept on the basket
    for as long as its lines stay the same.
    """
    voucher = offer.get_voucher()
    customer = customer_id(basket.owner)
    if voucher is None:
        return RedemptionError("unknown_code", "this offer needs its voucher code")
    if customer is None:
        return RedemptionError("not_yours", "log in to use your offer")
    if (refusal := offer_in_basket(offer, basket)) is not None:
        return refusal
    items = basket_items(basket)
    key = (voucher.code, customer, tuple((i.product, i.price, i.quantity) for i in items))
    quotes = basket.__dict__.setdefault("_foresight_quotes", {})
    if key not in quotes:
        try:
            quotes[key] = coupon_quote(code=voucher.code, customer_external_id=customer, items=items)
        except RedemptionError as refusal:
            quotes[key] = refusal
    return quotes[key]


def shop_money(amount) -> str:
    """An amount as a shopper reads it: in the shop's currency (campaigns.actions.base.shop_currency), as Oscar
    formats its prices ("£5.00")."""
    return currency(amount, shop_currency())


def offer_words(offer: PriceOfferSettings) -> str:
    """What a shopper reads of a price offer: its headline, or else its discount ("10% off", "£5.00 off")."""
    if offer.headline.strip():
        return offer.headline.strip()
    if offer.discount_kind == offer.Discount.PERCENT:
        return offer.discount_in_words
    return f"{shop_money(offer.discount_value)} off"


def campaigns_of_offers(offer_pks) -> dict[int, int]:
    """The Foresight campaign of each of these Oscar offers that has one, by the offer's primary key."""
    links = apps.get_model("foresight_oscar", "CampaignOffer").objects.filter(offer_id__in=list(offer_pks))
    return dict(links.values_list("offer_id", "campaign_id"))


def price_offer_of(offer) -> PriceOfferSettings | None:
    """The price offer settings of the campaign whose Oscar offer this is; None for the shop's own offers."""
    found = offer.__dict__.get("_foresight_price_offer", False)
    if found is False:
        campaign = campaigns_of_offers([offer.pk]).get(offer.pk)
        found = PriceOfferSettings.objects.filter(campaign=campaign).first() if campaign else None
        offer.__dict__["_foresight_price_offer"] = found
    return found


def refusal_in_words(refusal: RedemptionError, offer, basket) -> str:
    """Why a basket gets nothing from its Foresight code, in a shopper's words and the shop's currency."""
    settings = price_offer_of(offer)
    if refusal.reason == "below_minimum" and settings is not None:
        total = sum((i.price * i.quantity for i in basket_items(basket)), Decimal(0))
        return (f"the offer is for orders from {shop_money(settings.min_order)}: add "
                f"{shop_money(settings.min_order - total)} more")
    if refusal.reason == "out_of_scope" and settings is not None:
        if settings.scope == settings.Scope.CATEGORY:
            return f"the offer is for {settings.scope_value}: add an item from it"
        product = apps.get_model("catalogue", "Product").objects.filter(
            pk=int(settings.scope_value) if settings.scope_value.isdigit() else None).first()
        return f"the offer is for {product.get_title() if product else 'one product'}: add it"
    return {
        "budget_spent": "the offer has been fully taken up",
        "expired": "the code has expired",
        "campaign_ended": "the offer has ended",
        "already_redeemed": "the code has been used",
        "not_yours": "the code is another customer's",
        "empty_order": "the basket is empty",
    }.get(refusal.reason, str(refusal))


def offer_in_basket(offer, basket) -> RedemptionError | None:
    """The refusal of `offer` while the basket has another Foresight price offer applied that it may not join
    (one Foresight price offer per order, unless both campaigns allow stacking); None if it may apply.

    Oscar applies a basket's vouchers one after another: the first one's offer applies, the next finds it here.
    The order's redemption (coupon_redeem) holds the same rule in the database."""
    others = [application["offer"].pk for application in basket.offer_applications
              if application["offer"].pk != offer.pk]
    if not others:
        return None
    campaigns = campaigns_of_offers([offer.pk, *others])
    mine = campaigns.get(offer.pk)
    others = [campaigns[pk] for pk in others if pk in campaigns]
    if mine is None or not others:
        return None
    offers = PriceOfferSettings.objects.select_related("campaign").in_bulk([mine, *others])
    blocking = [offers[pk] for pk in others if pk in offers]
    if mine in offers and offers[mine].may_stack:
        blocking = [other for other in blocking if not other.may_stack]
    if not blocking:
        return None
    return RedemptionError("offer_on_order", f'the basket has the offer "{offer_words(blocking[0])}" already: '
                                             "an order takes one of these offers")


def order_redeem(*, code: str, basket, order, amount: Decimal) -> Redemption:
    """Redeem the coupon for the order, for the discount Oscar applied (at most Foresight's quote): once, within
    the campaign's budget, or a RedemptionError."""
    return coupon_redeem(code=code, customer_external_id=customer_id(order.user) or "", order_id=str(order.number),
                         items=basket_items(basket), amount=amount)
