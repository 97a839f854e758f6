"""A campaign's page opens without reading the shop's events: its audience figures are those the last evaluation or
a background computation kept, with how old they are (issue 27, item 5)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from behavior.models import Customer, Score, ScoringRun
from campaigns import services
from campaigns.models import CampaignAudience
from campaigns.selectors import campaign_preview
from campaigns.services import campaign_audience_compute, campaigns_evaluate
from tests.admin.conftest import price_offer
from tests.campaigns.conftest import NOW
from tests.factories import CustomerFactory, EventFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db

# Reads the features built from every customer's events: the dearest condition a page could compute.
ON_FEATURES = {"all": [{"field": "feature.orders", "op": "gte", "value": 1},
                       {"field": "score.purchase_intent", "op": "gte", "value": 0.5}]}


@pytest.fixture
def shop(db):
    """Four customers with consent, their purchase intents 0.2, 0.6, 0.7 and 0.9, each with one order."""
    version = ModelVersionFactory(target="purchase_intent", status="champion")
    customers = CustomerFactory.create_batch(4, marketing_consent=True)
    for customer, intent in zip(customers, [0.2, 0.6, 0.7, 0.9], strict=True):
        Score.objects.create(customer=customer, target="purchase_intent", probability=intent, model_version=version,
                             scored_at=NOW)
        EventFactory(customer=customer, type="purchase", price="20.00", order_id=f"o-{customer.pk}",
                     occurred_at=NOW - timedelta(days=3))
    return customers


def event_reads(queries) -> list[str]:
    """The statements that read the events table other than through the campaign's own assignments (its results:
    the purchases of its assigned customers, through the events' (customer, time) index)."""
    return [q["sql"] for q in queries
            if '"behavior_event"' in q["sql"] and 'FROM "campaigns_assignment"' not in q["sql"]]


def test_no_campaign_page_reads_the_shops_events_on_the_request(shop, client_of, monkeypatch):
    draft = price_offer(name="draft", condition=ON_FEATURES)
    active = price_offer(name="active", condition=ON_FEATURES, status="active")
    for name in ("behavior.selectors.events_frame", "campaigns.selectors.events_frame"):
        monkeypatch.setattr(name, lambda *a, **k: pytest.fail("a campaign page read every customer's events"))
    client = client_of("Campaign managers")

    for url in (f"/admin/campaigns/campaign/{draft.pk}/change/", f"/admin/campaigns/campaign/{active.pk}/change/",
                "/admin/campaigns/campaign/"):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        assert event_reads(queries.captured_queries) == [], url


def test_the_page_shows_what_the_evaluation_after_a_scoring_run_kept_and_when(shop, client_of):
    campaign = price_offer(condition=ON_FEATURES, status="active", holdout_percent=0)
    at = timezone.now() - timedelta(hours=2)
    run = ScoringRun.objects.create(as_of=at, status=ScoringRun.Status.SUCCEEDED, finished_at=at)
    campaigns_evaluate(run=run)

    page = client_of("Campaign managers").get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()

    # Counted here by hand: the three customers with an order, consent and an intent of at least 0.5.
    matching = Score.objects.filter(probability__gte=0.5, customer__marketing_consent=True).count()
    assert matching == 3
    assert f"{matching} customers match with consent: 0 held out, {matching} treated" in page
    assert f"as of the scoring run at {timezone.localtime(at):%Y-%m-%d %H:%M %Z} (2\xa0hours ago) and the" in page
    assert "Being computed" not in page  # the evaluation's figures are for the campaign as it is


def test_a_draft_is_computed_in_the_background_and_the_page_says_how_far_it_has_come(
        shop, client_of, django_capture_on_commit_callbacks):
    campaign = price_offer(condition=ON_FEATURES)
    client = client_of("Campaign managers")
    url = f"/admin/campaigns/campaign/{campaign.pk}/change/"

    with django_capture_on_commit_callbacks() as asked:
        page = client.get(url).content.decode()
        again = client.get(url).content.decode()
    assert len(asked) == 1  # one computation asked for, however often the page is opened meanwhile
    assert "Being computed in the background since" in page and "waiting for a worker" in page
    assert "Being computed in the background since" in again

    campaign_audience_compute(campaign_id=campaign.pk)  # the worker's task
    with django_capture_on_commit_callbacks() as asked:
        page = client.get(url).content.decode()
    assert asked == []
    expected = campaign_preview(campaign=campaign)
    assert expected.audience == 3
    assert f"3 customers match with consent: {expected.holdout} held out, {expected.treated} treated" in page
    assert "as computed in the background at" in page and "Being computed" not in page

    campaign.condition = {"field": "score.purchase_intent", "op": "gte", "value": 0.8}
    campaign.save()
    with django_capture_on_commit_callbacks() as asked:
        page = client.get(url).content.decode()
    assert len(asked) == 1
    assert "Being computed in the background since" in page
    assert "last change, as computed in the background at" in page
    assert "3 customers match with consent" in page  # the figures of before, said to be so

    campaign_audience_compute(campaign_id=campaign.pk)
    assert "1 customers match with consent" in client.get(url).content.decode()


def test_computed_part_by_part_the_figures_are_the_previews(shop, monkeypatch):
    campaign = price_offer(condition=ON_FEATURES, holdout_percent=25)
    said = []
    real = services.campaign_audience_matched

    def matched(*args, **kwargs):
        said.append(CampaignAudience.objects.get(campaign=campaign).progress)
        return real(*args, **kwargs)

    monkeypatch.setattr(services, "AUDIENCE_PART_CUSTOMERS", 2)
    monkeypatch.setattr(services, "campaign_audience_matched", matched)
    CampaignAudience.objects.create(campaign=campaign)
    stored = campaign_audience_compute(campaign_id=campaign.pk, now=NOW)

    assert said == [f"{done} of 2 parts of the shop read (2 customers each)" for done in (0, 1)]
    preview = campaign_preview(campaign=campaign, now=NOW)
    assert (stored.audience, stored.holdout, stored.treated) == (preview.audience, preview.holdout, preview.treated)
    assert stored.expected_cost == preview.expected_cost and stored.as_of == NOW
    assert Customer.objects.count() == 4


def test_a_condition_that_no_longer_parses_is_said_on_the_page(shop, client_of):
    campaign = price_offer()
    campaign.condition = {"field": "score.purchase_intent", "op": "bigger", "value": 0.5}
    campaign.save()  # as a campaign saved before an operator was renamed
    campaign_audience_compute(campaign_id=campaign.pk)

    page = client_of("Campaign managers").get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    assert "Fix the condition to see the audience" in page


def test_one_computation_is_asked_for_a_change_and_asked_again_when_its_task_was_lost(shop):
    campaign = price_offer()
    at = timezone.now()

    assert services.campaign_audience_request(campaign=campaign, now=at) is True
    assert services.campaign_audience_request(campaign=campaign, now=at + timedelta(minutes=14)) is False
    # No figures 15 minutes on: the task was lost (a worker died, the broker was down), and the page asks again.
    assert services.campaign_audience_request(campaign=campaign, now=at + timedelta(minutes=16)) is True
    campaign_audience_compute(campaign_id=campaign.pk, now=at + timedelta(minutes=17))
    assert services.campaign_audience_request(campaign=campaign, now=at + timedelta(minutes=18)) is False
    assert services.campaign_audience_request(campaign=campaign, now=at + timedelta(days=1, minutes=18)) is True
