"""Each group reaches its own pages and gets 403 on the others'."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command

from behavior.groups import groups

pytestmark = pytest.mark.django_db

CAMPAIGNS = ["/admin/campaigns/campaign/", "/admin/campaigns/assignment/", "/admin/campaigns/coupon/",
             "/admin/campaigns/message/", "/admin/campaigns/messagingsettings/"]
CUSTOMERS = ["/admin/behavior/customer/", "/admin/behavior/score/", "/admin/behavior/event/"]
OPERATIONS = ["/admin/behavior/apikey/", "/admin/behavior/modelversion/", "/admin/behavior/scoringrun/",
              "/admin/behavior/contactpolicy/", "/admin/django_celery_beat/periodictask/", "/admin/auth/user/"]
TICKETS = ["/admin/support/ticket/"]
SUPPORT_RULES = ["/admin/support/supportrule/", "/admin/support/helpdesksettings/", "/admin/support/outboxmessage/"]
# Pages no group but the administrators reaches, besides OPERATIONS.
OTHERS = ["/admin/auth/group/", "/admin/axes/accessattempt/", "/admin/axes/accessfailurelog/", "/admin/axes/accesslog/",
          "/admin/behavior/contact/", "/admin/django_celery_beat/clockedschedule/",
          "/admin/django_celery_beat/crontabschedule/", "/admin/django_celery_beat/intervalschedule/",
          "/admin/django_celery_beat/solarschedule/"]
SHARED = ["/admin/behavior/product/", "/admin/behavior/target/"]  # read with the customers
PAGES = CAMPAIGNS + CUSTOMERS + SHARED + OPERATIONS + OTHERS + TICKETS + SUPPORT_RULES


def _answer(client, urls: list[str], status: int) -> None:
    """Every page answers `status`; a missing page answers 404 and fails the test, it is not skipped."""
    assert {url: client.get(url).status_code for url in urls} == dict.fromkeys(urls, status)


def test_a_campaign_manager_runs_campaigns_and_only_reads_customers(client_of):
    client = client_of("Campaign managers")
    _answer(client, CAMPAIGNS + CUSTOMERS + SHARED, 200)
    _answer(client, OPERATIONS + OTHERS + TICKETS + SUPPORT_RULES, 403)
    assert client.get("/admin/campaigns/campaign/add/").status_code == 200
    assert client.get("/admin/behavior/customer/add/").status_code == 403  # read-only
    assert client.get("/admin/behavior/contactpolicy/add/").status_code == 403


def test_a_support_agent_works_tickets_and_sees_no_campaigns(client_of):
    client = client_of("Support agents")
    _answer(client, CUSTOMERS + SHARED + TICKETS, 200)
    _answer(client, CAMPAIGNS + OPERATIONS + OTHERS + SUPPORT_RULES, 403)


def test_a_support_lead_also_edits_rules(client_of):
    client = client_of("Support leads")
    _answer(client, CUSTOMERS + SHARED + TICKETS + SUPPORT_RULES, 200)
    _answer(client, CAMPAIGNS + OPERATIONS + OTHERS, 403)


def test_an_administrator_reaches_everything_including_schedules_and_api_keys(client_of):
    client = client_of("Administrators")
    _answer(client, PAGES, 200)


def test_every_admin_page_is_in_this_test():
    """A page this test does not list is a page whose access nobody checks: a new one must be added above."""
    registered = {f"/admin/{model._meta.app_label}/{model._meta.model_name}/" for model in admin.site._registry}
    assert sorted(registered) == sorted(PAGES)


def test_groups_hold_every_permission_they_name():
    for name, grants in groups().items():
        held = {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name=name).permissions.all()}
        for label, actions in (grants or {}).items():
            app_label, model = label.split(".")
            assert apps.is_installed(app_label), f"{name} names {label}, of an app that is not installed"
            assert model in apps.get_app_config(app_label).models, f"{name} names {label}, a model that does not exist"
            assert {f"{app_label}.{a}_{model}" for a in actions} <= held, (name, label)


def test_demo_users_get_one_login_per_group(monkeypatch, client, capsys):
    monkeypatch.delenv("FORESIGHT_DEMO_PASSWORD", raising=False)
    with pytest.raises(CommandError, match="FORESIGHT_DEMO_PASSWORD"):  # PostgreSQL is no local demo
        call_command("create_demo_users")
    monkeypatch.setenv("FORESIGHT_DEMO_PASSWORD", "demo-secret")
    call_command("create_demo_users")

    assert "Campaign managers   login campaigns  password demo-secret" in capsys.readouterr().out
    # Through the login form, as a person signs in (django-axes counts logins per request).
    assert client.post("/admin/login/", {"username": "campaigns", "password": "demo-secret"}).status_code == 302
    assert client.get("/admin/campaigns/campaign/").status_code == 200
    assert client.get("/admin/behavior/apikey/").status_code == 403
