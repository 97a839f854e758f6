"""The message action: one signed webhook per treated customer to the shop's own messaging service, with the
holdout, contact budget and caps of every action, retried until delivered."""

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from behavior.models import Contact
from behavior.webhooks import backoff
from campaigns.actions.message import messages_deliver
from campaigns.models import Assignment, Campaign, Message, MessagingSettings
from campaigns.selectors import campaign_results
from campaigns.services import campaign_create, campaign_set_status, campaigns_evaluate, placements_show
from tests.campaigns.conftest import offer

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "a-shared-secret-for-messages"


class Service:
    """The shop's messaging service on 127.0.0.1: records each request, answering 500 to the first `failing`."""

    def __init__(self, failing: int = 0):
        self.failing, self.requests = failing, []
        self.lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with service.lock:
                    service.requests.append((dict(self.headers), body))
                    failed = len(service.requests) <= service.failing
                self.send_response(500 if failed else 202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/messages"

    def messages(self) -> list[dict]:
        """The bodies whose signature verifies under SECRET."""
        verified = []
        for headers, body in self.requests:
            parts = dict(p.split("=", 1) for p in headers["X-Foresight-Signature"].split(","))
            expected = hmac.new(SECRET.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(expected, parts["v1"])
            assert headers["Idempotency-Key"] == json.loads(body)["id"]
            verified.append(json.loads(body))
        return verified


@pytest.fixture
def service():
    started = []

    def start(failing: int = 0) -> Service:
        started.append(Service(failing))
        MessagingSettings.objects.update_or_create(pk=1, defaults={
            "enabled": True, "url": started[-1].url, "secret": SECRET, "retry_base_seconds": 10})
        return started[-1]

    yield start
    for s in started:
        s.server.shutdown()


def message_campaign(**fields) -> Campaign:
    return offer(**{"name": "New in your size", "kind": "message", "headline": "New in your size",
                    "holdout_percent": 0, **fields})


def test_each_treated_customer_gets_one_signed_message_and_the_control_group_none(scored_customers, service):
    receiver = service()
    customers = scored_customers([0.9] * 40)
    campaign = message_campaign(holdout_percent=25)

    [outcome] = campaigns_evaluate(now=timezone.now() - timedelta(hours=1))
    assert messages_deliver().delivered == outcome.reached

    treated = set(Assignment.objects.filter(group="treatment").values_list("customer__external_id", flat=True))
    control = set(Assignment.objects.filter(group="control").values_list("customer__external_id", flat=True))
    received = receiver.messages()
    assert control and len(treated) == outcome.reached == 40 - len(control)
    assert sorted(m["customer"] for m in received) == sorted(treated)  # one each, none to the control group
    assert {m["subject"] for m in received} == {"New in your size"} and {m["campaign"]["id"] for m in received} == {
        campaign.pk}
    assert "purchase intent" in received[0]["reason"]
    assert Contact.objects.filter(source=f"campaign {campaign.pk}").count() == len(treated)
    assert campaigns_evaluate(now=timezone.now() - timedelta(minutes=30))[0].reached == 0  # the same period
    assert messages_deliver().delivered == 0 and len(receiver.requests) == len(treated)
    assert placements_show(customer_external_id=customers[0].external_id, slot="home") == []  # no placement
    results = campaign_results(campaign=campaign)
    assert campaign.action.what_it_did(campaign, results) == f"{len(treated)} of {len(treated)} messages delivered"
    assert results.cost_per_extra_conversion is None  # a message's cost is no discount spent


def test_a_failed_send_is_retried_with_the_same_key_until_delivered(scored_customers, service):
    receiver = service(failing=2)
    scored_customers([0.9])
    message_campaign()
    campaigns_evaluate(now=timezone.now() - timedelta(hours=1))
    now = timezone.now()

    assert messages_deliver(now=now).failed == 1
    message = Message.objects.get()
    assert message.last_error == "HTTP 500" and message.next_attempt_at == now + timedelta(seconds=10)
    assert messages_deliver(now=now).failed == 0  # not due yet
    assert messages_deliver(now=message.next_attempt_at).failed == 1
    assert messages_deliver(now=now + timedelta(minutes=1)).delivered == 1

    assert len({headers["Idempotency-Key"] for headers, _ in receiver.requests}) == 1 and len(receiver.requests) == 3
    assert Message.objects.get().delivered_at is not None


def test_no_message_once_consent_is_withdrawn_or_the_campaign_paused(scored_customers, service):
    receiver = service()
    alice, bob = scored_customers([0.9, 0.8])
    campaign = message_campaign()
    campaigns_evaluate(now=timezone.now() - timedelta(hours=1))

    alice.marketing_consent = False
    alice.save()
    assert [m["customer"] for m in (messages_deliver(), receiver.messages())[1]] == [bob.external_id]

    message_campaign(name="Back in stock", period_days=1)
    campaign_set_status(campaign=campaign, status=Campaign.Status.PAUSED)
    campaigns_evaluate(now=timezone.now() - timedelta(minutes=30))
    Message.objects.filter(assignment__campaign=campaign).update(delivered_at=None)  # as if never sent
    messages_deliver()
    assert [m["campaign"]["id"] for m in receiver.messages()[1:]] == [campaign.pk + 1]


def test_retries_wait_at_most_an_hour_however_often_a_send_failed():
    assert backoff(10, 0) == timedelta(seconds=10) and backoff(10, 3) == timedelta(seconds=80)
    assert backoff(10, 60) == backoff(10, 10_000) == timedelta(hours=1)


def test_a_message_campaign_needs_the_messaging_service_and_a_headline(db):
    with pytest.raises(ValidationError) as refused:
        campaign_create(name="x", kind="message", condition={"field": "score.purchase_intent", "op": "gte",
                                                             "value": 0.5})
    assert "Messaging settings" in str(refused.value.message_dict["__all__"])
    assert "headline" in refused.value.message_dict
