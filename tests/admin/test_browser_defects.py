"""What a support lead and a campaign manager read of issue 27's defects in a real browser (Debian's Chromium,
headless): the queue's lateness in one rounding and when support contacts become tickets, the heading after a
refused helpdesk URL, settings that only who may add them can create, and no "View site" leading to a 404."""

from datetime import timedelta

import pytest
from django.utils import timezone

from support.models import HelpdeskSettings, Ticket
from tests.conftest import screenshot
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True)  # the live server's thread must see the test's rows


def test_a_support_lead_reads_the_queue_and_keeps_the_saved_helpdesk_after_a_refused_url(login, live_server,
                                                                                         settings):
    now = timezone.now()
    customer = CustomerFactory()
    late = Ticket.objects.create(customer=customer, origin="agent", group="support", subject="Where is my parcel?",
                                 opened_at=now - timedelta(days=7), due_at=now - timedelta(days=5.99))
    HelpdeskSettings.objects.create(enabled=True, url="https://helpdesk.example/hooks", secret="s3cret")
    page = login("Support leads")

    assert page.locator("#user-tools a", has_text="View site").count() == 0  # shown in capitals: its text matched
    page.goto(live_server.url + "/admin/support/ticket/")
    row = page.locator(f"#result_list tr:has(a[href$='/ticket/{late.pk}/change/'])")
    assert row.locator(".ticket-overdue").inner_text() == "overdue 6.0 days"
    note = page.locator(".foresight-contacts-note").inner_text()
    assert note.startswith("Support contacts sent as events become tickets when they are next opened: ")
    screenshot(page, "defects-1-queue")

    settings.FORESIGHT_WEBHOOKS_ALLOW_PRIVATE = False
    page.goto(live_server.url + "/admin/support/helpdesksettings/1/change/")
    page.fill("#id_url", "http://10.0.0.5/hooks")
    page.click("input[name=_save]")
    assert "webhooks must go to a public one" in page.locator("#id_url_error").inner_text()
    assert page.locator("#content h2").first.inner_text() == "helpdesk at https://helpdesk.example/hooks"
    assert "10.0.0.5" not in page.locator("nav.breadcrumbs, .breadcrumbs").first.inner_text()
    assert page.input_value("#id_url") == "http://10.0.0.5/hooks"  # what was typed, to correct
    screenshot(page, "defects-2-refused-url")
    assert HelpdeskSettings.current().url == "https://helpdesk.example/hooks"


def test_a_campaign_manager_is_offered_no_way_to_create_the_messaging_settings(login, live_server):
    page = login("Campaign managers")

    page.goto(live_server.url + "/admin/campaigns/messagingsettings/")
    assert page.locator("a[href$='/messagingsettings/add/']").count() == 0  # in the sidebar or above the list
    assert page.locator("#content").inner_text().startswith("Select messaging settings to view")
    response = page.goto(live_server.url + "/admin/campaigns/messagingsettings/add/")
    assert response is not None and response.status == 403
