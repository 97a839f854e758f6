from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from behavior.api.serializers import StrictSerializer
from campaigns.models import Assignment, Campaign


class OrderItemIn(StrictSerializer):
    product = serializers.CharField(max_length=255, help_text="The shop's product id.")
    category = serializers.CharField(max_length=255, required=False, default="")
    price = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0, help_text="Unit price.")
    quantity = serializers.IntegerField(min_value=1, max_value=10_000, default=1)


class RedeemIn(StrictSerializer):
    customer = serializers.CharField(max_length=255, help_text="The shop's id of the customer who orders.")
    order_id = serializers.CharField(max_length=255)
    items = OrderItemIn(many=True, allow_empty=False, max_length=1_000)  # type: ignore[call-arg]  # DRF takes it; its stubs lag


class RedeemOut(serializers.Serializer):
    code = serializers.CharField()
    order_id = serializers.CharField()
    discount = serializers.DecimalField(max_digits=12, decimal_places=2, source="discount_amount")
    redeemed_at = serializers.DateTimeField()


class OfferOut(serializers.Serializer):
    code = serializers.CharField()
    discount_kind = serializers.ChoiceField(choices=Campaign.Discount.choices)
    discount_value = serializers.DecimalField(max_digits=10, decimal_places=2)
    scope = serializers.ChoiceField(choices=Campaign.Scope.choices)
    scope_value = serializers.CharField()
    min_order = serializers.DecimalField(max_digits=12, decimal_places=2)
    expires_at = serializers.DateTimeField()


class PlacementOut(serializers.Serializer):
    campaign = serializers.IntegerField(source="campaign_id")
    kind = serializers.ChoiceField(choices=Campaign.Kind.choices, source="campaign.kind")
    headline = serializers.CharField(source="campaign.headline")
    reason = serializers.CharField(help_text="Why this customer sees it: the campaign's audience rule.")
    products = serializers.ListField(child=serializers.DictField(), help_text="An ad's products: id, name, why.")
    offer = serializers.SerializerMethodField()
    expires_at = serializers.DateTimeField()

    @extend_schema_field(OfferOut(allow_null=True))
    def get_offer(self, assignment: Assignment) -> dict | None:
        coupon = getattr(assignment, "coupon", None)
        if coupon is None:
            return None
        c = assignment.campaign
        return OfferOut({"code": coupon.code, "discount_kind": c.discount_kind, "discount_value": c.discount_value,
                         "scope": c.scope, "scope_value": c.scope_value, "min_order": c.min_order,
                         "expires_at": coupon.expires_at}).data


class PlacementsOut(serializers.Serializer):
    customer = serializers.CharField()
    slot = serializers.CharField()
    placements = PlacementOut(many=True)
