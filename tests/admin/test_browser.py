"""A campaign manager and a support agent do their jobs in a real browser (Debian's Chromium, headless).

Each page is saved as a screenshot under tests/screenshots/ (git-ignored) to look at after a run.
"""

from datetime import UTC, datetime

import numpy as np
import pytest

from behavior.models import ModelVersion, Score
from behavior.services.learning import models_train
from behavior.services.scoring import scoring_cycle_run
from campaigns.models import Assignment, Campaign
from campaigns.selectors import campaign_preview
from campaigns.services import campaign_audience_compute, campaigns_evaluate
from campaigns.uplift import campaign_uplift_learn
from foresight_demo.services import shop_simulate
from tests.admin.conftest import PASSWORD
from tests.campaigns.conftest import NOW
from tests.campaigns.test_uplift_learning import campaign_with_history
from tests.conftest import screenshot
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db(transaction=True)  # the live server's thread must see the test's rows

END = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture
def login(browser, live_server, member):
    """login("Campaign managers") -> a browser page logged in to the admin as a member of that group."""

    def open_as(group: str):
        user = member(group)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()  # a common laptop
        page.set_default_timeout(15_000)
        page.goto(live_server.url + "/admin/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_selector("#site-name")
        return page

    return open_as


@pytest.fixture
def scored_shop(settings, tmp_path):
    """A small simulated shop scored by transparent champions: what a scoring cycle leaves behind."""
    settings.MEDIA_ROOT = tmp_path
    shop_simulate(customers=400, days=60, seed=11, end=END, products=60)
    for target, kind in (("purchase_intent", "browsing"), ("support_risk", "order_timing")):
        ModelVersionFactory(target=target, kind=kind, status="champion", threshold=0.5)
    return scoring_cycle_run(as_of=END)


def test_a_campaign_manager_creates_previews_activates_and_reads_results(login, live_server, scored_shop):
    intents = Score.objects.filter(target="purchase_intent").values_list("probability", flat=True)
    threshold = round(float(np.quantile(list(intents), 0.8)), 3)
    page = login("Campaign managers")
    page.click("#campaigns-campaign a")  # the app list's link, below the home page's dashboard
    page.click("a.addlink")
    page.fill("#id_name", "Ten percent for the keenest fifth")
    page.select_option("#id_kind", "price_offer")
    page.fill("#id_priceoffersettings-0-discount_value", "10")
    # Who is held out hangs on the campaign's id; a quarter of some 40 customers leaves the control group
    # empty once in millions (a tenth: once in a hundred), and the uplift chart needs both groups.
    page.fill("#id_holdout_percent", "25")
    page.click("button:text-is('Edit as JSON')")  # the builder's other view: the stored JSON
    page.fill("#id_condition", '{"all": [{"field": "score.purchase_intent", "op": "bigger", "value": 0.5}]}')
    page.click("input[name=_continue]")

    error = page.locator(".field-condition .errorlist").inner_text()
    assert "all[0].op: unknown operator 'bigger'" in error
    screenshot(page, "campaign-1-condition-error")

    page.fill("#id_condition", f'{{"all": [{{"field": "score.purchase_intent", "op": "gte", "value": {threshold}}}]}}')
    page.click("input[name=_continue]")
    campaign = Campaign.objects.get()
    assert "Being computed in the background since" in page.locator(".field-audience_now").inner_text()
    campaign_audience_compute(campaign_id=campaign.pk)  # a worker's job, asked for by the save
    page.reload()
    preview = campaign_preview(campaign=campaign)
    assert preview.audience > 0
    audience = page.locator(".field-audience_now").inner_text()
    assert f"{preview.audience:,} customers match with consent: {preview.holdout:,} held out" in audience
    assert "expected cost" in audience
    screenshot(page, "campaign-2-preview")

    page.click("button:has-text('Activate')")
    assert "Ten percent for the keenest fifth: active" in page.locator(".messagelist").inner_text()
    campaign.refresh_from_db()
    assert campaign.status == "active"
    screenshot(page, "campaign-3-active")

    # The next scoring cycle, and the campaign evaluation it triggers (a worker's job, here in-process).
    run = scoring_cycle_run(as_of=END)
    outcome = campaigns_evaluate(run=run)[0]
    page.reload()
    treated = Assignment.objects.filter(campaign=campaign, group="treatment").count()
    assert treated == outcome.reached > 0
    assert f"{treated:,} treated" in page.locator(".field-assignments").inner_text()
    # Some 40 customers: each group's conversion rate, and no uplift until 50 are in each group.
    assert page.locator(".field-results svg").count() == 1
    assert "too early to tell" in page.locator(".field-results").inner_text()
    screenshot(page, "campaign-4-results")

    page.click("text=see each customer")
    page.wait_for_selector("#result_list")
    listed = min(Assignment.objects.filter(campaign=campaign).count(), 100)  # the admin's page size
    assert page.locator("#result_list tbody tr").count() == listed
    screenshot(page, "campaign-5-assignments")
    customer = Assignment.objects.filter(campaign=campaign, group="treatment").first().customer
    page.goto(f"{live_server.url}/admin/behavior/customer/")
    page.fill("#searchbar", customer.external_id)
    page.press("#searchbar", "Enter")
    page.click(f"#result_list a:text-is('{customer.external_id}')")
    assert "purchase intent" in page.locator(".field-scores").inner_text()
    coupon = customer.coupons.get().code
    assert coupon in page.locator(".foresight-related").all_inner_texts()[1]
    screenshot(page, "campaign-6-customer")


def test_a_campaign_manager_turns_on_targeting_by_uplift_and_reads_whom_the_campaign_persuades(
        login, live_server, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    campaign, _ = campaign_with_history(per_kind=1000)  # a past month of treatment and control
    campaign_uplift_learn(campaign=campaign, now=NOW)
    page = login("Campaign managers")
    page.goto(f"{live_server.url}/admin/campaigns/campaign/{campaign.pk}/change/")
    assert "Off. Give a share or a count" in page.locator(".field-uplift_model").inner_text()

    page.fill("#id_uplift_top_percent", "30")
    page.click("input[name=_continue]")
    campaign_audience_compute(campaign_id=campaign.pk)  # a worker's job, asked for by the save
    page.reload()

    assert "by predicted uplift (model version" in page.locator(".field-audience_now").inner_text()
    model = page.locator(".field-uplift_model")
    assert "Response model (likeliest buyers first): Qini" in model.inner_text()
    assert model.locator("svg polyline").count() == 3  # the uplift model, the response model and chance
    screenshot(page, "campaign-7-uplift")


def test_a_support_agent_works_a_proactive_ticket(login, live_server, scored_shop):
    from support.models import SupportRule, Ticket
    from support.services.proactive import tickets_open_proactively

    risks = sorted(Score.objects.filter(target="support_risk").values_list("probability", flat=True))
    SupportRule.objects.create(name="Risky customers", active=True, subject="Check in before they complain",
                               condition={"field": "score.support_risk", "op": "gte", "value": risks[-5]},
                               customer_message="We have opened ticket {ticket} to help you.")
    tickets_open_proactively(run=scored_shop)
    ticket = Ticket.objects.order_by("-priority", "due_at").first()
    page = login("Support agents")

    page.click("#support-ticket a")  # the app list's link, below the home page's dashboard
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() > 0
    assert page.evaluate("document.querySelector('.results').scrollWidth <= "
                         "document.querySelector('.results').clientWidth")  # every column shows at 1,366 px
    screenshot(page, "support-1-queue")
    page.click(f"#result_list a[href$='/ticket/{ticket.pk}/change/']")
    assert "Check in before they complain" in page.locator("#content").inner_text()
    assert [b.inner_text() for b in page.locator(".object-tools button").all()] == [
        "Mark pending (waiting on the customer)", "Solve"]  # what an open ticket can become
    screenshot(page, "support-2-ticket")
    page.click(".object-tools button:has-text('Mark pending')")
    assert "1 ticket(s) now pending" in page.locator(".messagelist").inner_text()
    ticket.refresh_from_db()
    assert ticket.status == "pending"
    page.fill("textarea[name='notes-0-text']", "Called her: the parcel is at the depot, out tomorrow.")
    page.click("input[name=_continue]")
    assert "the parcel is at the depot" in page.locator("#notes-group").inner_text()
    note = ticket.notes.get()
    assert note.author.groups.filter(name="Support agents").exists()  # the agent who wrote it
    screenshot(page, "support-3-note")
    page.goto(live_server.url + "/admin/support/ticket/")
    page.check(f"#result_list input[name=_selected_action][value='{ticket.pk}']")
    page.select_option("select[name=action]", "solve")
    page.click("button[name=index]")
    assert "1 ticket(s) now solved" in page.locator(".messagelist").inner_text()
    ticket.refresh_from_db()
    assert ticket.status == "solved"
    screenshot(page, "support-4-solved")
    assert page.goto(page.url.split("/admin/")[0] + "/admin/campaigns/campaign/").status == 403


def test_an_administrator_redefines_a_target_and_reads_why_its_model_serves(login, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    shop_simulate(customers=1_500, days=120, seed=3, end=END, products=100)
    models_train(as_of=END)
    champion = ModelVersion.objects.get(target="support_risk", status="champion")
    page = login("Administrators")

    page.goto(page.url.split("/admin/")[0] + "/admin/behavior/target/")
    listing = page.locator("#result_list").inner_text()
    assert "purchase within 7 days" in listing and "customers with an order in flight" in listing
    screenshot(page, "target-1-list")
    page.click("#result_list a:text-is('purchase_intent')")
    page.fill("#id_horizon_days", "30")
    page.click("input[name=_save]")
    message = page.locator(".messagelist").inner_text().lower()
    assert "purchase_intent: changed" in message and "retired model versions" in message
    assert "purchase within 30 days" in page.locator("#result_list").inner_text()
    screenshot(page, "target-2-changed")

    page.goto(page.url.split("/admin/")[0] + f"/admin/behavior/modelversion/{champion.pk}/change/")
    content = page.locator("#content").inner_text()
    assert "Chosen because" in content and champion.metrics["chosen_because"] in content
    assert "Every candidate on the same validation rows" in content and "order timing" in content
    assert "all active customers (for scale)" in content.lower()  # the admin writes table headers in capitals
    screenshot(page, "target-3-model-version")
