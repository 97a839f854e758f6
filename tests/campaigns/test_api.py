"""The storefront's calls over real HTTP: placements for a slot, and coupon redemption with its refusals."""

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from behavior.models import ApiKey
from campaigns.actions.price_offer import PriceOfferSettings
from campaigns.models import Assignment, Campaign, Coupon
from campaigns.placements_cache import impressions_flush
from campaigns.services import OrderItem, RedemptionError, campaigns_evaluate, coupon_redeem
from tests.campaigns.conftest import NOW, offer

ITEMS = [{"product": "sku-1", "category": "shoes", "price": "40.00", "quantity": 2},
         {"product": "sku-2", "category": "socks", "price": "5.00"}]


@pytest.fixture
def checkout(make_api):
    return make_api(ApiKey.Scope.CHECKOUT)


@pytest.fixture
def minted(scored_customers):
    """Two customers, each with a live 10% coupon (assigned an hour ago)."""
    customers = scored_customers([0.9, 0.8])
    campaign = offer(budget="100.00", min_order="20.00", slot="home")
    campaigns_evaluate(now=timezone.now() - timedelta(hours=1))
    codes = {c.external_id: Coupon.objects.get(customer=c).code for c in customers}
    return campaign, customers, codes


def _redeem(api, code, customer, items=ITEMS, order_id="order-1"):
    return api.post(f"offers/{code}/redeem", json={"customer": customer, "order_id": order_id, "items": items})


def test_placements_show_the_offer_with_its_code_and_count_impressions(minted, storefront):
    campaign, customers, codes = minted
    alice = customers[0]

    response = storefront.get(f"customers/{alice.external_id}/placements", params={"slot": "home"})

    assert response.status_code == 200, response.text
    [placement] = response.json()["placements"]
    assert placement["kind"] == "price_offer" and placement["campaign"] == campaign.pk
    assert placement["offer"]["code"] == codes[alice.external_id] and placement["offer"]["discount_value"] == "10.00"
    assert "purchase intent" in placement["reason"]
    again = storefront.get(f"customers/{alice.external_id}/placements", params={"slot": "home"})
    assert again.json() == response.json()  # kept in Redis: counted there, added to the assignment each minute
    assert Assignment.objects.get(customer=alice).impressions == 1
    assert impressions_flush() == 1
    assignment = Assignment.objects.get(customer=alice)
    assert assignment.impressions == 2 and assignment.first_shown_at is not None

    assert storefront.get(f"customers/{alice.external_id}/placements", params={"slot": "cart"}).json()[
        "placements"] == []
    missing = storefront.get(f"customers/{alice.external_id}/placements")
    assert missing.status_code == 400 and "slot" in missing.json()
    assert storefront.get("customers/nobody/placements", params={"slot": "home"}).status_code == 404


def test_placements_respect_a_withdrawn_consent(minted, storefront):
    _, customers, _ = minted
    assert storefront.get(f"customers/{customers[0].external_id}/placements", params={"slot": "home"}).json()[
        "placements"]  # and now kept
    customers[0].marketing_consent = False
    customers[0].save()
    response = storefront.get(f"customers/{customers[0].external_id}/placements", params={"slot": "home"})
    assert response.json()["placements"] == []


def test_redeeming_applies_the_discount_once(minted, checkout, storefront):
    _, customers, codes = minted
    alice = customers[0].external_id

    assert storefront.get(f"customers/{alice}/placements", params={"slot": "home"}).json()["placements"]
    response = _redeem(checkout, codes[alice].lower(), alice)  # codes are read aloud: case does not matter

    assert response.status_code == 200, response.text
    assert response.json()["discount"] == "8.50"  # 10% of 2 x 40.00 + 5.00
    again = _redeem(checkout, codes[alice], alice, order_id="order-2")
    assert again.status_code == 409 and again.json()["reason"] == "already_redeemed"
    assert Campaign.objects.get().settings.discount_spent == 8.5
    placements = storefront.get(f"customers/{alice}/placements", params={"slot": "home"}).json()["placements"]
    assert placements == []  # a used coupon is not offered again


@pytest.mark.parametrize(("case", "status", "reason"), [
    ("unknown code", 404, "unknown_code"),
    ("another customer's code", 403, "not_yours"),
    ("expired", 410, "expired"),
    ("below the minimum", 422, "below_minimum"),
    ("nothing in scope", 422, "out_of_scope"),
    ("budget spent", 409, "budget_spent"),
])
def test_redemption_abuse_is_refused_with_a_reason(minted, checkout, case, status, reason):
    campaign, customers, codes = minted
    alice, bob = (c.external_id for c in customers)
    code, customer, items = codes[alice], alice, ITEMS
    if case == "unknown code":
        code = "NOTACODE2345"
    elif case == "another customer's code":
        customer = bob
    elif case == "expired":
        Coupon.objects.filter(code=code).update(expires_at=NOW - timedelta(days=1))
    elif case == "below the minimum":
        items = [{"product": "sku-2", "category": "socks", "price": "5.00"}]
    elif case == "nothing in scope":
        PriceOfferSettings.objects.filter(campaign=campaign).update(scope="category", scope_value="hats")
    elif case == "budget spent":
        PriceOfferSettings.objects.filter(campaign=campaign).update(discount_spent="95.00")

    response = _redeem(checkout, code, customer, items)

    assert response.status_code == status, response.text
    assert response.json()["reason"] == reason and response.json()["detail"]
    assert not Coupon.objects.filter(redeemed_at__isnull=False).exists()  # nothing half-done


def test_redemption_needs_the_checkout_scope(minted, storefront):
    _, customers, codes = minted
    alice = customers[0].external_id
    assert _redeem(storefront, codes[alice], alice).status_code == 403


def test_bad_orders_name_the_bad_field(minted, checkout):
    _, customers, codes = minted
    alice = customers[0].external_id
    response = _redeem(checkout, codes[alice], alice, items=[{"product": "sku-1", "price": "-1"}])
    assert response.status_code == 400 and "items" in response.json()
    # One checker serves every call: what it found wrong before is not carried into the next call.
    response = checkout.post(f"offers/{codes[alice]}/redeem", json={"customer": alice, "items": ITEMS})
    assert response.status_code == 400 and response.json() == {"order_id": ["This field is required."]}
    assert _redeem(checkout, codes[alice], alice).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_two_redemptions_at_once_one_wins(scored_customers, make_api):
    customers = scored_customers([0.9])
    offer()
    campaigns_evaluate(now=timezone.now() - timedelta(hours=1))
    code, alice = Coupon.objects.get().code, customers[0].external_id
    clients = [make_api(ApiKey.Scope.CHECKOUT) for _ in range(2)]
    start, statuses = threading.Barrier(2), []

    def redeem(api, order):
        start.wait()
        statuses.append(_redeem(api, code, alice, order_id=order).status_code)

    threads = [threading.Thread(target=redeem, args=(api, f"order-{i}")) for i, api in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(statuses) == [200, 409]
    assert Campaign.objects.get().settings.discount_spent == 8.5


def _two_offers(scored_customers, *, ten_stacks=False, fifteen_stacks=False):
    """Ada, shown a 10% and a 15% offer: {campaign name: her coupon's code}."""
    [ada] = scored_customers([0.9])
    offer(name="Ten percent for likely buyers", may_stack=ten_stacks)
    offer(name="Fifteen percent for loyal buyers", discount_value=15, may_stack=fifteen_stacks)
    campaigns_evaluate(now=timezone.now() - timedelta(hours=1))
    return ada.external_id, {k.assignment.campaign.name: k.code
                             for k in Coupon.objects.select_related("assignment__campaign")}


def _redeemed_on(order_id):
    """The codes redeemed on an order, counted in plain SQL."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT code FROM {Coupon._meta.db_table} WHERE order_id = %s AND redeemed_at IS NOT NULL",
                       [order_id])
        return sorted(row[0] for row in cursor.fetchall())


def test_an_order_takes_one_price_offer_and_the_refusal_names_the_other(scored_customers, checkout):
    ada, codes = _two_offers(scored_customers)

    assert _redeem(checkout, codes["Ten percent for likely buyers"], ada, order_id="W-1").status_code == 200
    refusal = _redeem(checkout, codes["Fifteen percent for loyal buyers"], ada, order_id="W-1")

    assert refusal.status_code == 409 and refusal.json() == {
        "reason": "offer_on_order",
        "detail": 'order W-1 has the price offer "Ten percent for likely buyers" (10% off) already: an order takes '
                  "one Foresight price offer, unless the campaigns of both allow stacking"}
    assert _redeemed_on("W-1") == [codes["Ten percent for likely buyers"]]
    assert PriceOfferSettings.objects.get(campaign__name__startswith="Fifteen").discount_spent == 0
    # The refused coupon stays the customer's, for her next order.
    assert _redeem(checkout, codes["Fifteen percent for loyal buyers"], ada, order_id="W-2").status_code == 200


def test_offers_stack_on_one_order_only_when_both_campaigns_allow_it(scored_customers, checkout):
    ada, codes = _two_offers(scored_customers, ten_stacks=True)
    assert _redeem(checkout, codes["Ten percent for likely buyers"], ada, order_id="W-1").status_code == 200
    refusal = _redeem(checkout, codes["Fifteen percent for loyal buyers"], ada, order_id="W-1")
    assert refusal.status_code == 409 and refusal.json()["reason"] == "offer_on_order"

    PriceOfferSettings.objects.filter(campaign__name__startswith="Fifteen").update(may_stack=True)
    assert _redeem(checkout, codes["Fifteen percent for loyal buyers"], ada, order_id="W-1").status_code == 200
    assert _redeemed_on("W-1") == sorted(codes.values())


@pytest.mark.django_db(transaction=True)
def test_two_coupons_redeemed_on_one_order_at_once_one_wins(scored_customers, make_api):
    """The complaint: a customer shown the 10% and the 15% offers redeemed both on order W-1.

    Both redemptions are held at the same step (another session locks both coupons) until both wait, then let go
    together: what each read before the wait must not decide."""
    ada, codes = _two_offers(scored_customers)
    clients = [make_api(ApiKey.Scope.CHECKOUT) for _ in range(2)]
    holding, release, answers = threading.Event(), threading.Event(), {}

    def hold_both_coupons():
        with transaction.atomic():
            list(Coupon.objects.select_for_update().filter(code__in=codes.values()))
            holding.set()
            release.wait(timeout=30)
        connection.close()

    def redeem(api, name):
        answers[name] = _redeem(api, codes[name], ada, order_id="W-1")

    holder = threading.Thread(target=hold_both_coupons)
    holder.start()
    holding.wait(timeout=10)
    threads = [threading.Thread(target=redeem, args=(api, name)) for api, name in zip(clients, codes, strict=True)]
    for t in threads:
        t.start()
    _wait_for_sessions_waiting_on_locks(2)
    release.set()
    for t in [holder, *threads]:
        t.join(timeout=60)

    assert sorted(a.status_code for a in answers.values()) == [200, 409]
    [won] = [name for name, a in answers.items() if a.status_code == 200]
    [lost] = [a.json() for a in answers.values() if a.status_code == 409]
    assert lost["reason"] == "offer_on_order" and f'"{won}"' in lost["detail"]
    assert _redeemed_on("W-1") == [codes[won]]


def _wait_for_sessions_waiting_on_locks(n: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND wait_event_type = 'Lock'")
            if cursor.fetchone()[0] >= n:
                return
        time.sleep(0.02)
    raise AssertionError(f"{n} sessions never waited on a lock")


@pytest.mark.sqlite
def test_the_redemption_service_holds_the_rule_on_either_database(scored_customers):
    ada, codes = _two_offers(scored_customers, fifteen_stacks=True)  # the 10% does not stack: alone or not at all
    items = [OrderItem(product="sku-1", category="shoes", price=Decimal("40.00"))]
    coupon_redeem(code=codes["Fifteen percent for loyal buyers"], customer_external_id=ada, order_id="W-1",
                  items=items)

    with pytest.raises(RedemptionError) as refused:
        coupon_redeem(code=codes["Ten percent for likely buyers"], customer_external_id=ada, order_id="W-1",
                      items=items)

    assert refused.value.reason == "offer_on_order"
    assert 'the price offer "Fifteen percent for loyal buyers" (15% off) already' in str(refused.value)
    assert _redeemed_on("W-1") == [codes["Fifteen percent for loyal buyers"]]
