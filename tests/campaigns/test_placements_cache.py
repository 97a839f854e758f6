"""Placements kept in Redis are served only while nothing they hang on has changed, over real HTTP."""

import time
from datetime import timedelta

import pandas as pd
import pytest
from django.core.cache import cache
from django.utils import timezone

from behavior.cache import CacheUnreachable
from behavior.models import ApiKey
from behavior.services.customers import customer_erase, customers_bulk_upsert
from campaigns.models import Assignment, Campaign, Coupon
from campaigns.placements_cache import (
    counted_and_read,
    impressions_flush,
    placements_changed,
    placements_sealed,
    placements_store,
)
from campaigns.services import campaign_set_status, campaigns_evaluate
from tests.campaigns.conftest import offer
from tests.conftest import free_port
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice(scored_customers):
    """A customer with a live 10% offer in slot "home"."""
    [alice] = scored_customers([0.9])
    offer(slot="home")
    campaigns_evaluate(now=timezone.now() - timedelta(hours=1))
    return alice


def shown(storefront, customer) -> list[str]:
    response = storefront.get(f"customers/{customer}/placements", params={"slot": "home"})
    return [p["kind"] for p in response.json()["placements"]] if response.status_code == 200 else response.status_code


def kept(customer: str) -> bool:
    return bool(cache._cache.get_client().hexists(cache.make_key(f"placements:customer:{customer}"), "b:home"))


def _pause():
    campaign_set_status(campaign=Campaign.objects.get(), status=Campaign.Status.PAUSED)


def _rename():
    offer = Campaign.objects.get().settings
    offer.headline = "Now fifteen"
    offer.save()


def _another_campaign():
    ProductFactory.create_batch(2)
    offer(name="Picked for you", kind="ad", slot="home", priority=50)
    campaigns_evaluate(now=timezone.now() - timedelta(minutes=30))


def _consent_withdrawn_in_bulk(customer):
    customers_bulk_upsert(customers=pd.DataFrame(
        {"external_id": [customer.external_id], "attributes": [{}], "marketing_consent": [False]}))


@pytest.mark.parametrize(("change", "then"), [
    ("campaign paused", []),
    ("campaign edited", ["price_offer"]),
    ("a new campaign evaluated", ["ad", "price_offer"]),
    ("consent withdrawn in an import", []),
    ("customer erased", 404),
    ("assignment expired", []),
])
def test_every_change_retires_the_kept_answer(alice, storefront, change, then):
    assert shown(storefront, alice.external_id) == ["price_offer"] and kept(alice.external_id)

    if change == "campaign paused":
        _pause()
    elif change == "campaign edited":
        _rename()
    elif change == "a new campaign evaluated":
        _another_campaign()
    elif change == "consent withdrawn in an import":
        _consent_withdrawn_in_bulk(alice)
    elif change == "customer erased":
        customer_erase(customer=alice)
    elif change == "assignment expired":
        Assignment.objects.update(expires_at=timezone.now() + timedelta(seconds=1))  # behind the cache's back
        placements_changed([alice.external_id])
        assert shown(storefront, alice.external_id) == ["price_offer"] and kept(alice.external_id)
        time.sleep(1.1)

    assert shown(storefront, alice.external_id) == then
    if change == "campaign edited":
        served = storefront.get(f"customers/{alice.external_id}/placements", params={"slot": "home"}).json()
        assert served["placements"][0]["headline"] == "Now fifteen"


def test_an_answer_read_before_a_change_is_not_kept_after_it(alice):
    def read():
        return counted_and_read([], customer=alice.external_id, slot="home", now=timezone.now())

    def store(stamp, answer):
        placements_store(customer=alice.external_id, slot="home", stamp=stamp, answer=answer, assignments=[],
                         until=None)

    for change in (lambda: placements_changed([alice.external_id]), placements_changed):  # hers, everyone's
        before = read()
        assert before.answer is None
        change()  # committed while the answer was read from the database
        store(before.stamp, b"stale")
        assert read().answer is None

    store(read().stamp, b"fresh")
    assert read().answer == b"fresh"
    cache.clear()  # Redis lost everything: the first store names a new generation, the next one keeps
    store(read().stamp, b"lost")
    store(read().stamp, b"kept")
    assert read().answer == b"kept"


def test_impressions_are_added_once_and_a_died_flush_is_finished_first(alice, storefront):
    for _ in range(3):
        shown(storefront, alice.external_id)  # one from the database, two kept
    client, key = cache._cache.get_client(), cache.make_key
    client.rename(key("placements:impressions"), key("placements:impressions-flushing"))  # a flush died here
    client.rename(key("placements:first-shown"), key("placements:first-shown-flushing"))
    shown(storefront, alice.external_id)

    assert impressions_flush() == 2  # the died flush's copy
    assert impressions_flush() == 1  # then what was counted since
    assert impressions_flush() == 0
    assignment = Assignment.objects.get()
    assert assignment.impressions == 4 and assignment.first_shown_at < timezone.now()


def test_with_redis_down_placements_are_read_from_the_database(alice, storefront, settings, monkeypatch):
    from behavior import cache as shared_cache

    assert shown(storefront, alice.external_id) == ["price_offer"]
    monkeypatch.setattr(shared_cache, "_down_until", 0.0)  # put back after the test: the next ones use Redis again
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}  # nothing listens there

    assert [shown(storefront, alice.external_id) for _ in range(3)] == [["price_offer"]] * 3
    _pause()  # its retirement cannot reach Redis: logged, and the database answers meanwhile

    assert shown(storefront, alice.external_id) == []
    assert Assignment.objects.get().impressions == 4


def test_a_customer_named_like_the_caches_own_keys_is_kept_apart(scored_customers, storefront):
    from behavior.models import Customer

    [alice] = scored_customers([0.9])
    Customer.objects.filter(pk=alice.pk).update(external_id="generation")  # ids are the shop's: any text
    offer(slot="home")
    campaigns_evaluate(now=timezone.now() - timedelta(hours=1))

    assert shown(storefront, "generation") == ["price_offer"] and kept("generation")
    placements_changed(["generation"])  # her consent changed, say
    assert shown(storefront, "generation") == ["price_offer"] and impressions_flush() == 0  # one from the database


def test_a_shopper_cannot_grow_the_cache_with_made_up_slots(alice, storefront):
    for i in range(40):
        storefront.get(f"customers/{alice.external_id}/placements", params={"slot": f"slot-{i}"})

    fields = cache._cache.get_client().hlen(cache.make_key(f"placements:customer:{alice.external_id}"))
    assert 0 < fields <= 4 * 16 + 1  # sixteen answers of four fields, and the customer's version


def test_an_erasure_that_cannot_reach_redis_is_refused_and_no_erased_answer_is_ever_served(
        alice, storefront, make_api, admin_client, settings, monkeypatch):
    from behavior import cache as shared_cache
    from behavior.models import Customer

    admin = make_api(ApiKey.Scope.ADMIN)
    assert shown(storefront, alice.external_id) == ["price_offer"] and kept(alice.external_id)
    reachable = settings.CACHES
    monkeypatch.setattr(shared_cache, "_down_until", 0.0)  # put back after the test: the next ones use Redis again
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}  # Redis unreachable

    refused = admin.delete(f"customers/{alice.external_id}")
    assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
    assert "unreachable" in refused.json()["detail"] and "nothing was erased" in refused.json()["detail"]
    with pytest.raises(CacheUnreachable):
        customer_erase(customer=alice)
    erase = f"/admin/behavior/customer/{alice.pk}/delete/"
    page = admin_client.post(erase, {"post": "yes"}, follow=True)
    assert "nothing was erased; try again" in page.content.decode()
    assert Customer.objects.filter(pk=alice.pk).exists() and Coupon.objects.filter(customer=alice).exists()

    settings.CACHES = reachable  # Redis is back, with the answer it kept: served while she is not erased
    monkeypatch.setattr(shared_cache, "_down_until", 0.0)
    assert shown(storefront, alice.external_id) == ["price_offer"]
    assert admin_client.post(erase, {"post": "yes"}).status_code == 302  # her coupon and assignment with her
    assert not Customer.objects.filter(pk=alice.pk).exists()
    assert shown(storefront, alice.external_id) == 404 and not kept(alice.external_id)


def test_a_sealed_customer_keeps_no_answer_until_the_commits_bump(alice):
    def read():
        return counted_and_read([], customer=alice.external_id, slot="home", now=timezone.now())

    def store(answer):
        if stamp := read().stamp:  # a miss: what a placements call then stores
            placements_store(customer=alice.external_id, slot="home", stamp=stamp, answer=answer, assignments=[],
                             until=None)

    store(b"before")
    store(b"before")  # the first store ever names the generation only
    assert read().answer == b"before"
    placements_sealed([alice.external_id])  # the erasure's transaction, before its commit
    assert read().answer is None
    store(b"read from the database before the commit")  # would hold the erased customer's coupon
    assert read().answer is None  # the commit's bump lost (Redis gone just then): still nothing kept

    placements_changed([alice.external_id])  # the commit's bump
    store(b"after")
    assert read().answer == b"after"
