import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from behavior.core.training import score_metrics
from behavior.models import AnonymousLink, Contact, ModelVersion, Score, ScoringRun
from behavior.services.api_keys import api_key_create
from campaigns.models import Assignment, Campaign, Coupon
from campaigns.services import campaign_create
from tests.factories import CustomerFactory, EventFactory, ModelVersionFactory, ProductFactory

NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)
PASSWORD = "a-test-password"


@pytest.fixture
def member(db):
    """member("Campaign managers") -> a staff user whose rights come from that group alone."""

    def make(group: str):
        user = get_user_model().objects.create_user(username=f"user-{uuid.uuid4().hex[:8]}", password=PASSWORD,
                                                    is_staff=True)
        user.groups.add(Group.objects.get(name=group))
        return user

    return make


@pytest.fixture
def client_of(client, member):
    """client_of("Support agents") -> the test client logged in as a member of that group."""

    def login(group: str):
        client.force_login(member(group))
        return client

    return login


@pytest.fixture
def login(browser, live_server, member):
    """login("Support leads", "dark") -> a browser page at 1,366 px (a common laptop), logged in to the admin as a
    member of that group, in the light or dark theme. A test module may define its own."""

    def open_as(group: str, color_scheme: str = "light"):
        user = member(group)
        context = browser.new_context(viewport={"width": 1366, "height": 900}, color_scheme=color_scheme)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(live_server.url + "/admin/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_selector("#site-name")
        return page

    return open_as


def champion(target: str = "purchase_intent") -> ModelVersion:
    """A champion with the metrics training stores: a calibration table and a ROC curve."""
    y = [0, 0, 1, 0, 1, 1, 0, 1, 0, 0]
    p = [0.1, 0.2, 0.8, 0.3, 0.6, 0.9, 0.4, 0.35, 0.05, 0.5]
    metrics = score_metrics(y, p, 0.5).as_dict()
    metrics["baseline"] = score_metrics(y, [0.5] * 10, 0.5).as_dict()
    return ModelVersionFactory(target=target, metrics=metrics,
                                       status=ModelVersion.Status.CHAMPION, promoted_at=NOW, threshold=0.5)


def price_offer(**fields) -> Campaign:
    values = dict(name="Ten percent for likely buyers", kind="price_offer",
                  condition={"field": "score.purchase_intent", "op": "gte", "value": 0.5}, holdout_percent=10,
                  discount_kind="percent", discount_value=10, valid_days=7)
    return campaign_create(**{**values, **fields})


def one_of_everything(version: ModelVersion, campaign: Campaign) -> None:
    """A customer with a row in every table the admin lists: for counting queries per list page."""
    run = ScoringRun.objects.create(as_of=NOW, status=ScoringRun.Status.SUCCEEDED, finished_at=NOW,
                                    stage_seconds={"read": 0.2, "features": 0.5})
    customer = CustomerFactory()
    EventFactory(customer=customer, product=ProductFactory(), type="purchase", price="20.00", order_id="o-1")
    Score.objects.create(customer=customer, target=version.target, probability=0.7, model_version=version, run=run,
                         scored_at=NOW, reasons=[{"feature": "views_7d", "text": "6 product views in the last 7 days"}])
    Contact.objects.create(customer=customer, source=f"campaign {campaign.pk}", contacted_at=NOW)
    AnonymousLink.objects.create(anonymous_id=uuid.uuid4().hex, customer=customer)
    assignment = Assignment.objects.create(campaign=campaign, customer=customer, period=1, group="treatment",
                                           assigned_at=NOW, expires_at=NOW + timedelta(days=7), run=run)
    Coupon.objects.create(assignment=assignment, customer=customer, code=Coupon.generate_code(),
                          expires_at=NOW + timedelta(days=7), redeemed_at=NOW, discount_amount="2.00")
    api_key_create(name=f"key for {customer}", scopes=["read"])
    ModelVersionFactory(target=version.target, metrics=version.metrics)
