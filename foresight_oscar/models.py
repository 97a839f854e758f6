"""A Foresight price offer inside Oscar's offer engine: a condition and a benefit that ask Foresight.

Each Foresight coupon is an Oscar voucher of the same code (foresight_oscar.offers makes them), attached
to one offer per campaign with these two. The condition holds only for the coupon's own customer, and the
benefit is what Foresight would take off the basket, so Oscar's basket, its messages and its order records
show Foresight's offer; the redemption itself is recorded as the order is placed.
"""

from oscar.apps.offer.benefits import AbsoluteDiscountBenefit
from oscar.apps.offer.results import ZERO_DISCOUNT
from oscar.core.loading import get_class, get_model

from campaigns.services import RedemptionError
from foresight_oscar.quotes import basket_quote, order_redeem

Condition = get_model("offer", "Condition")
UnableToPlaceOrder = get_class("order.exceptions", "UnableToPlaceOrder")


class ForesightCondition(Condition):  # type: ignore[misc,valid-type]  # get_model: the shop may fork the app
    name = description = "The customer's own Foresight price offer applies to the basket"

    class Meta:
        proxy = True

    def is_satisfied(self, offer, basket):
        return not isinstance(basket_quote(offer, basket), RedemptionError)

    def is_partially_satisfied(self, offer, basket):
        refusal = basket_quote(offer, basket)
        return isinstance(refusal, RedemptionError) and refusal.reason in ("below_minimum", "out_of_scope")

    def get_upsell_message(self, offer, basket):
        voucher = offer.get_voucher()  # none on Oscar's offer pages, which list every offer
        refusal = basket_quote(offer, basket) if voucher is not None else None
        return f"Offer {voucher.code}: {refusal}" if isinstance(refusal, RedemptionError) else None


class ForesightBenefit(AbsoluteDiscountBenefit):
    name = description = "What the Foresight price offer takes off the basket"

    class Meta:
        proxy = True

    def apply(self, basket, condition, offer, **kwargs):
        quote = basket_quote(offer, basket)
        if isinstance(quote, RedemptionError):
            return ZERO_DISCOUNT
        return super().apply(basket, condition, offer, discount_amount=quote.discount, **kwargs)

    def apply_deferred(self, basket, order, application):
        """Inside Oscar's order transaction: the coupon is redeemed with the order for the discount Oscar applied,
        or the order is not placed.

        Oscar takes the payment before it places the order: a shop's payment step should only authorise, as
        Oscar advises, since a refusal here (another checkout took the last of the budget a moment before)
        leaves an authorised payment without its order. docs/oscar.md."""
        code = application["voucher"].code
        try:
            redemption = order_redeem(code=code, basket=basket, order=order, amount=application["discount"])
        except RedemptionError as refusal:
            raise UnableToPlaceOrder(f"Offer {code}: {refusal}") from refusal
        return f"Foresight offer {redemption.code}: {redemption.discount_amount} off"
