from datetime import UTC, datetime

import pytest

from behavior.models import ModelVersion, Score
from campaigns.models import Campaign
from campaigns.services import campaign_create
from tests.factories import CustomerFactory, ModelVersionFactory

NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def model_files(settings, tmp_path):
    """Model artifacts a test registers go to its own folder, not the project's media."""
    settings.MEDIA_ROOT = tmp_path


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
    """An active campaign for likely buyers: a 10% price offer unless `fields` say another kind."""
    values = dict(name="Ten percent for likely buyers", kind="price_offer", status=Campaign.Status.ACTIVE,
                  condition={"field": "score.purchase_intent", "op": "gte", "value": 0.5}, holdout_percent=0)
    if fields.get("kind", "price_offer") == "price_offer":
        values.update(discount_kind="percent", discount_value=10, valid_days=7)
    return campaign_create(**{**values, **fields})
