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
