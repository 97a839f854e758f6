"""API keys, throttling and the offline docs (each route's scope: tests/reliability/test_security.py)."""

import pytest
from django.core.management import call_command

from behavior.models import ApiKey
from tests.factories import event_payload

pytestmark = pytest.mark.django_db(transaction=True)

def test_a_wrong_or_revoked_key_is_refused(make_api):
    api = make_api("ingest")
    ApiKey.objects.update(active=False)

    assert api.post("events", json=[event_payload()]).status_code == 401
    api.headers["Authorization"] = "Bearer fs_not-a-real-key"
    assert api.post("events", json=[event_payload()]).json() == {"detail": "Unknown or revoked API key."}


def test_keys_are_stored_hashed_and_the_command_prints_the_key_once(capsys):
    call_command("create_api_key", "storefront", "--scope", "ingest")
    raw = capsys.readouterr().out.strip()

    key = ApiKey.objects.get(name="storefront")
    assert raw.startswith("fs_") and len(raw) > 40
    assert raw not in (key.key_hash, key.prefix) and key.key_hash == ApiKey.hash(raw)
    assert key.scopes == ["ingest"]


def test_requests_beyond_the_rate_are_throttled_per_key(make_api, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "3/min"}}
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    api_settings.reload()
    SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    try:
        first, second = make_api("read"), make_api("read")
        codes = [first.get("customers/x").status_code for _ in range(4)]
        assert codes == [404, 404, 404, 429]
        assert second.get("customers/x").status_code == 404
    finally:
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "6000/min"}}
        api_settings.reload()
        SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES


def test_openapi_schema_and_docs_page_are_served_without_internet(make_api, live_server):
    api = make_api()
    schema = api.get("schema", headers={"Accept": "application/vnd.oai.openapi+json"})
    docs = api.get("docs")

    assert schema.status_code == 200
    assert set(schema.json()["paths"]) >= {"/api/v1/events", "/api/v1/identify", "/api/v1/customers/{external_id}"}
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assert "http" not in "".join(line for line in docs.text.splitlines() if "<script src" in line)
