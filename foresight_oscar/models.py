"""A Foresight price offer inside Oscar's offer engine: a condition and a benefit that ask Foresight.

Each Foresight coupon is an Oscar voucher of the same code (foresight_oscar.offers makes them), attached
to one offer per campaign with these two. The condition holds only for the coupon's own customer, and the
benefit is what Foresight would take off the basket, so Oscar's basket, its messages and its order records
show Foresight's offer; the redemption itself is recorded as the order is placed.
"""

from django.db import models
from oscar.apps.offer.benefits import AbsoluteDiscountBenefit
from oscar.apps.offer.results import ZERO_DISCOUNT
from oscar.core.loading import get_class, get_model

from campaigns.services import RedemptionError
from foresight_oscar.quotes import basket_quote, order_redeem, refusal_in_words, shop_money

Condition = get_model("offer", "Condition")


class CampaignOffer(models.Model):
    """A campaign's Oscar offer and the voucher set of its coupons' vouchers. Their names are what shoppers read
    (the offer's headline); this row, not a name, says which campaign they are."""

    campaign = models.OneToOneField("campaigns.Campaign", on_delete=models.CASCADE, primary_key=True,
                                    related_name="oscar_offer")
    offer = models.OneToOneField("offer.ConditionalOffer", on_delete=models.CASCADE, related_name="foresight")
    voucher_set = models.OneToOneField("voucher.VoucherSet", on_delete=models.SET_NULL, null=True,
                                       related_name="foresight")

    def __str__(self) -> str:
        return f"Oscar offer of campaign {self.pk}"
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
        # Oscar's basket page adds " to qualify for the <offer's name> special offer".
        return f"Code {voucher.code}: {refusal_in_words(refusal, offer, basket)}" if isinstance(
            refusal, RedemptionError) else None


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
            words = ("the order has another of these offers already" if refusal.reason == "offer_on_order"
                     else refusal_in_words(refusal, application["offer"], basket))  # not the other campaign's name
            raise UnableToPlaceOrder(f"Code {code}: {words}") from refusal
        return f"Code {redemption.code}: {shop_money(redemption.discount_amount)} off"
