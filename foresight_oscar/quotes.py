"""What a Foresight coupon takes off an Oscar basket, and its redemption with the order."""

from decimal import Decimal

from campaigns.services import OrderItem, Quote, Redemption, RedemptionError, coupon_quote, coupon_redeem
from foresight_oscar.identity import category_of, customer_id, product_id


def basket_items(basket) -> list[OrderItem]:
    return [OrderItem(product=product_id(line.product), category=category_of(line.product),
                      price=line.unit_price_incl_tax or Decimal(0), quantity=line.quantity)
            for line in basket.all_lines()]


def basket_quote(offer, basket) -> Quote | RedemptionError:
    """The discount of the voucher `offer` was applied with, for this basket's owner, or why there is none."""
    voucher = offer.get_voucher()
    customer = customer_id(basket.owner)
    if voucher is None:
        return RedemptionError("unknown_code", "this offer needs its voucher code")
    if customer is None:
        return RedemptionError("not_yours", "log in to use your offer")
    try:
        return coupon_quote(code=voucher.code, customer_external_id=customer, items=basket_items(basket))
    except RedemptionError as refusal:
        return refusal


def order_redeem(*, offer, basket, order) -> Redemption:
    """Redeem the voucher's coupon for the order: once, within the campaign's budget, or a RedemptionError."""
    return coupon_redeem(code=offer.get_voucher().code, customer_external_id=customer_id(order.user) or "",
                         order_id=str(order.number), items=basket_items(basket))
