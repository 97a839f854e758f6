"""A campaign manager and a support lead write audiences with the condition builder in a real browser.

What the builder says (the rule in words, how many customers match) is checked against sentences written here by
hand and counts made with plain ORM queries; what it stores against the same condition typed as JSON.
Screenshots, light and dark, go to tests/screenshots/condition-*.png.
"""

import json
from datetime import UTC, datetime

import numpy as np
import pytest
import redis
from django.core.cache.backends.redis import RedisCache
from django.db.models import Q
from playwright.sync_api import expect

from behavior import cache as shared_cache
from behavior import selectors
from behavior.condition_builder import known_values
from behavior.conditions import FIELDS
from behavior.models import Customer, Event, Score
from behavior.services.scoring import scoring_cycle_run
from campaigns.models import Campaign
from campaigns.services import campaign_create
from foresight_demo.services import shop_simulate
from support.models import SupportRule
from tests.admin.conftest import PASSWORD
from tests.conftest import screenshot
from tests.factories import CustomerFactory, EventFactory, ModelVersionFactory, ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)  # the live server's thread must see the test's rows

END = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture
def login(browser, live_server, member):
    """login("Campaign managers", "dark") -> a page logged in to the admin as a member of that group."""

    def open_as(group: str, scheme: str = "light", javascript: bool = True):
        user = member(group)
        context = browser.new_context(viewport={"width": 1366, "height": 900}, color_scheme=scheme,
                                      java_script_enabled=javascript)
        page = context.new_page()
        page.js_errors = []  # says() checks that the builder's script never failed
        page.on("pageerror", lambda error: page.js_errors.append(str(error)))
        page.set_default_timeout(15_000)
        page.goto(live_server.url + "/admin/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_selector("#site-name", state="attached")
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


def quantile(target: str, q: float) -> float:
    scores = Score.objects.filter(target=target).values_list("probability", flat=True)
    return round(float(np.quantile(list(scores), q)), 2)


def matching(threshold: float, countries: list[str]):
    """The customers the test's condition matches, by plain ORM: intent at least `threshold`, from one of
    `countries` or with an order (a purchase event), and not on a tablet."""
    buyers = Event.objects.filter(type="purchase").values("customer_id")
    return (Customer.objects.filter(scores__target="purchase_intent", scores__probability__gte=threshold)
            .filter(Q(attributes__country__in=countries) | Q(pk__in=buyers))
            .exclude(attributes__device="tablet"))


def counted(threshold: float, countries: list[str]) -> str:
    customers = matching(threshold, countries)
    return (f"{customers.count():,} customers match now, {customers.filter(marketing_consent=True).count():,} of "
            "them with marketing consent (only they are reached)")


def rule(page, path: str):
    return page.locator(f".cb-rule[data-path='{path}']")


def says(page, words: str, count: str) -> None:
    """The builder's rule in words and its count, once the count after the last edit has come back."""
    expect(page.locator(".condition-words")).to_have_text(words, timeout=15_000)
    expect(page.locator(".condition-count")).to_have_text(count, timeout=15_000)
    assert page.js_errors == []


def new_price_offer(page, live_server, name: str) -> None:
    page.goto(live_server.url + "/admin/campaigns/campaign/add/")
    page.fill("#id_name", name)
    page.select_option("#id_kind", "price_offer")
    page.fill("#id_priceoffersettings-0-discount_value", "10")


def test_a_campaign_manager_builds_a_condition_that_stores_what_the_same_condition_typed_in_json_stores(
        login, live_server, scored_shop):
    threshold = quantile("purchase_intent", 0.5)
    page = login("Campaign managers")
    new_price_offer(page, live_server, "Ten percent, built")
    assert page.locator(".field-condition textarea").is_hidden()  # the builder is the default view
    assert page.locator(".condition-count").inner_text() == "No condition yet."

    # Intent at least the median, by keyboard: the add button, then the new rule's field, operator and value.
    page.focus(".cb-group[data-path=''] > .cb-add button:text-is('Add a rule')")
    page.keyboard.press("Enter")
    first = rule(page, "all[0]")
    assert page.evaluate("document.activeElement.classList.contains('cb-field')")  # focus moved to the new rule
    assert first.locator(".cb-field").input_value() == "score.purchase_intent"
    assert "the chance of purchase within 7 days, from 0 to 1" in first.locator(".cb-hint").inner_text()
    assert first.locator(".cb-op").input_value() == "gte"
    page.keyboard.press("Tab")  # the operator
    page.keyboard.press("Tab")  # the value
    page.keyboard.type(str(threshold))

    # A group: from one of two countries (ticked from the countries customers have) or with an order.
    page.click(".cb-group[data-path=''] > .cb-add button:text-is('Add a group')")
    assert page.locator(".cb-group[data-path='all[1]'] .cb-kind").input_value() == "any"
    country = rule(page, "all[1].any[0]")
    country.locator(".cb-find").fill("country")
    country.locator(".cb-find").press("Enter")  # the first match: the customer's country, not its code
    assert country.locator(".cb-field").input_value() == "customer.country"
    assert country.locator(".cb-op option").all_inner_texts() == ["=", "≠", "is one of", "is none of", "is unknown"]
    country.locator(".cb-op").select_option("in")
    assert country.locator(".cb-ticks label").all_inner_texts() == ["AT", "BE", "DE", "ES", "FR", "IT", "NL", "PL",
                                                                     "SE"]
    country.get_by_label("DE", exact=True).check()
    country.get_by_label("AT", exact=True).check()
    page.click(".cb-group[data-path='all[1]'] > .cb-add button:text-is('Add a rule')")
    bought = rule(page, "all[1].any[1]")
    bought.locator(".cb-field").select_option("feature.orders")
    bought.locator(".cb-value").fill("1")

    # Not on a tablet.
    page.click(".cb-group[data-path=''] > .cb-add button:text-is('Add a rule')")
    device = rule(page, "all[2]")
    device.locator(".cb-field").select_option("customer.device")
    device.locator(".cb-value").fill("tablet")
    page.check("[data-key='all[2]|not']")
    assert rule(page, "all[2].not").count() == 1

    words = (f'purchase intent score ≥ {threshold:g} and (country is one of "DE", "AT" or orders in all ≥ 1) and '
             'not (device = "tablet")')
    says(page, words, counted(threshold, ["DE", "AT"]))
    assert matching(threshold, ["DE", "AT"]).count() > 0
    screenshot(page, "condition-1-built")
    page.click("input[name=_continue]")
    built = Campaign.objects.get(name="Ten percent, built")

    typed = ('{"all": [{"field": "score.purchase_intent", "op": "gte", "value": THRESHOLD}, {"any": [{"field": '
             '"customer.country", "op": "in", "value": ["DE", "AT"]}, {"field": "feature.orders", "op": "gte", '
             '"value": 1}]}, {"not": {"field": "customer.device", "op": "eq", "value": "tablet"}}]}'
             ).replace("THRESHOLD", str(threshold))
    new_price_offer(page, live_server, "Ten percent, typed")
    page.click("button:text-is('Edit as JSON')")
    page.fill("#id_condition", typed)
    expect(rule(page, "all[1].any[0]").locator(".cb-field")).to_have_value("customer.country")  # drawn, hidden
    says(page, words, counted(threshold, ["DE", "AT"]))  # the same words and count as the builder's
    screenshot(page, "condition-5-typed-as-json")
    page.click("input[name=_continue]")
    assert Campaign.objects.get(name="Ten percent, typed").condition == built.condition == json.loads(typed)

    # The saved campaign opens in the builder (the JSON view was chosen last: it stays until switched back).
    page.goto(f"{live_server.url}/admin/campaigns/campaign/{built.pk}/change/")
    page.click("button:text-is('Edit with the builder')")
    assert rule(page, "all[1].any[0]").get_by_label("DE", exact=True).is_checked()
    expect(page.locator(".condition-count")).to_have_text(counted(threshold, ["DE", "AT"]), timeout=15_000)


def test_editing_the_json_redraws_the_builder_and_its_count(login, live_server, scored_shop):
    low, high = quantile("purchase_intent", 0.3), quantile("purchase_intent", 0.7)
    campaign = campaign_create(name="Mid intent", kind="ad",
                               condition={"field": "score.purchase_intent", "op": "between", "value": [low, high]})
    page = login("Campaign managers", "dark")
    page.goto(f"{live_server.url}/admin/campaigns/campaign/{campaign.pk}/change/")
    between = rule(page, "")
    assert [between.locator(".cb-value").nth(i).input_value() for i in (0, 1)] == [f"{low:g}", f"{high:g}"]
    in_range = Customer.objects.filter(scores__target="purchase_intent", scores__probability__gte=low,
                                       scores__probability__lte=high)
    says(page, f"purchase intent score between {low:g} and {high:g}",
         f"{in_range.count():,} customers match now, {in_range.filter(marketing_consent=True).count():,} of them "
         "with marketing consent (only they are reached)")
    screenshot(page, "condition-2-dark")

    # A second rule makes the root a group: customers who match all of them.
    page.click(".condition-builder > .cb-add button:text-is('Add a rule')")
    consent = rule(page, "all[1]")
    expect(consent.locator(".cb-field")).to_be_focused()
    consent.locator(".cb-field").select_option("customer.marketing_consent")
    assert consent.locator(".cb-value").input_value() == "true"
    reached = in_range.filter(marketing_consent=True).count()
    says(page, f"purchase intent score between {low:g} and {high:g} and marketing consent = yes",
         f"{reached:,} customers match now, {reached:,} of them with marketing consent (only they are reached)")
    assert json.loads(page.locator("#id_condition").input_value()) == {"all": [
        {"field": "score.purchase_intent", "op": "between", "value": [low, high]},
        {"field": "customer.marketing_consent", "op": "eq", "value": True}]}

    page.click("button:text-is('Edit as JSON')")
    page.fill("#id_condition", '{"any": [{"field": "customer.country", "op": "in", "value": ["FR", "XX"]}, '
                               '{"field": "customer.marketing_consent", "op": "eq", "value": false}]}')
    page.click("button:text-is('Edit with the builder')")
    country = rule(page, "any[0]")
    assert country.locator(".cb-field").input_value() == "customer.country"
    assert country.get_by_label("FR", exact=True).is_checked()
    assert country.locator(".cb-others").input_value() == "XX"  # a value no customer has yet, kept
    assert rule(page, "any[1]").locator(".cb-value").input_value() == "false"
    chosen = Customer.objects.filter(Q(attributes__country="FR") | Q(marketing_consent=False))
    says(page, 'country is one of "FR", "XX" or marketing consent = no',
         f"{chosen.count():,} customers match now, {chosen.filter(marketing_consent=True).count():,} of them with "
         "marketing consent (only they are reached)")
    screenshot(page, "condition-3-from-json-dark")

    # A broken JSON keeps to the JSON view and says why; a bad value is named at its rule.
    page.click("button:text-is('Edit as JSON')")
    page.fill("#id_condition", '{"any": [')
    page.click("button:text-is('Edit with the builder')")
    assert "The builder cannot show this condition: the JSON does not read" in page.locator(
        ".condition-toggle-note").inner_text()
    page.fill("#id_condition", '{"all": [{"field": "customer.device", "op": "gte", "value": "mobile"}]}')
    page.click("button:text-is('Edit with the builder')")
    expect(page.locator(".condition-words")).to_have_text(
        "Not valid yet: all[0].op: gte does not apply to string field customer.device; use eq, ne, in, not_in, is_null",
        timeout=15_000)
    assert "gte does not apply" in rule(page, "all[0]").locator(".cb-error").inner_text()


def test_a_support_lead_builds_a_rule_with_the_builder(login, live_server, scored_shop):
    risk = quantile("support_risk", 0.8)
    page = login("Support leads")
    page.goto(live_server.url + "/admin/support/supportrule/add/")
    page.fill("#id_name", "Risky and waiting")
    page.fill("#id_subject", "Check in")
    page.click(".cb-add button:text-is('Add a rule')")
    risky = rule(page, "all[0]")
    risky.locator(".cb-field").select_option("score.support_risk")
    risky.locator(".cb-value").fill(str(risk))
    page.click(".cb-group[data-path=''] > .cb-add button:text-is('Add a rule')")
    signed_up = rule(page, "all[1]")
    signed_up.locator(".cb-field").select_option("customer.created_at")
    assert signed_up.locator(".cb-op").input_value() == "within_last"
    signed_up.locator(".cb-value").fill("36500")
    expected = Customer.objects.filter(scores__target="support_risk", scores__probability__gte=risk).count()
    says(page, f"support risk score ≥ {risk:g} and sign-up within the last 36500 days",
         f"{expected:,} customers match now")
    screenshot(page, "condition-4-support-rule")
    page.click("input[name=_save]")
    assert SupportRule.objects.get().condition == {"all": [
        {"field": "score.support_risk", "op": "gte", "value": risk},
        {"field": "customer.created_at", "op": "within_last", "value": 36500}]}


COUNT = {"campaigns": "/admin/campaigns/campaign/condition-count/",
         "support": "/admin/support/supportrule/condition-count/"}


def count(client, page: str, condition) -> dict:
    answer = client.post(COUNT[page], json.dumps({"condition": condition}), content_type="application/json")
    assert answer.status_code == 200, answer.status_code
    return answer.json()


@pytest.mark.parametrize(("group", "allowed"), [("Campaign managers", {"campaigns"}), ("Support leads", {"support"}),
                                                ("Support agents", set())])
def test_the_count_answers_only_those_who_edit_the_rules_it_counts_for(client_of, group, allowed):
    client = client_of(group)
    body = json.dumps({"condition": {"field": "customer.marketing_consent", "op": "eq", "value": True}})
    for page, url in COUNT.items():
        status = client.post(url, body, content_type="application/json").status_code
        assert status == (200 if page in allowed else 403), (page, status)
        assert client.get(url).status_code == (405 if page in allowed else 403)


def test_the_count_says_the_first_bad_node_and_estimates_from_a_sample_on_a_big_shop(client_of, settings, monkeypatch):
    for consent in [True] * 14 + [False] * 9:
        CustomerFactory(marketing_consent=consent, attributes={"country": "FR" if consent else "DE"})
    client = client_of("Campaign managers")
    assert count(client, "campaigns", {"all": [{"field": "customer.country", "op": "gte", "value": "A"}]}) == {
        "error": "all[0].op: gte does not apply to string field customer.country; use eq, ne, in, not_in, is_null",
        "path": "all[0].op"}
    french = count(client, "campaigns", {"field": "customer.country", "op": "eq", "value": "FR"})
    assert (french["matched"], french["with_consent"], french["sample_every"]) == (14, 14, 1)

    # A condition on a feature reads events: on a shop above the sample's size, one customer in k, scaled by k.
    monkeypatch.setattr("behavior.selectors.CONDITION_COUNT_SAMPLE", 10)
    never_bought = {"field": "customer.days_since_last_purchase", "op": "is_null", "value": True}
    answer = count(client, "campaigns", never_bought)
    k = 3  # 23 customers, at most 10 read
    sampled = Customer.objects.values_list("pk", "marketing_consent")
    matched = sum(1 for pk, _ in sampled if pk % k == 0) * k
    with_consent = sum(1 for pk, consent in sampled if pk % k == 0 and consent) * k
    assert (answer["matched"], answer["with_consent"], answer["sample_every"]) == (matched, with_consent, k)
    assert answer["says"] == (f"about {matched:,} customers match now, about {with_consent:,} of them with marketing "
                              "consent (only they are reached); estimated from one customer in 3 (the condition reads "
                              "features built from their events)")
    assert answer["words"] == "days since the last purchase is unknown"


def test_counts_reuse_the_features_built_for_the_last_until_a_customer_comes(client_of, monkeypatch):
    customers = [CustomerFactory() for _ in range(3)]
    EventFactory(customer=customers[0], product=ProductFactory(), type="purchase", price="20.00", order_id="o-1")
    built = []
    features_at = selectors.features_at
    monkeypatch.setattr(selectors, "features_at", lambda *a, **k: built.append(1) or features_at(*a, **k))
    monkeypatch.setattr(selectors, "_count_features_kept", {})
    client = client_of("Campaign managers")
    ordered = {"field": "feature.orders", "op": "gte", "value": 1}
    assert count(client, "campaigns", ordered)["matched"] == 1
    assert count(client, "campaigns", {"not": ordered})["matched"] == 2  # another edit, the same features
    assert len(built) == 1
    EventFactory(customer=CustomerFactory(), product=ProductFactory(), type="purchase", price="9.00", order_id="o-2")
    assert count(client, "campaigns", ordered)["matched"] == 2  # a new customer: built again
    assert len(built) == 2


def test_the_values_offered_are_kept_a_while_and_read_from_the_database_when_the_cache_is_down(monkeypatch):
    for country in ("FR", "DE", "FR", None):
        CustomerFactory(attributes={} if country is None else {"country": country})
    field = FIELDS["customer.country"]
    assert known_values(field) == ["DE", "FR"]
    CustomerFactory(attributes={"country": "AT"})
    assert known_values(field) == ["DE", "FR"]  # kept ten minutes: reading them groups every customer

    def unreachable(*args, **kwargs):
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(shared_cache, "_down_until", 0.0)  # restored after the test: others find the cache up
    monkeypatch.setattr(RedisCache, "get", unreachable)
    assert known_values(field) == ["AT", "DE", "FR"]


def test_without_javascript_the_condition_is_its_json_with_its_words(login, live_server, scored_shop):
    campaign = campaign_create(name="Keen", kind="ad",
                               condition={"field": "score.purchase_intent", "op": "gte", "value": 0.5})
    page = login("Campaign managers", javascript=False)
    page.goto(f"{live_server.url}/admin/campaigns/campaign/{campaign.pk}/change/")
    assert page.locator("#id_condition").is_visible()
    assert json.loads(page.locator("#id_condition").input_value()) == campaign.condition
    assert page.locator(".condition-builder").is_hidden() and page.locator(".condition-toolbar").is_hidden()
    assert page.locator(".condition-words").inner_text() == "purchase intent score ≥ 0.5"
    page.fill("#id_condition", '{"field": "score.purchase_intent", "op": "gte", "value": 0.6}')
    page.click("input[name=_continue]")
    campaign.refresh_from_db()
    assert campaign.condition == {"field": "score.purchase_intent", "op": "gte", "value": 0.6}
