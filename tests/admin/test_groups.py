"""Each group reaches its own pages and gets 403 on the others'."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command

from behavior.groups import GROUPS

pytestmark = pytest.mark.django_db

CAMPAIGNS = ["/admin/campaigns/campaign/", "/admin/campaigns/assignment/", "/admin/campaigns/coupon/"]
CUSTOMERS = ["/admin/behavior/customer/", "/admin/behavior/score/", "/admin/behavior/event/"]
OPERATIONS = ["/admin/behavior/apikey/", "/admin/behavior/modelversion/", "/admin/behavior/scoringrun/",
              "/admin/behavior/contactpolicy/", "/admin/django_celery_beat/periodictask/", "/admin/auth/user/"]


def _support(*models: str) -> list[str]:
    """The support pages that exist yet: support/ is built beside this work and registers its own admin."""
    urls = []
    for name in models:
        try:
            model = apps.get_model("support", name)
        except LookupError:
            continue
        if admin.site.is_registered(model):
            urls.append(f"/admin/support/{model._meta.model_name}/")
    return urls


def _statuses(client, urls):
    return {url: client.get(url).status_code for url in urls}


def test_a_campaign_manager_runs_campaigns_and_only_reads_customers(client_of):
    client = client_of("Campaign managers")
    assert set(_statuses(client, CAMPAIGNS + CUSTOMERS).values()) == {200}
    assert set(_statuses(client, OPERATIONS + _support("Ticket", "SupportRule")).values()) == {403}
    assert client.get("/admin/campaigns/campaign/add/").status_code == 200
    assert client.get("/admin/behavior/customer/add/").status_code == 403  # read-only
    assert client.get("/admin/behavior/contactpolicy/add/").status_code == 403


def test_a_support_agent_works_tickets_and_sees_no_campaigns(client_of):
    client = client_of("Support agents")
    assert set(_statuses(client, CUSTOMERS + _support("Ticket")).values()) == {200}
    assert set(_statuses(client, CAMPAIGNS + OPERATIONS + _support("SupportRule")).values()) == {403}


def test_a_support_lead_also_edits_rules(client_of):
    client = client_of("Support leads")
    assert set(_statuses(client, CUSTOMERS + _support("Ticket", "SupportRule")).values()) == {200}
    assert set(_statuses(client, CAMPAIGNS + OPERATIONS).values()) == {403}


def test_an_administrator_reaches_everything_including_schedules_and_api_keys(client_of):
    client = client_of("Administrators")
    pages = CAMPAIGNS + CUSTOMERS + OPERATIONS + _support("Ticket", "SupportRule")
    assert set(_statuses(client, pages).values()) == {200}


def test_groups_hold_every_permission_they_name_for_the_models_that_exist():
    for name, grants in GROUPS.items():
        held = {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name=name).permissions.all()}
        for label, actions in (grants or {}).items():
            app_label, model = label.split(".")
            if apps.is_installed(app_label) and model in apps.get_app_config(app_label).models:
                assert {f"{app_label}.{a}_{model}" for a in actions} <= held, (name, label)


def test_demo_users_get_one_login_per_group(monkeypatch, client, capsys):
    monkeypatch.delenv("FORESIGHT_DEMO_PASSWORD", raising=False)
    with pytest.raises(CommandError, match="FORESIGHT_DEMO_PASSWORD"):  # PostgreSQL is no local demo
        call_command("create_demo_users")
    monkeypatch.setenv("FORESIGHT_DEMO_PASSWORD", "demo-secret")
    call_command("create_demo_users")

    assert "Campaign managers   login campaigns  password demo-secret" in capsys.readouterr().out
    assert client.login(username="campaigns", password="demo-secret")
    assert client.get("/admin/campaigns/campaign/").status_code == 200
    assert client.get("/admin/behavior/apikey/").status_code == 403
