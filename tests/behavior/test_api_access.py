"""API keys, throttling and the offline docs (each route's scope: tests/reliability/test_security.py)."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.management import call_command

from behavior.models import ApiKey
from behavior.services.api_keys import api_key_create
from tests.conftest import Api, free_port
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
    raw, secret_line = capsys.readouterr().out.strip().splitlines()

    key = ApiKey.objects.get(name="storefront")
    assert raw.startswith("fs_") and len(raw) > 40
    assert raw not in (key.key_hash, key.prefix) and key.key_hash == ApiKey.hash(raw)
    assert key.scopes == ["ingest"]
    assert secret_line == f"token secret: {key.token_secret}" and key.token_secret.startswith("fst_")


def _rates(settings, **rates):
    settings.FORESIGHT_API_RATES = rates  # the scopes not named keep their defaults
    settings.FORESIGHT_API_TRUSTED_PROXIES = 1


def test_requests_beyond_the_rate_are_throttled_per_key(make_api, settings):
    # Per day, so that the test never straddles the turn of a window.
    _rates(settings, api_key="3/day")
    first, second = make_api("read"), make_api("read")

    answers = [first.get("customers/x") for _ in range(4)]

    assert [a.status_code for a in answers] == [404, 404, 404, 429]
    assert 0 < int(answers[-1].headers["Retry-After"]) <= 86_400
    assert second.get("customers/x").status_code == 404


def test_calls_at_the_same_moment_are_all_counted(live_server, settings):
    _rates(settings, api_key="10/day")
    raw = api_key_create(name="storefront", scopes=["read"])[1]

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: Api(live_server.url, raw).get("customers/x").status_code, range(40)))

    assert sorted(codes) == [404] * 10 + [429] * 30  # a list of timestamps rewritten per call lets more through


def test_a_public_key_is_throttled_per_client_address_not_as_a_whole(storefront, settings):
    _rates(settings, address="3/day", api_key="1/day")  # the key-wide rate is for server keys only

    def send(address):
        return storefront.post("events", json=[event_payload()], headers={"X-Forwarded-For": address}).status_code

    assert [send("203.0.113.7") for _ in range(4)] == [200, 200, 200, 429]
    assert [send("198.51.100.2") for _ in range(3)] == [200, 200, 200]  # other shoppers are not starved


def test_a_public_key_is_throttled_per_customer_from_any_address(storefront, settings):
    _rates(settings, customer="2/day")
    storefront.post("events", json=[event_payload(customer="bob"), event_payload(customer="alice")])

    def help_for(customer, address):
        return storefront.get(f"customers/{customer}/help", headers={"X-Forwarded-For": address}).status_code

    assert [help_for("bob", f"203.0.113.{n}") for n in range(3)] == [200, 200, 429]
    assert help_for("alice", "203.0.113.1") == 200


def test_calls_without_the_customers_token_do_not_spend_their_rate(storefront, settings):
    _rates(settings, customer="2/day")
    storefront.post("events", json=[event_payload(customer="bob")])
    stranger = Api(storefront.base_url.removesuffix("/api/v1/"), storefront.headers["Authorization"].split()[1])

    for method in ("OPTIONS", "DELETE", "PUT", "GET"):  # methods the view does not offer, then no token at all
        stranger.request(method, "customers/bob/placements?slot=home")

    assert [storefront.get("customers/bob/help").status_code for _ in range(3)] == [200, 200, 429]


def test_with_the_throttle_cache_down_calls_are_answered_and_counted_per_process(storefront, settings, monkeypatch):
    from behavior import cache

    monkeypatch.setattr(cache, "_down_until", 0.0)  # put back after the test: the next ones use Redis again
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}  # nothing listens there
    _rates(settings, address="3/day")

    codes = [storefront.post("events", json=[event_payload()]).status_code for _ in range(4)]

    assert codes == [200, 200, 200, 429]
    assert cache._down_until > 0  # it noticed, and gives the cache a rest


def test_openapi_schema_and_docs_page_are_served_without_internet(make_api, live_server):
    api = make_api()
    schema = api.get("schema", headers={"Accept": "application/vnd.oai.openapi+json"})
    docs = api.get("docs")

    assert schema.status_code == 200
    assert set(schema.json()["paths"]) >= {"/api/v1/events", "/api/v1/identify", "/api/v1/customers/{external_id}"}
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assert "http" not in "".join(line for line in docs.text.splitlines() if "<script src" in line)
