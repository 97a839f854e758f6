"""The admin as an interface: API keys shown once, models rolled back in one action."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from behavior.api.auth import CUSTOMER_TOKEN_HEADER
from behavior.api.tokens import customer_token
from behavior.models import ApiKey, Customer, Event
from tests.factories import CustomerFactory, EventFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_admin_makes_a_key_and_sees_it_and_its_token_secret_once(admin_client, make_api):
    response = admin_client.post(
        "/admin/behavior/apikey/add/", {"name": "storefront", "scopes": ["ingest"], "active": "on"}, follow=True
    )

    shown = re.search(r"not shown again: (fs_[\w-]+)", response.content.decode()).group(1)
    key = ApiKey.objects.get(name="storefront")
    assert key.scopes == ["ingest"] and key.key_hash == ApiKey.hash(shown)
    assert shown not in admin_client.get(f"/admin/behavior/apikey/{key.pk}/change/").content.decode()
    api = make_api()
    api.headers["Authorization"] = f"Bearer {shown}"
    assert api.post("identify", json={"anonymous_id": "v1", "customer": "c1"}).status_code == 200

    secret = re.search(r"not shown again either\): (fst_[\w-]+)", response.content.decode()).group(1)
    assert secret == key.token_secret
    assert secret not in admin_client.get(f"/admin/behavior/apikey/{key.pk}/change/").content.decode()
    help_for_c1 = {CUSTOMER_TOKEN_HEADER: customer_token(secret=secret, customer_id="c1")}
    assert api.get("customers/c1/help", headers=help_for_c1).status_code == 200

    rotated = admin_client.post("/admin/behavior/apikey/", {"action": "token_secret_rotate",
                                                            "_selected_action": [key.pk]}, follow=True)
    new_secret = re.search(r"not shown again: (fst_[\w-]+)", rotated.content.decode()).group(1)
    assert api.get("customers/c1/help", headers=help_for_c1).status_code == 403  # the old secret's tokens end
    assert api.get("customers/c1/help", headers={
        CUSTOMER_TOKEN_HEADER: customer_token(secret=new_secret, customer_id="c1")}).status_code == 200


def test_rolling_back_a_model_is_one_admin_action(admin_client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    first = ModelVersionFactory(target="purchase_intent", status="retired",
                                        promoted_at=timezone.now() - timedelta(days=7))
    second = ModelVersionFactory(target="purchase_intent", status="champion",
                                         promoted_at=timezone.now())

    response = admin_client.post("/admin/behavior/modelversion/",
                                 {"action": "roll_back", "_selected_action": [second.pk]}, follow=True)

    first.refresh_from_db(), second.refresh_from_db()
    assert (first.status, second.status) == ("champion", "retired")
    assert f"version {first.pk} is champion again" in response.content.decode()
    again = admin_client.post("/admin/behavior/modelversion/",
                              {"action": "roll_back", "_selected_action": [first.pk]}, follow=True)
    assert "no earlier purchase_intent champion" in again.content.decode()


def test_the_admin_erases_customers_the_api_cannot_address_with_their_events(admin_client):
    alice, bob = CustomerFactory(external_id="a/b"), CustomerFactory()  # a slash: the API could never erase it
    EventFactory(customer=alice)
    EventFactory(customer=bob)

    response = admin_client.post("/admin/behavior/customer/", {
        "action": "delete_selected", "_selected_action": [alice.pk, bob.pk], "post": "yes"}, follow=True)

    assert response.status_code == 200
    assert not Customer.objects.exists() and not Event.objects.exists()
