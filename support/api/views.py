from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse
from rest_framework import status
from rest_framework.response import Response

from behavior.api.schema import documented
from behavior.api.views import Conflict, Scope, ScopedView, validated
from behavior.models import Customer
from support.models import Ticket
from support.selectors import help_messages
from support.services.tickets import TicketError, ticket_acknowledge, ticket_open_for_customer

from . import serializers as s


class HelpView(ScopedView):
    scopes = {"GET": Scope.INGEST}
    customer_bound = True

    @documented(summary="The proactive help messages to show a customer in the storefront", responses=s.HelpOut,
                   description="Open proactive tickets the customer has not acknowledged yet, most urgent first.")
    def get(self, request, external_id):
        customer = get_object_or_404(Customer, external_id=external_id)
        return Response(s.HelpOut({"customer": external_id, "messages": help_messages(customer=customer)}).data)


class HelpAcknowledgeView(ScopedView):
    scopes = {"POST": Scope.INGEST}
    customer_bound = True

    @documented(summary="The customer saw a help message", request=None,
                   responses={200: s.AcknowledgedOut, 404: OpenApiResponse(description="Not this customer's "
                                                                                       "proactive ticket")},
                   description="The message is not shown again. Acknowledging twice keeps the first time.")
    def post(self, request, external_id, ticket_id):
        customer = get_object_or_404(Customer, external_id=external_id)
        try:
            ticket = ticket_acknowledge(customer=customer, ticket_id=ticket_id)
        except Ticket.DoesNotExist as error:
            raise Http404("No such proactive ticket for this customer.") from error
        return Response(s.AcknowledgedOut(ticket).data)


class CustomerTicketsView(ScopedView):
    scopes = {"POST": Scope.INGEST}
    customer_bound = True

    @documented(summary="Open a ticket for a customer who asks for help in the storefront", request=s.TicketIn,
                   responses={201: s.TicketOut, 200: s.TicketOut,
                              409: OpenApiResponse(description="request_id used for another customer")},
                   description="Also recorded as a support_contact event. A request sent again with the same "
                   "request_id returns the ticket it opened (200).")
    def post(self, request, external_id):
        customer = get_object_or_404(Customer, external_id=external_id)
        data = validated(s.TicketIn, request.data)
        try:
            ticket, created = ticket_open_for_customer(customer=customer, subject=data["subject"],
                                                       description=data["message"], order_id=data["order_id"],
                                                       request_id=data["request_id"])
        except TicketError as error:
            raise Conflict(str(error)) from error
        return Response(s.TicketOut(ticket).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
