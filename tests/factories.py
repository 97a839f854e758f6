import uuid
from datetime import UTC, datetime, timedelta

import factory

from behavior.models import Customer, Event, ModelVersion, Product, Target


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    external_id = factory.Sequence(lambda n: f"customer-{n}")
    attributes = factory.LazyFunction(lambda: {"country": "DE"})
    marketing_consent = True


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    external_id = factory.Sequence(lambda n: f"sku-{n}")
    name = factory.Sequence(lambda n: f"Product {n}")
    category = "shoes"
    price = "49.90"


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    event_id = factory.LazyFunction(uuid.uuid4)
    customer = factory.SubFactory(CustomerFactory)
    type = "page_view"
    occurred_at = factory.LazyFunction(lambda: datetime.now(UTC) - timedelta(hours=1))
    received_at = factory.LazyFunction(lambda: datetime.now(UTC))


class ModelVersionFactory(factory.django.DjangoModelFactory):
    """A transparent scorer's version for a stored target: it can score, without any training."""

    class Meta:
        model = ModelVersion

    target = "purchase_intent"
    kind = ModelVersion.Kind.RECENCY_FREQUENCY
    definition = factory.LazyAttribute(lambda v: Target.objects.get(name=v.target).definition().as_dict())
    params = factory.LazyFunction(lambda: {"slope": 1.0, "intercept": 0.0})


def event_payload(**fields) -> dict:
    """One event as a storefront sends it: a product view an hour ago, unless told otherwise."""
    payload = {
        "event_id": str(uuid.uuid4()),
        "type": "product_view",
        "customer": "alice",
        "product": "sku-1",
        "category": "shoes",
        "price": 49.9,
        "session_id": "session-1",
        "occurred_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
    }
    payload.update(fields)
    return {name: value for name, value in payload.items() if value is not None}


# --- a shop whose customers have a row in every table that points at a customer ---------------------------------------


def shop_with_history(*external_ids: str) -> dict:
    """Each customer gets events (one an order), an anonymous link, a score and its kept copy, a campaign's
    assignment, contact and coupon, a proactive ticket (a help message) and a ticket they opened.

    Made through the services the shop runs, so each row is what the code writes; also a note on the ticket
    they opened, a message campaign's message to each (to a closed port: never delivered), and the helpdesk
    change queued for it (that one by hand: the service queues it only while a
    helpdesk is set up). Returns the campaign, the coupons' codes and the proactive tickets' ids by customer,
    for tests that act on them.
    """
    from behavior.services.customers import customer_identify, customer_upsert
    from behavior.services.ingest import events_ingest
    from behavior.services.scoring import scoring_cycle_run
    from campaigns.models import Campaign, Coupon, MessagingSettings
    from campaigns.services import campaign_create, campaigns_evaluate
    from support.models import OutboxMessage, Priority, SupportRule, Ticket
    from support.services.proactive import tickets_open_proactively
    from support.services.tickets import ticket_note_add, ticket_open_for_customer

    now = datetime.now(UTC)
    records = []
    for external_id in external_ids:
        records += [
            event_payload(customer=external_id, product="sku-1", occurred_at=(now - timedelta(days=3)).isoformat()),
            event_payload(customer=external_id, type="purchase", product="sku-1", order_id=f"order-{external_id}",
                          quantity=1, occurred_at=(now - timedelta(days=2)).isoformat(),
                          promised_at=(now - timedelta(days=1)).isoformat()),
            event_payload(customer=None, anonymous_id=f"visitor-{external_id}"),
        ]
    report = events_ingest(records=records)
    assert not report.rejected, report.rejected
    for external_id in external_ids:
        customer_identify(anonymous_id=f"visitor-{external_id}", external_id=external_id)
        customer_upsert(external_id=external_id, marketing_consent=True)

    ModelVersionFactory(target="purchase_intent", status=ModelVersion.Status.CHAMPION)
    run = scoring_cycle_run(as_of=now)  # the day's first run: it keeps a copy of its scores
    assert run.status == "succeeded", run.error

    campaign = campaign_create(
        name="Ten percent for everyone scored", kind="price_offer", status=Campaign.Status.ACTIVE,
        condition={"field": "score.purchase_intent", "op": "gte", "value": 0}, holdout_percent=0,
        discount_kind="percent", discount_value=10, valid_days=7)
    MessagingSettings.objects.update_or_create(pk=1, defaults=dict(enabled=True, url="http://127.0.0.1:9/messages",
                                                                   secret="a-shared-secret"))
    campaign_create(
        name="We miss you", kind="message", status=Campaign.Status.ACTIVE, headline="New in your size",
        condition={"field": "score.purchase_intent", "op": "gte", "value": 0}, holdout_percent=0)
    campaigns_evaluate(run=run, now=now)
    SupportRule.objects.create(name="Everyone scored", active=True, priority=Priority.HIGH, group="deliveries",
                               condition={"field": "score.purchase_intent", "op": "gte", "value": 0},
                               sla_hours=8, dedupe_days=14, subject="About your order")
    tickets_open_proactively(run=run, now=now)
    customers = {c.external_id: c for c in Customer.objects.filter(external_id__in=external_ids)}
    for customer in customers.values():
        ticket, _ = ticket_open_for_customer(customer=customer, subject="Where is my order?",
                                          order_id=f"order-{customer.external_id}")
        ticket_note_add(ticket=ticket, text=f"{customer.external_id} called about it")
        # The change a helpdesk would get (outbox_enqueue writes it only while one is set up and reachable).
        OutboxMessage.objects.create(ticket=ticket, sequence=99, kind=OutboxMessage.Kind.NOTE_ADDED, created_at=now,
                                     next_attempt_at=now, payload={"ticket": {"id": ticket.pk}})
    return {
        "campaign": campaign,
        "coupons": {c.customer.external_id: c.code for c in Coupon.objects.select_related("customer")},
        "help": {t.customer.external_id: t.pk
                 for t in Ticket.objects.filter(origin=Ticket.Origin.PROACTIVE).select_related("customer")},
    }
