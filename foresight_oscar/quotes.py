"""What a Foresight coupon takes off an Oscar basket, and its redemption with the order."""

from decimal import Decimal

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
    items = basket_items(basket)
    key = (voucher.code, customer, tuple((i.product, i.price, i.quantity) for i in items))
    quotes = basket.__dict__.setdefault("_foresight_quotes", {})
    if key not in quotes:
        try:
            quotes[key] = coupon_quote(code=voucher.code, customer_external_id=customer, items=items)
        except RedemptionError as refusal:
            quotes[key] = refusal
    return quotes[key]


def order_redeem(*, code: str, basket, order, amount: Decimal) -> Redemption:
    """Redeem the coupon for the order, for the discount Oscar applied (at most Foresight's quote): once, within
    the campaign's budget, or a RedemptionError."""
    return coupon_redeem(code=code, customer_external_id=customer_id(order.user) or "", order_id=str(order.number),
                         items=basket_items(basket), amount=amount)
