"""Input and output shapes of the API. Input serializers refuse fields they do not know."""

from rest_framework import serializers

from behavior.conf import foresight_settings
from behavior.core.event_types import EVENT_TYPES
from behavior.core.events import FIELDS, customer_id_problem, json_problem
from behavior.core.features import TargetDefinition
from behavior.core.scorers import SCORERS
from behavior.models import Customer


class StrictSerializer(serializers.Serializer):
    def to_internal_value(self, data):
        if isinstance(data, dict) and (unknown := data.keys() - self.fields.keys()):
            raise serializers.ValidationError({name: ["is not a known field"] for name in sorted(unknown)})
        return super().to_internal_value(data)


def _bounded_json(value: dict) -> None:
    problem = json_problem(value, foresight_settings.MAX_PROPERTIES_BYTES)
    if problem:
        raise serializers.ValidationError(problem)


class EventIn(StrictSerializer):
    """Documents one event. Batches are checked by behavior.core.events.clean_events, not by this class."""

    event_id = serializers.UUIDField(help_text="Made by the client; resending the same id stores nothing new.")
    type = serializers.ChoiceField(choices=EVENT_TYPES)
    customer = serializers.CharField(required=False, help_text="The shop's customer id; or send anonymous_id.")
    anonymous_id = serializers.CharField(required=False)
    product = serializers.CharField(required=False)
    category = serializers.CharField(required=False)
    order_id = serializers.CharField(required=False)
    session_id = serializers.CharField(required=False)
    price = serializers.FloatField(required=False, min_value=0)
    quantity = serializers.IntegerField(required=False, min_value=1)
    rating = serializers.IntegerField(required=False, min_value=1, max_value=5, help_text="Reviews only.")
    occurred_at = serializers.DateTimeField(help_text="Client time with a time zone offset.")
    promised_at = serializers.DateTimeField(required=False, help_text="Promised delivery time of an order.")
    properties = serializers.DictField(required=False)


assert tuple(EventIn().fields) == FIELDS, "EventIn documents exactly the fields clean_events checks"


class RejectedEvent(serializers.Serializer):
    index = serializers.IntegerField()
    event_id = serializers.JSONField(allow_null=True, help_text="As the client sent it, which may be malformed.")
    # Shadows Serializer.errors, which this output-only serializer never uses: the key is the API's.
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))  # type: ignore[assignment]


class IngestReportOut(serializers.Serializer):
    accepted = serializers.ListField(child=serializers.UUIDField())
    duplicates = serializers.ListField(child=serializers.UUIDField())
    rejected = RejectedEvent(many=True)


class DetailOut(serializers.Serializer):
    detail = serializers.CharField(help_text="What is wrong, e.g. a body that is not JSON.")


class BatchRefusedOut(serializers.Serializer):
    events = serializers.ListField(child=serializers.CharField(), help_text="Why the batch as a whole was refused.")


def _usable_in_paths(value: str) -> None:
    if problem := customer_id_problem(value):
        raise serializers.ValidationError(problem)


class IdentifyIn(StrictSerializer):
    anonymous_id = serializers.CharField(max_length=255)
    customer = serializers.CharField(max_length=255, validators=[_usable_in_paths], help_text="The shop's customer id.")


class IdentifyOut(serializers.Serializer):
    customer = serializers.CharField()
    linked_events = serializers.IntegerField()


class CustomerIn(StrictSerializer):
    attributes = serializers.DictField(required=False, validators=[_bounded_json])
    marketing_consent = serializers.BooleanField(required=False)


class CustomerOut(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = ["external_id", "attributes", "marketing_consent", "created_at", "updated_at"]


class ProductIn(StrictSerializer):
    external_id = serializers.CharField(max_length=255)
    name = serializers.CharField(max_length=500, required=False, allow_blank=True)
    category = serializers.CharField(max_length=255, required=False, allow_blank=True)
    brand = serializers.CharField(max_length=255, required=False, allow_blank=True)
    price = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0, required=False, allow_null=True)
    active = serializers.BooleanField(required=False)


class ProductsIn(serializers.ListSerializer):
    child = ProductIn()
    max_length = 1000
    allow_empty = False

    def validate(self, attrs):
        ids = [item["external_id"] for item in attrs]
        if len(ids) != len(set(ids)):
            raise serializers.ValidationError("each external_id may appear only once per batch")
        return attrs


class ProductsOut(serializers.Serializer):
    upserted = serializers.IntegerField()



class ReasonOut(serializers.Serializer):
    feature = serializers.CharField()
    value = serializers.FloatField()
    contribution = serializers.FloatField(allow_null=True, help_text="Push on the score, in log-odds (XGBoost); "
                                                                     "null for a transparent scorer's facts.")
    text = serializers.CharField(help_text="The reason in words, e.g. '6 product views in the last 7 days'.")


class ValidationOut(serializers.Serializer):
    roc_auc = serializers.FloatField(allow_null=True)
    roc_auc_interval = serializers.ListField(child=serializers.FloatField(allow_null=True), allow_null=True,
                                             help_text="Its 95% bootstrap interval, customers drawn whole.")
    pr_auc = serializers.FloatField(allow_null=True)
    base_rate = serializers.FloatField(allow_null=True)
    top_precision = serializers.FloatField(allow_null=True, help_text="Share of positives in the top 10%.")
    top_lift = serializers.FloatField(allow_null=True, help_text="top_precision against the base rate.")


class ScoreOut(serializers.Serializer):
    target = serializers.CharField()
    probability = serializers.FloatField()
    model_version = serializers.IntegerField(source="model_version_id")
    model_kind = serializers.CharField(
        source="model_version.kind",
        help_text=f"xgboost, or the scorer with no trees that served better: {', '.join(SCORERS)}")
    chosen_because = serializers.SerializerMethodField(help_text="Why this scorer serves, with the figures.")
    population = serializers.SerializerMethodField(help_text="Whom the target scores and is judged on.")
    validation = ValidationOut(source="model_version.metrics",
                               help_text="How the serving scorer did on its population at the validation cutoffs.")
    promised = serializers.CharField(
        source="model_version.promised",
        help_text="What validation promised, in words (or that the scorer is unvalidated).")
    delivered = serializers.CharField(
        source="model_version.delivered",
        help_text="What the scorer delivered on the customers it scored once their horizon passed, beside the best "
                  "simple rule on the same customers.")
    scored_at = serializers.DateTimeField()
    reasons = ReasonOut(many=True)

    def get_chosen_because(self, score) -> str:
        return (score.model_version.metrics or {}).get("chosen_because", "")

    def get_population(self, score) -> str:
        return TargetDefinition.from_dict(score.model_version.definition).population_label
