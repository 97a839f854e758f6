from datetime import UTC, datetime

import pytest

from behavior.models import ModelVersion, Score
from campaigns.models import Campaign
from tests.factories import CustomerFactory, ModelVersionFactory

NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)


@pytest.fixture
def scored_customers(db):
    """make(intents, consent=...) -> customers with those purchase-intent scores (None: not scored)."""
    version = ModelVersionFactory(target="purchase_intent", status=ModelVersion.Status.CHAMPION)

    def make(intents, consent=True):
        customers = CustomerFactory.create_batch(len(intents), marketing_consent=consent)
        Score.objects.bulk_create([
            Score(customer=c, target="purchase_intent", probability=p, model_version=version, scored_at=NOW)
            for c, p in zip(customers, intents, strict=True) if p is not None
        ])
        return customers

    return make


def offer(**fields) -> Campaign:
    values = dict(name="Ten percent for likely buyers", kind="price_offer", status=Campaign.Status.ACTIVE,
                  condition={"field": "score.purchase_intent", "op": "gte", "value": 0.5}, holdout_percent=0,
                  discount_kind=Campaign.Discount.PERCENT, discount_value=10, valid_days=7)
    return Campaign.objects.create(**{**values, **fields})
