"""What a Foresight coupon takes off an Oscar basket, and its redemption with the order."""

import re
from decimal import Decimal

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


CAMPAIGN_OF_OFFER = re.compile(r"\(Foresight campaign (\d+)\)$")  # foresight_oscar.offers.campaign_offer's names


def offer_in_basket(offer, basket) -> RedemptionError | None:
    """The refusal of `offer` while the basket has another Foresight price offer applied that it may not join
    (one Foresight price offer per order, unless both campaigns allow stacking); None if it may apply.

    Oscar applies a basket's vouchers one after another: the first one's offer applies, the next finds it here.
    The order's redemption (coupon_redeem) holds the same rule in the database."""
    mine = CAMPAIGN_OF_OFFER.search(offer.name or "")
    others = [int(m[1]) for application in basket.offer_applications
              if application["offer"].pk != offer.pk and (m := CAMPAIGN_OF_OFFER.search(application["offer"].name))]
    if mine is None or not others:
        return None
    offers = PriceOfferSettings.objects.select_related("campaign").in_bulk([int(mine[1]), *others])
    blocking = [offers[pk] for pk in others if pk in offers]
    if int(mine[1]) in offers and offers[int(mine[1])].may_stack:
        blocking = [other for other in blocking if not other.may_stack]
    if not blocking:
        return None
    return RedemptionError("offer_on_order", f'the basket has the price offer "{blocking[0].campaign.name}" '
                                             f"({blocking[0].discount_in_words}) already: an order takes one "
                                             "Foresight price offer, unless the campaigns of both allow stacking")


def order_redeem(*, code: str, basket, order, amount: Decimal) -> Redemption:
    """Redeem the coupon for the order, for the discount Oscar applied (at most Foresight's quote): once, within
    the campaign's budget, or a RedemptionError."""
    return coupon_redeem(code=code, customer_external_id=customer_id(order.user) or "", order_id=str(order.number),
                         items=basket_items(basket), amount=amount)
