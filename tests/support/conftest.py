import hashlib
import hmac
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from behavior.models import Customer, ModelVersion, Score
from support.models import HelpdeskSettings, Priority, SupportRule
from tests.factories import CustomerFactory, EventFactory, ModelVersionFactory

NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)
LATE_AND_RISKY = {"all": [{"field": "score.support_risk", "op": "gte", "value": 0.6},
                          {"field": "feature.orders_open_past_due", "op": "gte", "value": 1}]}
RISK_REASONS = [{"feature": "orders_open_past_due", "value": 1.0, "contribution": 1.2,
                 "text": "1 order past their promised delivery and not delivered"},
                {"feature": "orders_delayed_90d", "value": 2.0, "contribution": 0.4,
                 "text": "2 orders with a delivery delay in the last 90 days"}]


@pytest.fixture
def risky_customers(db):
    """make(risks) -> customers with those support-risk scores (None: not scored), scored at NOW."""
    version = ModelVersionFactory(target="support_risk", status=ModelVersion.Status.CHAMPION)

    def make(risks):
        customers = CustomerFactory.create_batch(len(risks))
        Score.objects.bulk_create([
            Score(customer=c, target="support_risk", probability=p, model_version=version, scored_at=NOW,
                  reasons=RISK_REASONS)
            for c, p in zip(customers, risks, strict=True) if p is not None
        ])
        return customers

    return make


def late_order(customer: Customer, order_id: str, days_late: float, now: datetime = NOW) -> None:
    """An order bought a week before its promise, promised `days_late` days before `now`, not delivered."""
    promised = now - timedelta(days=days_late)
    EventFactory(customer=customer, type="purchase", order_id=order_id, price="30.00", quantity=1,
                 occurred_at=promised - timedelta(days=7), promised_at=promised)


def delivered_order(customer: Customer, order_id: str, days_ago: float, now: datetime = NOW) -> None:
    at = now - timedelta(days=days_ago)
    EventFactory(customer=customer, type="purchase", order_id=order_id, occurred_at=at - timedelta(days=5),
                 promised_at=at - timedelta(days=1))
    EventFactory(customer=customer, type="order_delivered", order_id=order_id, occurred_at=at)


def review(customer: Customer, order_id: str, rating: int, days_ago: float, now: datetime = NOW) -> None:
    EventFactory(customer=customer, type="review", order_id=order_id, rating=rating,
                 occurred_at=now - timedelta(days=days_ago))


def support_rule(**fields) -> SupportRule:
    values = dict(name="Late orders of worried customers", active=True, condition=LATE_AND_RISKY,
                  priority=Priority.HIGH, group="deliveries", sla_hours=8, dedupe_days=14, subject="Late order")
    return SupportRule.objects.create(**{**values, **fields})


# --- a helpdesk that receives webhooks --------------------------------------------------------------------------------


@dataclass
class Delivery:
    key: str
    ticket: int | None  # None for an erasure, which names its tickets in `erased`
    sequence: int
    event: str
    erased: list[dict] = field(default_factory=list)


@dataclass
class Helpdesk:
    """A real HTTP receiver on 127.0.0.1: verifies each request's signature, then fails at random.

    Of the requests it decides to fail, a third get a 500, a third lose their connection before anything
    is recorded, and a third are recorded and then lose their connection (the sender will send them again).
    """

    secret: str
    failure_rate: float
    rng: random.Random
    url: str = ""
    received: list[Delivery] = field(default_factory=list)  # recorded deliveries, in arrival order
    refused: list[str] = field(default_factory=list)  # why requests with a bad signature were refused
    failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    reference: Callable[[int], str] = "HD-{}".format  # what it answers as its own id for a ticket

    def verify(self, headers, body: bytes) -> str | None:
        parts = dict(p.split("=", 1) for p in headers.get("X-Foresight-Signature", "").split(",") if "=" in p)
        if "t" not in parts or "v1" not in parts:
            return "no signature"
        if abs(time.time() - int(parts["t"])) > 300:
            return "stale timestamp"
        expected = hmac.new(self.secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts["v1"]):
            return "bad signature"
        if json.loads(body)["idempotency_key"] != headers.get("Idempotency-Key"):
            return "the idempotency key differs from the body's"
        return None

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers["Content-Length"]))
        problem = self.verify(request.headers, body)
        with self.lock:
            roll = self.rng.random()
            if problem:
                self.refused.append(problem)
            elif roll < self.failure_rate:
                self.failures += 1
        if problem:
            return _answer(request, 401, {"error": problem})
        if roll < self.failure_rate / 3:
            return _answer(request, 500, {"error": "try again later"})
        if roll < self.failure_rate * 2 / 3:
            return  # the connection closes with no answer
        payload = json.loads(body)
        ticket = payload["ticket"]["id"] if "ticket" in payload else None
        with self.lock:
            self.received.append(Delivery(request.headers["Idempotency-Key"], ticket, payload["sequence"],
                                          payload["event"], payload.get("tickets", [])))
        if roll < self.failure_rate:
            return  # recorded, but the answer is lost
        _answer(request, 200, {"reference": self.reference(ticket)} if ticket else {})


def _answer(request: BaseHTTPRequestHandler, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)


@pytest.fixture
def helpdesk(db):
    """start(failure_rate=..., secret=...) -> a running Helpdesk; the helpdesk settings point at it."""
    servers = []

    def start(*, failure_rate: float = 0.0, secret: str | None = None, seed: int = 7,
              retry_base_seconds: int = 10) -> Helpdesk:
        desk = Helpdesk(secret=uuid.uuid4().hex, failure_rate=failure_rate, rng=random.Random(seed))

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                desk.handle(self)

            def log_message(self, *args):  # keep the test output quiet
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        desk.url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/foresight"
        HelpdeskSettings.objects.update_or_create(pk=1, defaults={
            "enabled": True, "url": desk.url, "secret": secret or desk.secret,
            "retry_base_seconds": retry_base_seconds})
        return desk

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
