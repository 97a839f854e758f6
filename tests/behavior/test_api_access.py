"""API keys, throttling and the offline docs (each route's scope: tests/reliability/test_security.py)."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.management import call_command

from behavior.models import ApiKey
from behavior.services.api_keys import api_key_create
from tests.conftest import Api
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
    # Per day, so that the test never straddles the turn of a window.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "3/day"}}
    first, second = make_api("read"), make_api("read")

    answers = [first.get("customers/x") for _ in range(4)]

    assert [a.status_code for a in answers] == [404, 404, 404, 429]
    assert 0 < int(answers[-1].headers["Retry-After"]) <= 86_400
    assert second.get("customers/x").status_code == 404


def test_calls_at_the_same_moment_are_all_counted(live_server, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "10/day"}}
    raw = api_key_create(name="storefront", scopes=["read"])[1]

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: Api(live_server.url, raw).get("customers/x").status_code, range(40)))

    assert sorted(codes) == [404] * 10 + [429] * 30  # a list of timestamps rewritten per call lets more through


def test_openapi_schema_and_docs_page_are_served_without_internet(make_api, live_server):
    api = make_api()
    schema = api.get("schema", headers={"Accept": "application/vnd.oai.openapi+json"})
    docs = api.get("docs")

    assert schema.status_code == 200
    assert set(schema.json()["paths"]) >= {"/api/v1/events", "/api/v1/identify", "/api/v1/customers/{external_id}"}
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assert "http" not in "".join(line for line in docs.text.splitlines() if "<script src" in line)
