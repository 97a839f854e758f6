from rest_framework import serializers

from behavior.api.serializers import StrictSerializer
from support.models import Priority, Ticket


class HelpMessageOut(serializers.Serializer):
    ticket = serializers.IntegerField(source="pk")
    message = serializers.CharField(source="customer_message",
                                    help_text="e.g. Your order 4412 is 4.5 days late; we have opened ticket 45.")
    subject = serializers.CharField()
    opened_at = serializers.DateTimeField()


class HelpOut(serializers.Serializer):
    customer = serializers.CharField()
    messages = HelpMessageOut(many=True, help_text="Most urgent first; empty when there is nothing to say.")


class AcknowledgedOut(serializers.Serializer):
    ticket = serializers.IntegerField(source="pk")
    acknowledged_at = serializers.DateTimeField()


class TicketIn(StrictSerializer):
    subject = serializers.CharField(max_length=200)
    message = serializers.CharField(max_length=10_000, required=False, default="", allow_blank=True,
                                    help_text="What the customer wrote.")
    order_id = serializers.CharField(max_length=255, required=False, default="")
    request_id = serializers.UUIDField(required=False, default=None,
                                       help_text="Made by the client; sending the same request again opens no "
                                       "second ticket.")


class TicketOut(serializers.Serializer):
    ticket = serializers.IntegerField(source="pk")
    status = serializers.ChoiceField(choices=Ticket.Status.choices)
    priority = serializers.SerializerMethodField()
    subject = serializers.CharField()
    opened_at = serializers.DateTimeField()
    due_at = serializers.DateTimeField()

    def get_priority(self, ticket: Ticket) -> str:
        return Priority(ticket.priority).name.lower()
