from django.http import Http404, HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from behavior.api.schema import documented
from behavior.api.views import Scope, ScopedView, validated
from behavior.models import Customer
from campaigns import placements_cache
from campaigns.services import OrderItem, RedemptionError, coupon_redeem, placements_show

from . import serializers as s

REDEMPTION_STATUS = {
    "unknown_code": 404, "not_yours": 403, "already_redeemed": 409, "expired": 410, "campaign_ended": 410,
    "budget_spent": 409, "offer_on_order": 409, "below_minimum": 422, "out_of_scope": 422, "empty_order": 400,
    "order_too_large": 422,
    "wrong_amount": 422,  # a shop framework's discount above the quote (the Oscar connector); never from this API
}


class RedemptionRefused(exceptions.APIException):
    def __init__(self, error: RedemptionError):
        self.status_code = REDEMPTION_STATUS[error.reason]
        super().__init__({"detail": str(error), "reason": error.reason})


class PlacementsView(ScopedView):
    scopes = {"GET": Scope.INGEST}
    customer_bound = True
    kept: placements_cache.Read | None = None  # the answer kept for this customer and slot, read with the throttles

    @documented(
        summary="The ads and offers to show a customer now in a storefront slot",
        parameters=[OpenApiParameter("slot", OpenApiTypes.STR, required=True, description="e.g. home")],
        responses=s.PlacementsOut,
        description="Only customers with marketing consent get placements. Each call counts an impression.",
    )
    def get(self, request, external_id):
        if (slot := _slot(request)) is None:
            raise exceptions.ValidationError({"slot": ["name the storefront slot, e.g. ?slot=home"]})
        if self.kept is not None and self.kept.answer is not None:
            return HttpResponse(self.kept.answer, content_type="application/json")
        try:
            shown = placements_show(customer_external_id=external_id, slot=slot)
        except Customer.DoesNotExist as error:
            raise Http404("No Customer matches the given query.") from error
        answer = JSONRenderer().render(s.placements_out(external_id, slot, shown))
        if self.kept is not None and self.kept.stamp is not None:
            placements_cache.placements_store(customer=external_id, slot=slot, stamp=self.kept.stamp, answer=answer,
                                              assignments=[p.assignment for p in shown],
                                              until=min((p.expires_at for p in shown), default=None))
        return HttpResponse(answer, content_type="application/json")

    def calls_counted(self, counters):
        if (slot := _slot(self.request)) is not None:
            self.kept = placements_cache.counted_and_read(counters, customer=self.kwargs["external_id"], slot=slot,
                                                          now=timezone.now())
        return super().calls_counted(counters) if self.kept is None else self.kept.counts


def _slot(request) -> str | None:
    """The storefront slot asked for, or None when it is missing or cannot be one."""
    slot = request.query_params.get("slot", "").strip()
    return slot if slot and "\x00" not in slot else None


class RedeemView(ScopedView):
    scopes = {"POST": Scope.CHECKOUT}

    @documented(
        summary="Redeem a coupon code against an order",
        request=s.RedeemIn,
        responses={200: s.RedeemOut, **{code: OpenApiResponse(description=", ".join(
            r for r, c in REDEMPTION_STATUS.items() if c == code)) for code in set(REDEMPTION_STATUS.values())}},
        description="All or nothing: the code must belong to the customer, be unexpired and unused, the order "
        "must reach the minimum and hold items in the offer's scope, the campaign's budget must cover the "
        "discount, and the order must have no other Foresight price offer (unless both campaigns allow stacking). "
        "Refusals carry a `reason` code.",
    )
    def post(self, request, code):
        data = validated(s.RedeemIn, request.data)
        items = [OrderItem(**item) for item in data["items"]]
        try:
            redemption = coupon_redeem(code=code, customer_external_id=data["customer"], order_id=data["order_id"],
                                       items=items)
        except RedemptionError as error:
            raise RedemptionRefused(error) from error
        return Response(s.redeem_out(redemption))
