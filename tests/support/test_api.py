"""The storefront's support calls over real HTTP: the help message, its acknowledgement, a ticket the customer opens."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from behavior.models import ApiKey, Event
from support.models import OutboxMessage, Ticket
from support.services.proactive import tickets_open_from_contacts, tickets_open_proactively
from tests.support.conftest import late_order, support_rule


@pytest.fixture
def late_alice(risky_customers):
    """Alice's order 4412 is 4.5 days late and she has a proactive ticket about it; Bob has one too."""
    now = timezone.now()
    alice, bob = risky_customers([0.8, 0.9])
    late_order(alice, "4412", days_late=4.5, now=now)
    late_order(bob, "5000", days_late=1, now=now)
    support_rule()
    tickets_open_proactively(now=now)
    return alice, Ticket.objects.get(customer=alice), Ticket.objects.get(customer=bob)


def test_the_storefront_shows_the_help_message_until_the_customer_acknowledges_it(late_alice, storefront):
    alice, ticket, _ = late_alice

    response = storefront.get(f"customers/{alice.external_id}/help")

    assert response.status_code == 200, response.text
    [message] = response.json()["messages"]
    assert message["ticket"] == ticket.pk and message["subject"] == "Late order"
    assert message["message"] == f"Your order 4412 is 4.5 days late; we have opened ticket {ticket.pk}."

    ack = storefront.post(f"customers/{alice.external_id}/help/{ticket.pk}/ack")
    assert ack.status_code == 200, ack.text
    first_seen = ack.json()["acknowledged_at"]
    assert storefront.post(f"customers/{alice.external_id}/help/{ticket.pk}/ack").json()["acknowledged_at"] == \
        first_seen
    assert storefront.get(f"customers/{alice.external_id}/help").json()["messages"] == []
    ticket.refresh_from_db()
    assert ticket.acknowledged_at is not None and ticket.status == "open"  # seen, not solved


def test_a_customer_can_only_acknowledge_their_own_proactive_tickets(late_alice, storefront):
    alice, _, bobs = late_alice
    assert storefront.post(f"customers/{alice.external_id}/help/{bobs.pk}/ack").status_code == 404
    assert storefront.post("customers/nobody/help/1/ack").status_code == 404
    assert storefront.get("customers/nobody/help").status_code == 404
    assert Ticket.objects.get(pk=bobs.pk).acknowledged_at is None


def test_help_needs_an_ingest_key(late_alice, make_api):
    alice, _, _ = late_alice
    assert make_api().get(f"customers/{alice.external_id}/help").status_code == 401
    assert make_api(ApiKey.Scope.CHECKOUT).get(f"customers/{alice.external_id}/help").status_code == 403


def test_a_customer_opens_a_ticket_once_per_request(risky_customers, storefront, helpdesk):
    helpdesk()
    [carol] = risky_customers([0.2])
    request = {"subject": "Wrong size", "message": "The shoes are too small.", "order_id": "881",
               "request_id": str(uuid.uuid4())}

    created = storefront.post(f"customers/{carol.external_id}/tickets", json=request)
    again = storefront.post(f"customers/{carol.external_id}/tickets", json=request)

    assert created.status_code == 201, created.text
    assert again.status_code == 200 and again.json()["ticket"] == created.json()["ticket"]
    assert created.json()["status"] == "open" and created.json()["priority"] == "normal"
    ticket = Ticket.objects.get()
    assert (ticket.origin, ticket.subject, ticket.description) == ("customer", "Wrong size", "The shoes are too small.")
    event = Event.objects.get(type="support_contact")  # the support-risk model learns from it
    assert (event.customer, event.order_id, str(event.event_id)) == (carol, "881", request["request_id"])
    assert tickets_open_from_contacts(now=timezone.now() + timedelta(minutes=1)) == 0  # already a ticket
    assert OutboxMessage.objects.get().kind == "ticket.opened"


def test_a_bad_ticket_request_names_the_bad_field(risky_customers, storefront):
    [carol] = risky_customers([0.2])
    unknown = storefront.post(f"customers/{carol.external_id}/tickets", json={"subject": "x", "urgent": True})
    missing = storefront.post(f"customers/{carol.external_id}/tickets", json={"message": "help"})
    assert (unknown.status_code, missing.status_code) == (400, 400)
    assert "urgent" in unknown.json() and "subject" in missing.json()
    assert not Ticket.objects.exists()
