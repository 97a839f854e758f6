"""The storefront's fast path keeps its promises: budgets under concurrent redemptions, the documented answer,
and a revoked key refused within the key cache's few seconds."""

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from behavior.models import ApiKey
from campaigns.api.serializers import PlacementsOut, RedeemOut
from campaigns.models import Campaign, Coupon
from campaigns.services import Redemption, campaigns_evaluate, placements_show
from tests.campaigns.conftest import offer
from tests.factories import EventFactory, ProductFactory

ITEMS = [{"product": "sku-1", "category": "shoes", "price": "40.00", "quantity": 2},
         {"product": "sku-2", "category": "socks", "price": "5.00"}]  # 10% off: 8.50

pytestmark = pytest.mark.django_db(transaction=True)


def test_coupons_racing_for_the_last_of_a_budget_spend_it_exactly(scored_customers, make_api):
    customers = scored_customers([0.9] * 8)
    offer(budget="25.50")  # three redemptions of 8.50
    campaigns_evaluate(now=timezone.now() - timedelta(hours=1))
    codes = {c.external_id: Coupon.objects.get(customer=c).code for c in customers}
    start, answers = threading.Barrier(len(codes)), []

    def redeem(api, customer, code):
        start.wait()
        answer = api.post(f"offers/{code}/redeem", json={"customer": customer, "order_id": f"o-{customer}",
                                                         "items": ITEMS})
        answers.append((answer.status_code, answer.json()))

    threads = [threading.Thread(target=redeem, args=(make_api(ApiKey.Scope.CHECKOUT), *pair)) for pair in codes.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(status for status, _ in answers) == [200] * 3 + [409] * 5
    assert {body["reason"] for status, body in answers if status == 409} == {"budget_spent"}
    redeemed = Coupon.objects.filter(redeemed_at__isnull=False)
    assert redeemed.count() == 3 and {c.discount_amount for c in redeemed} == {Decimal("8.50")}
    assert Campaign.objects.get().settings.discount_spent == Decimal("25.50")
    assert sorted((body for status, body in answers if status == 200), key=lambda b: b["code"]) == [
        RedeemOut(Redemption(c.code, c.order_id, c.discount_amount, c.redeemed_at)).data
        for c in redeemed.order_by("code")]  # the hand-shaped answer is the documented one


def test_the_placements_answer_is_the_documented_one(scored_customers, storefront):
    [alice] = scored_customers([0.9])
    shoes = ProductFactory.create_batch(3, category="shoes")
    EventFactory(customer=alice, type="product_view", product=shoes[0], category="shoes")
    offer(slot="home", min_order="20.00", headline="Ten percent off")
    offer(name="Picked for you", kind="ad", slot="home", priority=5, headline="Picked for you")
    campaigns_evaluate(now=timezone.now() - timedelta(hours=1))

    served = storefront.get(f"customers/{alice.external_id}/placements", params={"slot": "home"}).json()
    shown = placements_show(customer_external_id=alice.external_id, slot="home")

    assert [p["kind"] for p in served["placements"]] == ["ad", "price_offer"]  # higher priority first
    assert served["placements"][0]["products"] and served["placements"][1]["offer"]["min_order"] == "20.00"
    assert served == PlacementsOut({"customer": alice.external_id, "slot": "home", "placements": shown}).data


def test_a_revoked_key_is_refused_once_the_key_cache_has_expired(make_api, settings):
    settings.FORESIGHT_API_KEY_CACHE_SECONDS = 0.5
    api = make_api(ApiKey.Scope.READ)
    assert api.get("customers/nobody").status_code == 404  # the key is known, and now remembered

    ApiKey.objects.update(active=False)  # as an admin's bulk action would: no signal reaches the cache
    time.sleep(0.6)

    assert api.get("customers/nobody").status_code == 401
