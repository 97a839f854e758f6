"""Issue 27's defects of the admin pages, read as a campaign manager, a support lead and an administrator see
them: who may create settings, one rounding of lateness, probabilities in three decimals, delays said on the
page, the target's help, the heading after a refused URL and "View site"."""

import re
import uuid
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone

from behavior.core.features import describe
from behavior.core.words import duration_in_words, probability_in_words
from behavior.models import Score, Singleton
from campaigns.models import Assignment, Campaign
from support.models import HelpdeskSettings, Ticket
from support.services.proactive import tickets_open_proactively
from tests.admin.conftest import PASSWORD, champion, price_offer
from tests.factories import CustomerFactory, ModelVersionFactory
from tests.support.conftest import NOW, late_order, support_rule

pytestmark = pytest.mark.django_db

SINGLETONS = [model for model in admin.site._registry if issubclass(model, Singleton)]
LONG_DECIMALS = re.compile(r"\d\.\d{5,}")  # 0.1234567890123456, or any number said with five decimals or more


def _user_allowed(client, model, *actions: str):
    """The test client logged in as a staff user with only these permissions on the model."""
    user = get_user_model().objects.create_user(username=f"user-{uuid.uuid4().hex[:8]}", password=PASSWORD,
                                                is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(
        content_type__app_label=model._meta.app_label,
        codename__in=[f"{action}_{model._meta.model_name}" for action in actions]))
    client.force_login(user)
    return client


# --- who may create singleton settings ---------------------------------------------------------------------------


def test_every_singleton_settings_page_is_checked_here():
    names = {model.__name__ for model in SINGLETONS}
    assert {"ContactPolicy", "MessagingSettings", "HelpdeskSettings"} <= names


@pytest.mark.parametrize("model", SINGLETONS, ids=lambda model: model.__name__)
def test_a_reader_of_settings_cannot_create_them_while_none_exist(client, model):
    info = model._meta.app_label, model._meta.model_name
    add, changelist = "/admin/{}/{}/add/".format(*info), "/admin/{}/{}/".format(*info)
    reader = _user_allowed(client, model, "view")

    assert reader.get(changelist).status_code == 200
    assert add not in reader.get(changelist).content.decode()  # no "Add" button
    assert reader.get(add).status_code == 403
    assert reader.post(add, {"max_contacts": 1, "per_days": 1, "retry_base_seconds": 10}).status_code == 403
    assert not model.objects.exists()

    maker = _user_allowed(client, model, "view", "add")
    assert maker.get(add).status_code == 200
    model.current()
    assert maker.get(add).status_code == 403  # one row only


def test_a_campaign_manager_reads_the_messaging_settings_and_creates_none(client_of):
    manager = client_of("Campaign managers")

    assert manager.get("/admin/campaigns/messagingsettings/add/").status_code == 403
    assert "Add messaging settings" not in manager.get("/admin/campaigns/messagingsettings/").content.decode()


def test_a_support_lead_sets_up_the_helpdesk_of_a_new_shop(client_of):
    lead = client_of("Support leads")

    assert lead.get("/admin/support/helpdesksettings/add/").status_code == 200


# --- one rounding of lateness ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("days", "words"), [
    (3.25, "3.3 days"), (5.99, "6.0 days"), (4, "4.0 days"), (1, "1.0 days"), (-2.04, "2.0 days"),
    (23.6 / 24, "1.0 days"), (23.4 / 24, "23 hours"), (1 / 24, "1 hour"), (0.5 / 24, "30 minutes"),
    (59.6 / 24 / 60, "1 hour"), (1 / 24 / 60, "1 minute"), (10 / 24 / 3600, "less than a minute"),
])
def test_a_duration_is_said_in_one_rounding(days, words):
    assert duration_in_words(days) == words


def test_a_late_order_is_as_late_in_the_reasons_the_message_and_the_score(client_of):
    alice = CustomerFactory()
    Score.objects.create(customer=alice, target="support_risk", probability=0.72, scored_at=NOW, reasons=[],
                         model_version=ModelVersionFactory(target="support_risk", status="champion"))
    late_order(alice, "4412", days_late=3.25)
    support_rule(customer_message="Your order {order_id} is {days_late} late; we have opened ticket {ticket}.")
    tickets_open_proactively(now=NOW)
    ticket = Ticket.objects.get()

    assert ticket.reasons[0].startswith("Order 4412 is 3.3 days past its promised delivery")
    assert ticket.reasons[-1] == "Support risk 0.720"
    assert ticket.customer_message == f"Your order 4412 is 3.3 days late; we have opened ticket {ticket.pk}."
    assert describe("days_late", 3.25) == "an order 3.3 days later than promised"  # the score's reason
    page = client_of("Support agents").get(f"/admin/support/ticket/{ticket.pk}/change/").content.decode()
    assert "3.3 days past its promised delivery" in page and "3.3 days late" in page
    assert not re.search(r"\b[45] days", page)


def test_the_queue_says_how_overdue_in_the_same_rounding(client_of):
    now = timezone.now()
    customer = CustomerFactory()
    for subject, due in (("nearly six days", now - timedelta(days=5.99)), ("three hours", now - timedelta(hours=3)),
                         ("two hours to go", now + timedelta(hours=2, minutes=1))):
        Ticket.objects.create(customer=customer, origin="agent", group="support", subject=subject,
                              opened_at=due - timedelta(hours=24), due_at=due)

    queue = client_of("Support agents").get("/admin/support/ticket/").content.decode()

    assert "overdue 6.0 days" in queue and "overdue 5 days" not in queue
    assert "overdue 3 hours" in queue and "in 2 hours" in queue


# --- probabilities ---------------------------------------------------------------------------------------------


def test_probabilities_show_three_decimals_on_every_page_that_shows_one(client_of):
    version = champion()
    version.threshold = 0.34567890123456789
    version.save()
    customer = CustomerFactory()
    score = Score.objects.create(customer=customer, target="purchase_intent", probability=0.72345678901234567,
                                 model_version=version, scored_at=NOW,
                                 reasons=[{"feature": "views_7d", "value": 6.0, "contribution": 0.4123456789012,
                                           "text": "6 product views in the last 7 days"}])
    campaign = price_offer(status="active")
    Assignment.objects.create(campaign=campaign, customer=customer, period=1, group="treatment", assigned_at=NOW,
                              expires_at=NOW + timedelta(days=7), reason="purchase intent score ≥ 0.5")
    manager, administrator = client_of("Campaign managers"), client_of("Administrators")

    pages = {url: manager.get(url).content.decode() for url in [
        "/admin/behavior/score/", f"/admin/behavior/score/{score.pk}/change/",
        f"/admin/behavior/customer/{customer.pk}/change/", "/admin/behavior/customer/",
        "/admin/campaigns/assignment/", f"/admin/campaigns/assignment/{Assignment.objects.get().pk}/change/"]}
    pages["model version"] = administrator.get(f"/admin/behavior/modelversion/{version.pk}/change/").content.decode()

    assert {url: LONG_DECIMALS.findall(page) for url, page in pages.items()} == {url: [] for url in pages}
    assert probability_in_words(score.probability) == "0.723"
    assert "0.723" in pages["/admin/behavior/score/"] and "0.723" in pages[f"/admin/behavior/score/{score.pk}/change/"]
    assert "0.346" in pages["model version"]


# --- delays said on the page -------------------------------------------------------------------------------------


def test_an_activated_campaign_says_when_its_first_customers_are_assigned(client_of):
    campaign = price_offer()
    manager = client_of("Campaign managers")

    page = manager.post("/admin/campaigns/campaign/", {"action": "activate", "_selected_action": [campaign.pk]},
                        follow=True).content.decode()

    assert Campaign.objects.get().status == "active"
    message = page[page.index('class="messagelist"'):]
    assert re.search(r"Ten percent for likely buyers: active; the campaign assigns its customers when it is next "
                     r"evaluated: (At|Due since) .*Evaluate now does it at once", message)
    change = manager.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    assert "None assigned yet: the campaign assigns its customers when it is next evaluated: " in change


def test_the_queue_says_when_support_contacts_become_tickets(client_of):
    queue = client_of("Support leads").get("/admin/support/ticket/").content.decode()

    assert re.search(r"Support contacts sent as events become tickets when they are next opened: (At|Due since) ",
                     queue)


# --- the target's help, the refused URL's heading, "View site" ------------------------------------------------------


def test_a_targets_help_names_how_conditions_read_its_score(client_of):
    page = client_of("Administrators").get("/admin/behavior/target/add/").content.decode()

    assert "score.." not in page
    assert "Used in conditions as score.NAME, e.g. score.purchase_intent." in page


def test_after_a_refused_url_the_heading_shows_the_saved_one(client_of, settings):
    HelpdeskSettings.objects.create(enabled=True, url="https://helpdesk.example/hooks", secret="s3cret")
    settings.FORESIGHT_WEBHOOKS_ALLOW_PRIVATE = False
    form = {"enabled": "on", "url": "http://10.0.0.5/hooks", "secret": "", "retry_base_seconds": 10}

    page = client_of("Administrators").post("/admin/support/helpdesksettings/1/change/", form).content.decode()

    assert "webhooks must go to a public one" in page
    assert "<h2>helpdesk at https://helpdesk.example/hooks</h2>" in page
    assert "<title>Error: helpdesk at https://helpdesk.example/hooks" in page
    assert "helpdesk at http://10.0.0.5" not in page
    assert 'value="http://10.0.0.5/hooks"' in page  # the field keeps what was typed, to correct it
    assert HelpdeskSettings.current().url == "https://helpdesk.example/hooks"


def test_the_admin_offers_no_view_site_link_to_a_page_that_is_not_there(client_of):
    page = client_of("Campaign managers").get("/admin/").content.decode()

    assert "View site" not in page
