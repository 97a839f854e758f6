"""What campaign managers and support people see on the admin pages, through the test client."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from behavior.charts import Bar, bar_chart, line_chart
from behavior.models import Customer, ScoringRun
from campaigns.actions.price_offer import PriceOfferSettings
from campaigns.models import Campaign, Coupon
from campaigns.services import campaign_audience_compute
from campaigns.uplift import campaign_uplift_learn
from tests.admin.conftest import champion, one_of_everything, price_offer
from tests.campaigns.conftest import NOW
from tests.campaigns.test_uplift_learning import campaign_with_history
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db


def test_a_bad_condition_is_refused_beside_the_field_naming_the_node(client_of):
    client = client_of("Campaign managers")
    form = {"name": "Winback", "kind": "price_offer", "priority": 0, "period_days": 7, "holdout_percent": 10,
            "attribution_days": 7, "slot": "home",
            "condition": '{"all": [{"field": "score.purchase_intent", "op": "gte", "value": 0.5},'
                         ' {"field": "customer.country", "op": "gte", "value": "DE"}]}',
            **settings_form("adsettings", strategy="blend", products_per_ad=4),
            **settings_form("priceoffersettings", discount_kind="percent", discount_value=10, scope="all",
                            min_order=0, valid_days=7),
            **settings_form("messagecontent")}

    page = client.post("/admin/campaigns/campaign/add/", form).content.decode()

    assert "all[1].op: gte does not apply to string field customer.country" in page
    assert 'class="errorlist' in page and not Campaign.objects.exists()
    form["condition"] = '{"field": "score.purchase_intent", "op": "gte", "value": 0.5}'
    assert client.post("/admin/campaigns/campaign/add/", form).status_code == 302
    assert Campaign.objects.get().status == "draft"
    assert Campaign.objects.get().settings.discount_value == 10


def settings_form(prefix: str, **fields) -> dict:
    """An action's settings as the campaign page's inline sends them: a form set of one, new."""
    return {f"{prefix}-TOTAL_FORMS": 1, f"{prefix}-INITIAL_FORMS": 0, f"{prefix}-MIN_NUM_FORMS": 0,
            f"{prefix}-MAX_NUM_FORMS": 1, **{f"{prefix}-0-{name}": value for name, value in fields.items()}}


def test_a_campaign_page_previews_the_audience_and_charts_its_results(client_of, settings):
    settings.FORESIGHT_CURRENCY = "BRL"
    version = champion()
    campaign = price_offer(status="active")
    for _ in range(3):
        one_of_everything(version, campaign)
    campaign_audience_compute(campaign_id=campaign.pk)  # a worker's job, asked for by the campaign's save

    page = client_of("Campaign managers").get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()

    assert "3 customers match with consent" in page and "expected cost" in page
    assert re.search(r"expected cost [\d,]+\.\d\d BRL", page)
    assert "3 redemptions, 6.00 BRL discount spent" in page  # the shop's currency beside every amount
    coupons = client_of("Campaign managers").get("/admin/campaigns/coupon/").content.decode()
    assert coupons.count("2.00 BRL") == 3
    assert "Discount spent over time (cumulative, BRL)" in page
    assert "purchase intent score ≥ 0.5" in page  # the condition in words
    assert "Converted within the attribution window" in page
    assert "Uplift: treatment minus control: nothing to show yet" in page  # no control group yet
    assert page.count('class="foresight-chart"') == 2 and "cdn" not in page.lower()
    assert "3 treated, 0 in the control group" in page
    assert ">Pause</button>" in page and ">End</button>" in page


def test_a_campaign_targeting_by_uplift_shows_its_qini_curve_beside_the_response_model_and_random(
        client_of, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    campaign, _ = campaign_with_history(per_kind=1000)
    Campaign.objects.filter(pk=campaign.pk).update(uplift_top_percent=30)
    url = f"/admin/campaigns/campaign/{campaign.pk}/change/"
    before = client_of("Campaign managers").get(url).content.decode()
    version = campaign_uplift_learn(campaign=campaign, now=NOW)
    campaign_audience_compute(campaign_id=campaign.pk)  # a worker's job, asked for by the page (a new model)

    page = client_of("Campaign managers").get(url).content.decode()

    assert "it has no uplift model that ranks better" in before  # falls back to the condition, and says so
    assert f"by predicted uplift (model version {version.pk}" in page
    chart = page[page.index("Uplift model: Qini"):]
    assert "Response model (likeliest buyers first): Qini" in chart and "uplift in its top 30%" in chart
    assert "Extra conversions by share targeted" in chart and chart.count("<polyline") >= 3  # and the random line
    assert ">random<" in chart and ">response model<" in chart


def test_saving_an_offer_keeps_what_it_spent_and_refuses_a_budget_below_it(client_of):
    campaign = price_offer(budget="50.00")
    PriceOfferSettings.objects.filter(pk=campaign.pk).update(discount_spent="30.00")  # redemptions meanwhile
    form = {"name": "Ten percent, renamed", "priority": 0, "slot": "home", "period_days": 7, "holdout_percent": 10,
            "attribution_days": 7, "condition": '{"field": "score.purchase_intent", "op": "gte", "value": 0.5}',
            **settings_form("priceoffersettings", campaign=campaign.pk, discount_kind="percent", discount_value=15,
                            scope="all", min_order=0, valid_days=7, budget="20.00"),
            "priceoffersettings-INITIAL_FORMS": 1}
    url = f"/admin/campaigns/campaign/{campaign.pk}/change/"
    client = client_of("Campaign managers")

    page = client.post(url, form).content.decode()

    assert "The offer has spent 30.00 EUR already: the budget cannot be less." in page
    form["priceoffersettings-0-budget"] = "60.00"
    assert client.post(url, form).status_code == 302
    offer = PriceOfferSettings.objects.get(pk=campaign.pk)
    assert (offer.budget, offer.discount_value, offer.discount_spent) == (60, 15, 30)


def test_the_status_buttons_go_through_the_lifecycle_service(client_of):
    campaign = price_offer()
    client = client_of("Campaign managers")
    url = f"/admin/campaigns/campaign/{campaign.pk}/status/"

    page = client.post(url, {"status": "active"}, follow=True).content.decode()
    campaign.refresh_from_db()
    assert campaign.status == "active" and f"{campaign.name}: active" in page
    client.post(url, {"status": "ended"})
    again = client.post(url, {"status": "active"}, follow=True).content.decode()
    assert "a ended campaign cannot become active" in again
    assert client_of("Support agents").post(url, {"status": "paused"}).status_code == 403


def test_a_customer_page_shows_scores_reasons_timeline_and_what_the_viewer_may_see(client_of):
    version = champion()
    one_of_everything(version, price_offer())
    customer = Customer.objects.get()
    url = f"/admin/behavior/customer/{customer.pk}/change/"

    manager = client_of("Campaign managers").get(url).content.decode()
    assert "6 product views in the last 7 days" in manager and "0.700" in manager
    assert "purchase" in manager and "o-1" in manager  # the event timeline
    assert "Assignments" in manager and "Coupons" in manager and "Contacts" not in manager
    agent = client_of("Support agents").get(url).content.decode()
    assert "6 product views in the last 7 days" in agent and "Coupons" not in agent
    found = client_of("Support agents").get("/admin/behavior/customer/", {"q": customer.external_id})
    assert customer.external_id in found.content.decode() and "1 customer" in found.content.decode()


def test_model_pages_chart_roc_and_calibration_and_promote_by_hand(client_of, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    old = champion()
    new = ModelVersionFactory(target="purchase_intent", metrics=old.metrics)
    client = client_of("Administrators")

    page = client.get(f"/admin/behavior/modelversion/{old.pk}/change/").content.decode()
    assert "ROC curve" in page and "Calibration" in page and "all active customers (for scale)" in page
    done = client.post("/admin/behavior/modelversion/", {"action": "promote", "_selected_action": [new.pk]},
                       follow=True).content.decode()
    old.refresh_from_db(), new.refresh_from_db()
    assert (old.status, new.status) == ("retired", "champion") and f"version {new.pk} is champion" in done


def test_scoring_runs_show_stage_timings_and_scores_their_distribution(client_of):
    version = champion()
    one_of_everything(version, price_offer())
    run = ScoringRun.objects.get()
    client = client_of("Administrators")

    page = client.get(f"/admin/behavior/scoringrun/{run.pk}/change/").content.decode()
    assert "Seconds by stage" in page and "features" in page and "purchase intent: customers by score" in page
    scores = client.get("/admin/behavior/score/").content.decode()
    assert "purchase intent: customers by score" in scores and "0.7 to 0.8" in scores


def test_list_pages_make_as_many_queries_for_many_rows_as_for_one(client_of):
    version = champion()
    campaign = price_offer()
    client = client_of("Administrators")
    pages = ["/admin/behavior/customer/", "/admin/behavior/event/", "/admin/behavior/score/",
             "/admin/behavior/modelversion/", "/admin/behavior/scoringrun/", "/admin/behavior/contact/",
             "/admin/behavior/apikey/", "/admin/behavior/product/", "/admin/campaigns/campaign/",
             "/admin/campaigns/assignment/", "/admin/campaigns/coupon/"]

    def queries():
        counts = {}
        for url in pages:
            with CaptureQueriesContext(connection) as captured:
                assert client.get(url).status_code == 200
            counts[url] = len(captured)
        return counts

    one_of_everything(version, campaign)
    one = queries()
    for _ in range(5):
        one_of_everything(version, campaign)
    assert queries() == one


def test_charts_escape_their_labels():
    svg = bar_chart([Bar("<script>alert(1)</script>", 0.2, 0.1, 0.3)], title="a & b")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a &amp; b" in svg
    assert "<script>" not in line_chart({"<b>": [(0, 0), (1, 1)]}, title="<i>")


def test_intervals_are_drawn_with_their_bounds_and_an_axis():
    svg = bar_chart([Bar("uplift", 0.02, -0.01, 0.05)], title="Uplift", value_format="{:+.1%}".format)
    assert "+2.0% [-1.0%, +5.0%]" in svg  # the value, then its interval
    assert all(f'text-anchor="middle">{tick}</text>' in svg for tick in ("-1.0%", "+0.0%", "+5.0%"))  # the axis


def test_spend_over_time_has_one_point_a_day_up_to_today(client_of):
    version = champion()
    campaign = price_offer(status="active")
    for _ in range(2):
        one_of_everything(version, campaign)
    today = timezone.now()
    first, second = Coupon.objects.order_by("pk")
    Coupon.objects.filter(pk=first.pk).update(redeemed_at=today - timedelta(days=3))
    Coupon.objects.filter(pk=second.pk).update(redeemed_at=today)

    page = client_of("Campaign managers").get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()

    spend = page[page.index("Discount spent over time"):]
    days = re.findall(r"<title>discount spent: (\d{4}-\d\d-\d\d), ([\d,]+)</title>", spend)
    # From none the day before the first redemption; cumulative: 2.00 three days ago, 2.00 today.
    assert [day for day, _ in days] == [(today - timedelta(days=n)).date().isoformat() for n in (4, 3, 2, 1, 0)]
    assert [total for _, total in days] == ["0", "2", "2", "2", "4"]
