"""API keys made in the admin: shown once, stored hashed, usable at once."""

import re

import pytest

from behavior.models import ApiKey

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_admin_makes_a_key_and_sees_it_once(admin_client, make_api):
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
