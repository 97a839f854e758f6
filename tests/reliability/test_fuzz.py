"""Input meant to break the API, over real HTTP, in a shop with data in every table: no 5xx, ever.

Schemathesis walks every operation of the OpenAPI document the server publishes. Each generated call is
made with a key of the scope its route needs, once with the ids Schemathesis made up and once with ids that
exist (a customer with scores, placements, a coupon and a help message), so calls get past the 404 to the
deep paths; on the customer-bound routes, where a public key stops at its 403, an admin key goes on. Then
explicit cases: NUL in every string field, numbers past every column, JSON nested 300 deep, ids no route
can carry, times no store holds. A 4xx is a fine answer to all of it; the shop must still score and export
afterwards.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count, cycle
from urllib.parse import quote

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from behavior.api.schema import openapi_document
from behavior.models import ApiKey, Customer, Event
from behavior.services.api_keys import api_key_create
from behavior.services.customers import customer_upsert
from behavior.services.scoring import scoring_cycle_run
from tests.conftest import Api
from tests.factories import event_payload, shop_with_history

pytestmark = pytest.mark.django_db(transaction=True)

# The same document /api/v1/schema serves (a test below checks). It is built here rather than fetched, because
# Schemathesis' lazy fixture loader does not work with this pytest; the requests still go to a live server.
schema = schemathesis.openapi.from_dict(openapi_document())

Scope = ApiKey.Scope
# The key each operation is called with. A public (ingest) key on the customer-bound routes has no customer
# token here: a 403 is its right answer, and an admin key is sent to the deep paths.
SCOPE_OF = {
    ("POST", "/api/v1/events"): Scope.INGEST,
    ("POST", "/api/v1/identify"): Scope.INGEST,
    ("POST", "/api/v1/products"): Scope.ADMIN,
    ("GET", "/api/v1/customers/{external_id}"): Scope.READ,
    ("PUT", "/api/v1/customers/{external_id}"): Scope.ADMIN,
    ("DELETE", "/api/v1/customers/{external_id}"): Scope.ADMIN,
    ("GET", "/api/v1/customers/{external_id}/export"): Scope.ADMIN,
    ("GET", "/api/v1/customers/{external_id}/scores"): Scope.READ,
    ("GET", "/api/v1/customers/{external_id}/placements"): Scope.INGEST,
    ("GET", "/api/v1/customers/{external_id}/help"): Scope.INGEST,
    ("POST", "/api/v1/customers/{external_id}/help/{ticket_id}/ack"): Scope.INGEST,
    ("POST", "/api/v1/customers/{external_id}/tickets"): Scope.INGEST,
    ("POST", "/api/v1/offers/{code}/redeem"): Scope.CHECKOUT,
}
CUSTOMERS = ("alice", "bob", "carol")
# Ids that no route can carry, or that mean something else in a path.
ODD_IDS = ["%2F", "a%2Fb", "..", ".", "ü-é-ß-😀", "x" * 300, "%E0%A4%A", " ", "%20"]  # and NUL: see the end
HUGE = [1e10, 9999999999.995, 2**63, 2**64, -(2**63) - 1, 1e308]
DEEP = 300
_real_ids = cycle(CUSTOMERS)  # the existing customer each generated call is made for, in turn
_doomed = count()


def _deep(levels: int) -> dict:
    node: dict = {"leaf": 1}
    for _ in range(levels - 1):
        node = {"next": node}
    return node


def _deep_list(levels: int) -> list:
    node: list = [1]
    for _ in range(levels - 1):
        node = [node]
    return node


@dataclass
class Shop:
    keys: dict[str, str]  # scope -> raw key
    coupons: dict[str, str]  # customer -> coupon code
    help: dict[str, int]  # customer -> proactive ticket id
    base_url: str

    def api(self, scope: str) -> Api:
        return Api(self.base_url, self.keys[scope])


@pytest.fixture
def shop(live_server) -> Shop:
    made = shop_with_history(*CUSTOMERS)
    keys = {scope: api_key_create(name=f"fuzz {scope}", scopes=[scope])[1] for scope in Scope}
    return Shop(keys=keys, coupons=made["coupons"], help=made["help"], base_url=live_server.url)


def test_the_fuzzed_document_is_the_one_the_server_serves(live_server):
    served = Api(live_server.url, None).get("schema", headers={"Accept": "application/json"})
    assert served.status_code == 200
    assert set(served.json()["paths"]) == set(schema.raw_schema["paths"])
    operations = {(method.upper(), path) for path, item in schema.raw_schema["paths"].items() for method in item}
    assert operations == set(SCOPE_OF)  # a new operation needs a key here before it is fuzzed


@schema.parametrize()
@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented_and_never_with_a_5xx(case, shop):
    method = case.method.upper()
    # A method the document does not list (Schemathesis tries those too) gets the admin key: a 405.
    scope = SCOPE_OF.get((method, case.operation.path), Scope.ADMIN)
    real = next(_real_ids)
    if method == "DELETE":  # erase a customer of its own, so the others stay for the calls that follow
        real = customer_upsert(external_id=f"doomed-{next(_doomed)}", marketing_consent=True)[0].external_id
    existing = {"external_id": real, "ticket_id": shop.help.get(real, 0), "code": shop.coupons.get(real, "NONE")}
    made_up = dict(case.path_parameters or {})
    calls = [(shop.keys[scope], made_up)]
    if made_up:  # and once more for a customer, ticket or coupon that exists
        calls.append((shop.keys[scope], {name: existing[name] for name in made_up}))
        if scope == Scope.INGEST:  # a public key without a customer token stops at a 403: an admin key goes on
            calls.append((shop.keys[Scope.ADMIN], {name: existing[name] for name in made_up}))
    for key, path_parameters in calls:
        case.path_parameters = path_parameters
        # Left out: whether inputs are parsed as strictly as the schema types them. DRF, like most
        # servers, reads 0 as false and 0 as "0"; that leniency is a choice, not a fault.
        case.call_and_validate(base_url=shop.base_url, headers={"Authorization": f"Bearer {key}"},
                               excluded_checks=[negative_data_rejection, positive_data_acceptance])
    if method == "PUT":  # a generated body may withdraw consent: placements would then show nothing
        Customer.objects.filter(external_id__in=CUSTOMERS).update(marketing_consent=True)


# --- explicit cases ---------------------------------------------------------------------------------------------------


def _no_5xx(calls) -> None:
    """Make every call; fail once, naming each one that answered 5xx."""
    failures = []
    for label, api, method, path, kwargs in calls:
        response = api.request(method, path, **kwargs)
        if response.status_code >= 500:
            failures.append(f"{label}: {method} {path} -> {response.status_code} {response.text[:300]}")
    assert not failures, "\n".join(failures)


def _with_nul(text: str) -> str:
    return f"a\x00{text}"


def _still_scores_and_exports(shop: Shop) -> None:
    """No row the calls stored keeps a read, an export or a scoring run from working."""
    admin = shop.api(Scope.ADMIN)
    for customer in Customer.objects.values_list("external_id", flat=True):
        # "%2F" as an id is "%252F" in a path; "." and ".." go as %2E, or the client resolves them away.
        path = quote(customer, safe="") if customer.strip(".") else "%2E" * len(customer)
        assert admin.get(f"customers/{path}/export").status_code == 200, customer
        assert admin.get(f"customers/{path}/scores").status_code == 200, customer
    run = scoring_cycle_run(as_of=datetime.now(UTC))
    assert run.status == "succeeded", run.error


EVENT_TEXT = ["event_id", "type", "customer", "anonymous_id", "product", "category", "order_id", "session_id"]


def test_nul_in_every_string_field_is_a_4xx_or_rejected_by_field(shop):
    ingest, admin = shop.api(Scope.INGEST), shop.api(Scope.ADMIN)
    code = shop.coupons["alice"]
    item = {"product": "sku-1", "category": "shoes", "price": "20.00", "quantity": 1}
    redeem = {"customer": "alice", "order_id": "order-1", "items": [item]}
    ticket = {"subject": "Late", "message": "Where is it?", "order_id": "order-alice"}
    calls = []
    for api in (ingest, admin):
        calls += [(f"event {name}", api, "POST", "events", {"json": [event_payload(**{name: _with_nul("x")})]})
                  for name in EVENT_TEXT]
        calls += [
            ("property value", api, "POST", "events", {"json": [event_payload(properties={"a": _with_nul("v")})]}),
            ("property key", api, "POST", "events", {"json": [event_payload(properties={_with_nul("k"): 1})]}),
            ("occurred_at", api, "POST", "events", {"json": [event_payload(occurred_at=_with_nul("2026"))]}),
            ("identify anonymous_id", api, "POST", "identify", {"json": {"anonymous_id": _with_nul("v"),
                                                                          "customer": "alice"}}),
            ("identify customer", api, "POST", "identify", {"json": {"anonymous_id": "v-1",
                                                                     "customer": _with_nul("c")}}),
        ]
        calls += [(f"ticket {name}", api, "POST", "customers/alice/tickets", {"json": {**ticket, name: _with_nul("t")}})
                  for name in ("subject", "message", "order_id", "request_id")]
    calls += [(f"customer attributes {where}", admin, "PUT", "customers/alice", {"json": {"attributes": body}})
              for where, body in (("value", {"a": _with_nul("v")}), ("key", {_with_nul("k"): 1}))]
    calls += [(f"product {name}", admin, "POST", "products",
               {"json": [{"external_id": "sku-9", "name": "Shoe", "category": "shoes", "brand": "b",
                          name: _with_nul("p")}]}) for name in ("external_id", "name", "category", "brand")]
    checkout = shop.api(Scope.CHECKOUT)
    for api in (checkout, admin):
        calls += [(f"redeem {name}", api, "POST", f"offers/{code}/redeem", {"json": {**redeem, name: _with_nul("r")}})
                  for name in ("customer", "order_id")]
        calls += [(f"redeem item {name}", api, "POST", f"offers/{code}/redeem",
                   {"json": {**redeem, "items": [{**item, name: _with_nul("i")}]}}) for name in ("product", "category")]

    events = Event.objects.count()

    _no_5xx(calls)

    assert Event.objects.count() == events  # each batch held one event, with a NUL: nothing was stored
    _still_scores_and_exports(shop)


def test_numbers_past_every_column_are_a_4xx_or_rejected_by_field(shop):
    ingest, admin, checkout = shop.api(Scope.INGEST), shop.api(Scope.ADMIN), shop.api(Scope.CHECKOUT)
    code = shop.coupons["bob"]
    calls = []
    for number in HUGE:
        for name in ("price", "quantity", "rating"):
            calls.append((f"event {name} {number}", ingest, "POST", "events",
                          {"json": [event_payload(type="review", order_id="o-1", **{name: number})]}))
        calls.append((f"product price {number}", admin, "POST", "products",
                      {"json": [{"external_id": "sku-9", "price": number}]}))
        calls.append((f"ticket id {number}", admin, "POST", f"customers/alice/help/{int(number)}/ack", {}))
        for price, quantity in ((number, 1), ("20.00", number), (number, 10_000)):
            calls.append((f"redeem price {price} quantity {quantity}", checkout, "POST", f"offers/{code}/redeem",
                          {"json": {"customer": "bob", "order_id": "order-1",
                                    "items": [{"product": "sku-1", "price": price, "quantity": quantity}]}}))

    _no_5xx(calls)

    _still_scores_and_exports(shop)


def test_json_nested_300_deep_is_a_4xx_or_rejected_by_field(shop):
    ingest, admin = shop.api(Scope.INGEST), shop.api(Scope.ADMIN)
    deep_list = "[" * DEEP + "]" * DEEP
    deep_text = '{"a":' * DEEP + "1" + "}" * DEEP
    headers = {"Content-Type": "application/json"}
    calls = [
        ("event properties", ingest, "POST", "events", {"json": [event_payload(properties=_deep(DEEP))]}),
        ("event properties list", ingest, "POST", "events",
         {"json": [event_payload(properties={"a": _deep_list(DEEP)})]}),
        ("a body of lists", ingest, "POST", "events", {"data": deep_list, "headers": headers}),
        ("a body of objects", ingest, "POST", "events", {"data": deep_text, "headers": headers}),
        ("identify body", ingest, "POST", "identify", {"data": deep_text, "headers": headers}),
        ("customer attributes", admin, "PUT", "customers/alice", {"json": {"attributes": _deep(DEEP)}}),
        ("customer body", admin, "PUT", "customers/alice", {"data": deep_text, "headers": headers}),
        ("products body", admin, "POST", "products", {"data": deep_list, "headers": headers}),
        ("ticket body", admin, "POST", "customers/alice/tickets", {"data": deep_text, "headers": headers}),
        ("redeem body", shop.api(Scope.CHECKOUT), "POST", f"offers/{shop.coupons['alice']}/redeem",
         {"data": deep_text, "headers": headers}),
    ]

    _no_5xx(calls)

    _still_scores_and_exports(shop)


def test_ids_no_route_can_carry_are_a_4xx(shop):
    admin, read, ingest = shop.api(Scope.ADMIN), shop.api(Scope.READ), shop.api(Scope.INGEST)
    ticket = shop.help["carol"]
    calls = []
    for odd in ODD_IDS:
        for api in (admin, read, ingest):
            calls += [
                (f"customer {odd!r}", api, "GET", f"customers/{odd}", {}),
                (f"scores {odd!r}", api, "GET", f"customers/{odd}/scores", {}),
                (f"export {odd!r}", api, "GET", f"customers/{odd}/export", {}),
                (f"placements {odd!r}", api, "GET", f"customers/{odd}/placements", {"params": {"slot": "home"}}),
                (f"slot {odd!r}", api, "GET", "customers/carol/placements", {"params": {"slot": odd}}),
                (f"help {odd!r}", api, "GET", f"customers/{odd}/help", {}),
                (f"ack {odd!r}", api, "POST", f"customers/{odd}/help/{ticket}/ack", {}),
                (f"ack ticket {odd!r}", api, "POST", f"customers/carol/help/{odd}/ack", {}),
                (f"tickets {odd!r}", api, "POST", f"customers/{odd}/tickets", {"json": {"subject": "Late"}}),
                (f"redeem {odd!r}", api, "POST", f"offers/{odd}/redeem",
                 {"json": {"customer": odd, "order_id": odd, "items": [{"product": odd, "price": "1.00"}]}}),
                (f"identify {odd!r}", api, "POST", "identify", {"json": {"anonymous_id": odd, "customer": odd}}),
                (f"event {odd!r}", api, "POST", "events", {"json": [event_payload(customer=odd, product=odd)]}),
            ]
        calls += [(f"put {odd!r}", admin, "PUT", f"customers/{odd}", {"json": {"marketing_consent": True}})
                  for _ in [odd] if len(odd) <= 255]  # longer: see the end
        calls.append((f"delete {odd!r}", admin, "DELETE", f"customers/{odd}", {}))
    calls += [(f"{what} with a slash", ingest, "POST", path, {"json": body}) for what, path, body in (
        ("event customer", "events", [event_payload(customer="a/b")]),
        ("identify customer", "identify", {"anonymous_id": "v-9", "customer": "a/b"}))]
    calls.append(("put with a slash", admin, "PUT", "customers/a/b", {"json": {}}))

    _no_5xx(calls)

    # Whatever was stored can be read back (below) and erased through its own path.
    assert not Customer.objects.filter(external_id__contains="/").exists()
    _still_scores_and_exports(shop)


def test_times_no_store_holds_are_rejected_by_field(shop):
    ingest = shop.api(Scope.INGEST)
    now = datetime.now(UTC)
    odd_times = ["0001-01-01T00:00:00+05:00", "0001-01-01", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00",
                 "9999-12-31T23:59:59+14:00", "1899-12-31T23:59:59-12:00", "-0001-01-01T00:00:00Z",
                 "99999-01-01T00:00:00Z", "2026-13-45T25:61:61Z", (now + timedelta(days=800)).isoformat()]
    order = {"type": "purchase", "order_id": "order-9", "customer": "alice", "quantity": 1}
    batch = [event_payload(**order, occurred_at=t) for t in odd_times]
    batch += [event_payload(**order, promised_at=t) for t in odd_times]
    good = event_payload(**order, promised_at=(now + timedelta(days=3)).isoformat())

    response = ingest.post("events", json=[*batch, good])

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["accepted"] == [good["event_id"]]
    rejected = {r["index"]: r["errors"] for r in report["rejected"]}
    assert sorted(rejected) == list(range(len(batch)))
    assert all("occurred_at" in rejected[i] for i in range(len(odd_times)))
    assert all("promised_at" in rejected[len(odd_times) + i] for i in range(len(odd_times)))
    _still_scores_and_exports(shop)


# --- inputs that answered 500 before ----------------------------------------------------------------------------


def test_nul_in_a_path_id_or_query_is_a_4xx(shop):
    admin, read, checkout = shop.api(Scope.ADMIN), shop.api(Scope.READ), shop.api(Scope.CHECKOUT)
    ticket = shop.help["alice"]
    redeem = {"customer": "alice", "order_id": "order-1", "items": [{"product": "sku-1", "price": "20.00"}]}
    calls = []
    for odd in ("%00", "a%00b"):
        calls += [(f"{method} {path}", api, method, path, kwargs) for api, method, path, kwargs in (
            (read, "GET", f"customers/{odd}", {}), (read, "GET", f"customers/{odd}/scores", {}),
            (admin, "GET", f"customers/{odd}/export", {}), (admin, "PUT", f"customers/{odd}", {"json": {}}),
            (admin, "DELETE", f"customers/{odd}", {}),
            (admin, "GET", f"customers/{odd}/placements", {"params": {"slot": "home"}}),
            (admin, "GET", f"customers/{odd}/help", {}), (admin, "POST", f"customers/{odd}/help/{ticket}/ack", {}),
            (admin, "POST", f"customers/{odd}/tickets", {"json": {"subject": "Late"}}),
            (checkout, "POST", f"offers/{odd}/redeem", {"json": redeem}))]
    calls.append(("slot", admin, "GET", "customers/alice/placements", {"params": {"slot": _with_nul("home")}}))
    _no_5xx(calls)


def test_a_customer_id_too_long_to_store_is_a_4xx(shop):
    _no_5xx([("put 256 characters", shop.api(Scope.ADMIN), "PUT", f"customers/{'x' * 256}", {"json": {}})])


def test_an_order_too_big_for_the_discount_arithmetic_is_a_4xx(shop):
    # The largest order the columns hold, in one line and in a thousand.
    most = {"product": "sku-1", "category": "shoes", "price": "9999999999.99", "quantity": 10_000}
    _no_5xx([(f"redeem {n} lines of the largest price", shop.api(Scope.CHECKOUT), "POST",
              f"offers/{shop.coupons['bob']}/redeem",
              {"json": {"customer": "bob", "order_id": f"order-{n}", "items": [most] * n}}) for n in (1, 1_000)])
