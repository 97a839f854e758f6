"""The admin's home page is a dashboard. A campaign manager and a support lead read it in a real browser (Debian's
Chromium), in the light theme and the dark one; what it says is checked against counts made here with plain ORM
queries on hand-made rows, and its charts' labels against the page's background and each other.
"""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from behavior.charts import Bar, bar_chart, line_chart
from behavior.models import Event, ModelVersion, ScoringRun, Target
from campaigns.models import Assignment, Campaign, Coupon
from support.models import Ticket
from tests.admin.conftest import PASSWORD, price_offer
from tests.conftest import screenshot
from tests.factories import CustomerFactory, EventFactory, ModelVersionFactory

LIVE = pytest.mark.django_db(transaction=True)  # the live server's thread must see the test's rows

WCAG_TEXT = 4.5  # the contrast WCAG 2 asks of body text (level AA)

# Each chart text's contrast with the page's background (WCAG 2's relative luminance), and what overlaps or
# leaves its chart: measured by the browser with the font it draws.
MEASURE = """selector => {
  const luminance = colour => {
    const [r, g, b] = colour.match(/[\\d.]+/g).slice(0, 3).map(v => {
      v = Number(v) / 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (a, b) => (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  const background = luminance(getComputedStyle(document.body).backgroundColor);
  const contrast = [], problems = [];
  for (const svg of document.querySelectorAll(selector)) {
    const width = svg.viewBox.baseVal.width, height = svg.viewBox.baseVal.height;
    const boxes = [...svg.querySelectorAll(':scope > text')].map(t => [t.textContent, t.getBBox(), t]);
    for (const [text, b, t] of boxes) {
      contrast.push([text, ratio(luminance(getComputedStyle(t).fill), background)]);
      if (b.x < 0 || b.y < 0 || b.x + b.width > width || b.y + b.height > height)
        problems.push(`${text} leaves the chart`);
    }
    boxes.forEach(([text, b], i) => boxes.slice(i + 1).forEach(([other, c]) => {
      if (b.x < c.x + c.width && c.x < b.x + b.width && b.y < c.y + c.height && c.y < b.y + b.height)
        problems.push(`${text} overlaps ${other}`);
    }));
  }
  return {contrast, problems};
}"""


@pytest.fixture
def login(browser, live_server, member):
    """login("Campaign managers", "dark") -> a page of the admin's home, logged in as a member of that group."""

    def open_as(group: str, color_scheme: str = "light"):
        user = member(group)
        context = browser.new_context(viewport={"width": 1366, "height": 900}, color_scheme=color_scheme)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(live_server.url + "/admin/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_selector("#foresight-dashboard")
        return page

    return open_as


@pytest.fixture
def shop():
    """Two serving scorers (one with an outcome), three scoring runs, an active price offer with treatment and
    control groups, purchases and redeemed coupons, campaigns that are not active, and a ticket queue."""
    now = timezone.now()
    ModelVersionFactory(target="purchase_intent", kind="browsing", status="champion", promoted_at=now, metrics={
        "roc_auc": 0.812, "roc_auc_interval": [0.790, 0.830],
        "delivered": {"roc_auc": 0.774, "roc_auc_interval": [0.751, 0.797], "n": 1200, "as_of": "2026-11-01T12:00"}})
    ModelVersionFactory(target="support_risk", kind="order_timing", status="champion", promoted_at=now,
                        metrics={"roc_auc": 0.701, "roc_auc_interval": [0.664, 0.738]})
    for hours, customers, seconds in ((3, 1180, 51.0), (2, 1200, 47.25), (1, 1234, 42.5)):
        run = ScoringRun.objects.create(as_of=now - timedelta(hours=hours), status="succeeded", customers=customers,
                                        chunks=2)
        ScoringRun.objects.filter(pk=run.pk).update(started_at=run.as_of,
                                                    finished_at=run.as_of + timedelta(seconds=seconds))

    offer = price_offer(status="active", budget=Decimal("100.00"))
    price_offer(name="Next season's offer")  # a draft
    price_offer(name="Last season's offer", status="ended")
    # 60 and 50: enough in each group for the results to say what the campaign added (MIN_GROUP_CUSTOMERS).
    treated, control = CustomerFactory.create_batch(60), CustomerFactory.create_batch(50)
    assigned = now - timedelta(days=2)
    for group, customers in (("treatment", treated), ("control", control)):
        for customer in customers:
            Assignment.objects.create(campaign=offer, customer=customer, period=1, group=group, assigned_at=assigned,
                                      expires_at=assigned + timedelta(days=7))
    # Within the attribution window: 24 treated buyers (3 with their coupon) and 5 held-out ones.
    for customer in [*treated[:24], *control[:5]]:
        EventFactory(customer=customer, type="purchase", price="20.00", order_id=f"o-{customer.pk}",
                     occurred_at=now - timedelta(days=1))
    for i, assignment in enumerate(Assignment.objects.filter(campaign=offer, group="treatment").order_by("pk")):
        Coupon.objects.create(assignment=assignment, customer=assignment.customer, code=Coupon.generate_code(),
                              expires_at=assignment.expires_at, order_id=f"o-{assignment.customer_id}" if i < 3 else "",
                              redeemed_at=now - timedelta(days=1) if i < 3 else None,
                              discount_amount=Decimal("5.00") if i < 3 else None)

    waiting = CustomerFactory()
    queue = [("open", -3, 3), ("open", 5, 2), ("open", 72, 1), ("pending", -3, 1), ("pending", 72, 2),
             ("solved", -3, 4), ("closed", -30, 5)]  # status, due in hours (negative: past), how many
    for status, due_in, count in queue:
        for _ in range(count):
            Ticket.objects.create(customer=waiting, origin="agent", status=status, group="support",
                                  subject="Late order", opened_at=now - timedelta(days=2),
                                  due_at=now + timedelta(hours=due_in))
    return offer


def _rows(page, section: str) -> list[str]:
    return page.locator(f"#dashboard-{section} table tbody tr").all_inner_texts()


def _cells(page, section: str) -> list[list[str]]:
    rows = page.locator(f"#dashboard-{section} table tbody tr")
    return [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())]


def _charts_read_well(page, name: str, charts: str = "#foresight-dashboard svg") -> None:
    measured = page.evaluate(MEASURE, charts)
    assert measured["contrast"], "no chart on the dashboard"
    faint = [(text, round(ratio, 2)) for text, ratio in measured["contrast"] if ratio < WCAG_TEXT]
    assert not faint, f"{name}: chart labels below {WCAG_TEXT}:1 against the page: {faint}"
    assert not measured["problems"], f"{name}: {measured['problems']}"


@LIVE
def test_a_campaign_manager_reads_campaigns_scores_and_runs_on_the_home_page(login, shop):
    offer = shop
    for scheme in ("light", "dark"):
        page = login("Campaign managers", scheme)
        screenshot(page, f"dashboard-campaign-manager-{scheme}")
        _charts_read_well(page, scheme)
        if scheme == "dark":
            # The campaign's own page, from its link: its results and a day of redemptions, in the dark theme.
            page.click(f"#dashboard-campaigns a:text-is('{offer.name}')")
            page.wait_for_selector(".field-results svg")
            assert page.locator(".field-results svg").count() == 3  # conversion, uplift, discount spent
            screenshot(page, "dashboard-campaign-manager-dark-campaign")
            _charts_read_well(page, "the campaign's page", ".field-results svg")
            break
        assert page.locator("#dashboard-support").count() == 0  # the support queue is the support team's
        assert page.locator("#foresight-dashboard ~ #foresight-app-list .app-campaigns").count() == 1  # below

        rows = _rows(page, "campaigns")
        assert len(rows) == Campaign.objects.filter(status="active").count() == 1
        treated_ids = Assignment.objects.filter(campaign=offer, group="treatment").values("customer_id")
        control_ids = Assignment.objects.filter(campaign=offer, group="control").values("customer_id")
        treated, control = treated_ids.count(), control_ids.count()
        assert f"{treated:,} treated, {control:,} in the control group" in rows[0]
        # Every purchase was made within the attribution window, so buyers are converted customers.
        bought = Event.objects.filter(type="purchase", customer_id__in=treated_ids).values("customer_id").distinct()
        bought_control = Event.objects.filter(type="purchase", customer_id__in=control_ids).values("customer_id")
        extra = (bought.count() / treated - bought_control.distinct().count() / control) * treated
        assert f"{extra:+,.1f} extra conversions [" in rows[0]
        spent = Coupon.objects.filter(assignment__campaign=offer, redeemed_at__isnull=False).aggregate(
            s=Sum("discount_amount"))["s"]
        assert f"{spent:,.2f} EUR of 100.00 EUR" in rows[0]
        assert page.locator("#dashboard-campaigns svg").count() == 2  # extra conversions, budget spent

        scorers = _rows(page, "scorers")
        assert len(scorers) == Target.objects.count()
        champions = ModelVersion.objects.filter(status="champion").values("target")
        unscored = Target.objects.exclude(name__in=champions).count()
        assert sum("nothing: not scored" in row for row in scorers) == unscored
        intent = next(row for row in scorers if row.startswith("purchase intent"))
        assert "0.812 [0.790, 0.830]" in intent and "0.774 [0.751, 0.797] on 1,200 customers" in intent
        assert page.locator("#dashboard-scorers a").count() == 0  # model versions are the administrators'

        runs = page.locator("#dashboard-scoring").inner_text()
        latest = ScoringRun.objects.order_by("-started_at").first()
        assert f"{latest.customers:,} customers scored" in runs and "in 42.5 s" in runs
        assert page.locator("#dashboard-scoring svg rect").count() == ScoringRun.objects.count()


@LIVE
def test_a_support_lead_reads_the_queue_by_status_and_sla_on_the_home_page(login, shop):
    for scheme in ("light", "dark"):
        page = login("Support leads", scheme)
        screenshot(page, f"dashboard-support-lead-{scheme}")
        _charts_read_well(page, scheme)
    assert page.locator("#dashboard-campaigns").count() == 0
    assert page.locator("#dashboard-scorers").count() == 1

    now = timezone.now()
    rows = {cells[0]: cells[1:] for cells in _cells(page, "support")}
    for status, label in Ticket.Status.choices:
        tickets = Ticket.objects.filter(status=status)
        if status in Ticket.UNRESOLVED:
            late = tickets.filter(due_at__lt=now).count()
            soon = tickets.filter(due_at__gte=now, due_at__lt=now + timedelta(hours=24)).count()
            expected = [tickets.count(), late, soon, tickets.count() - late - soon]
        else:
            expected = [tickets.count(), "-", "-", "-"]
        assert rows[label] == [f"{n:,}" if isinstance(n, int) else n for n in expected], label

    page.click("#dashboard-support tbody tr:first-child td:nth-child(3) a")  # open and overdue
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == Ticket.objects.filter(status="open", due_at__lt=now).count()


def test_each_group_sees_the_sections_its_rights_allow(client_of, member, client):
    """Sections follow the permissions each group is granted (behavior.groups): one the user lacks is not drawn."""
    def sections(page: str) -> list[str]:
        return [name for name in ("campaigns", "support", "scorers", "scoring") if f'id="dashboard-{name}"' in page]

    assert sections(client_of("Administrators").get("/admin/").content.decode()) == [
        "campaigns", "support", "scorers", "scoring"]
    assert sections(client_of("Campaign managers").get("/admin/").content.decode()) == [
        "campaigns", "scorers", "scoring"]
    assert sections(client_of("Support agents").get("/admin/").content.decode()) == ["support", "scorers", "scoring"]
    nobody = member("Support agents")
    nobody.groups.clear()
    client.force_login(nobody)
    page = client.get("/admin/").content.decode()
    assert sections(page) == [] and 'id="foresight-dashboard"' in page  # fails closed: nothing granted, nothing shown


# The admin's text and background colours (django/contrib/admin/static/admin/css/base.css and dark_mode.css).
THEMES = {"light": ("#333", "#fff"), "dark": ("#eeeeee", "#121212")}


def test_charts_keep_their_labels_apart_inside_and_readable_in_both_themes(browser):
    day = date(2026, 12, 7).toordinal()
    on = lambda v: date.fromordinal(round(v)).isoformat()  # noqa: E731
    charts = [
        # The uplift of a small campaign: its interval's lower end lies just left of zero.
        bar_chart([Bar("uplift (95% interval)", 0.004, -0.018, 0.026)], title="Uplift: treatment minus control",
                  value_format="{:+.1%}".format),
        bar_chart([Bar("treatment (1,234 of 5,678)", 0.217, 0.2, 0.234), Bar("control (12 of 631)", 0.019, 0.008,
                                                                            0.03)],
                  title="Converted within the attribution window", value_format="{:.1%}".format),
        bar_chart([Bar("the spring sale's campaign for customers who left a cart behind", -12345.67, -20000.5, 3000)],
                  title="Extra conversions", value_format="{:+,.2f} EUR".format),
        line_chart({"discount spent": [(day - 1, 0.0), (day, 1234.5)]}, title="Discount spent over time "
                   "(cumulative, EUR)", x_format=on, y_format="{:,.0f}".format),
        line_chart({"discount spent": [(day, 12.0)]}, title="One day", x_format=on, y_format="{:,.0f}".format),
        line_chart({"uplift model": [(0, 0), (0.5, 40), (1, 30)], "response model": [(0, 0), (1, 30)],
                    "random": [(0, 0), (1, 30)]}, title="Extra conversions by share targeted (12,345 customers "
                   "it did not learn from)", x_format="{:.0%}".format, y_format="{:+,.0f}".format, diagonal="chance"),
    ]
    page = browser.new_page()
    for scheme, (text, background) in THEMES.items():
        page.set_content(f'<body style="color: {text}; background: {background}">{"".join(charts)}</body>')
        measured = page.evaluate(MEASURE, "svg")
        assert len({label for label, _ in measured["contrast"]} & {"-1.8%", "+0.0%", "+2.6%"}) == 3  # the axis
        assert min(ratio for _, ratio in measured["contrast"]) >= WCAG_TEXT, scheme
        assert not measured["problems"], scheme
        screenshot(page, f"charts-{scheme}")


@pytest.mark.django_db
def test_the_home_page_reads_events_only_of_an_active_campaigns_assigned_customers(client_of, shop):
    """The page is drawn on a request: it reads what runs stored, and events only through a campaign's
    assignments (its results), never the whole shop's; more customers and events add no query."""
    client = client_of("Administrators")

    def read() -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/admin/").status_code == 200
        return [q["sql"] for q in queries.captured_queries]

    first = read()
    events = [sql for sql in first if '"behavior_event"' in sql]
    assert events and all('"campaigns_assignment"' in sql for sql in events)
    for customer in CustomerFactory.create_batch(30):
        EventFactory(customer=customer, type="purchase", price="20.00", order_id=f"o-{customer.pk}")
    assert len(read()) == len(first)
