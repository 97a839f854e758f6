"""Customers, products, erase and export over real HTTP."""

import pytest
from django.apps import apps

from behavior.models import AnonymousLink, Customer, Product
from campaigns.models import Coupon
from tests.factories import shop_with_history

pytestmark = pytest.mark.django_db(transaction=True)


def test_put_creates_then_updates_a_customer(admin_api):
    created = admin_api.put("customers/alice", json={"attributes": {"country": "PT"}, "marketing_consent": True})
    updated = admin_api.put("customers/alice", json={"marketing_consent": False})

    assert created.status_code == 201 and updated.status_code == 200
    assert updated.json()["attributes"] == {"country": "PT"}
    assert updated.json()["marketing_consent"] is False
    assert admin_api.get("customers/alice").json()["external_id"] == "alice"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"attributes": "PT"}, "attributes"),
        ({"marketing_consent": "perhaps"}, "marketing_consent"),
        ({"nickname": "al"}, "nickname"),
        ({"attributes": {"notes": "x" * 5000}}, "attributes"),
        ({"attributes": {"note": "a\x00b"}}, "attributes"),  # jsonb cannot hold a NUL: it was a 500
        ({"attributes": {"a\x00": 1}}, "attributes"),
        ({"attributes": {"a": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}}, "attributes"),
    ],
)
def test_bad_customer_input_names_the_field_and_changes_nothing(admin_api, body, field):
    admin_api.put("customers/alice", json={"attributes": {"country": "PT"}})

    response = admin_api.put("customers/alice", json=body)

    assert response.status_code == 400
    assert field in response.json()
    assert Customer.objects.get().attributes == {"country": "PT"}


def test_unknown_customer_is_a_json_404(admin_api):
    response = admin_api.get("customers/nobody")

    assert response.status_code == 404
    assert response.json() == {"detail": "No Customer matches the given query."}


def test_unknown_api_path_is_a_json_404(admin_api):
    response = admin_api.get("no-such-thing")

    assert response.status_code == 404 and "No API endpoint" in response.json()["detail"]


def test_products_are_upserted_in_a_batch(admin_api):
    first = admin_api.post("products", json=[{"external_id": "sku-1", "name": "Boots", "price": "89.00"},
                                             {"external_id": "sku-2", "category": "hats"}])
    second = admin_api.post("products", json=[{"external_id": "sku-1", "name": "Boots", "price": "79.00",
                                               "active": False}])

    assert first.json() == {"upserted": 2} and second.json() == {"upserted": 1}
    boots = Product.objects.get(external_id="sku-1")
    assert (str(boots.price), boots.active) == ("79.00", False)
    assert Product.objects.count() == 2


def test_a_bad_product_batch_is_refused_whole_with_the_index_of_the_bad_item(admin_api):
    response = admin_api.post("products", json=[{"external_id": "sku-1"}, {"external_id": "sku-2", "price": -3}])

    assert response.status_code == 400
    assert response.json()["1"] == {"price": ["Ensure this value is greater than or equal to 0."]}
    assert Product.objects.count() == 0


# Every kind of row that points at a customer, by model label. Held here, not read from the code: a new kind
# must be added to this list and to tests.factories.shop_with_history before these tests pass again.
POINTING_AT_CUSTOMER = ["behavior.anonymouslink", "behavior.event", "behavior.score", "behavior.pastscore",
                        "behavior.contact", "campaigns.assignment", "campaigns.coupon", "support.ticket"]
KINDS = [*POINTING_AT_CUSTOMER, "campaigns.message",  # an assignment's message
         "support.ticketnote", "support.outboxmessage"]  # a ticket's notes and changes


def _rows_of(external_id: str) -> dict[str, set[int]]:
    """The ids of the customer's rows, by kind."""
    customer = Customer.objects.get(external_id=external_id)
    return {model._meta.label_lower: set(model._default_manager.filter(**{field: customer}).values_list("pk",
                                                                                                        flat=True))
            for model, field in Customer.data_models()}


def _shop_where_alice_has_a_row_of_every_kind() -> dict[str, set[int]]:
    shop_with_history("alice", "bob")
    rows = _rows_of("alice")
    assert sorted(rows) == sorted(KINDS), "a model points at Customer that this test does not know"
    assert all(rows.values()), {kind: len(ids) for kind, ids in rows.items()}  # no kind is checked on an empty table
    return rows


def test_export_returns_everything_stored_about_the_customer(admin_api):
    rows = _shop_where_alice_has_a_row_of_every_kind()
    alice = Customer.objects.get(external_id="alice")
    links = {link.pk: link.anonymous_id for link in AnonymousLink.objects.all()}

    export = admin_api.get("customers/alice/export").json()

    assert export["customer"]["external_id"] == "alice" and export["customer"]["marketing_consent"] is True
    assert sorted(export) == sorted(["customer", *KINDS])
    for model, _ in Customer.data_models():
        kind, pk = model._meta.label_lower, model._meta.pk.attname
        # All of alice's rows, and only hers (event ids are UUIDs, sent as text).
        assert {str(row[pk]) for row in export[kind]} == {str(i) for i in rows[kind]}, kind
        assert all(row["customer_id"] == alice.pk for row in export[kind] if "customer_id" in row), kind
    assert [links[row["id"]] for row in export["behavior.anonymouslink"]] == ["visitor-alice"]
    assert {row["type"] for row in export["behavior.event"]} == {"product_view", "purchase", "support_contact"}
    assert [row["code"] for row in export["campaigns.coupon"]] == [Coupon.objects.get(customer=alice).code]
    assert {row["origin"] for row in export["support.ticket"]} == {"proactive", "customer"}
    assert [row["text"] for row in export["support.ticketnote"]] == ["alice called about it"]  # a ticket's rows too


def test_erase_removes_the_customer_and_everything_that_points_at_them(admin_api):
    rows = _shop_where_alice_has_a_row_of_every_kind()
    bobs = _rows_of("bob")
    models = {model._meta.label_lower: model for model, _ in Customer.data_models()}

    response = admin_api.delete("customers/alice")

    assert response.status_code == 204
    assert not Customer.objects.filter(external_id="alice").exists()
    for kind, ids in rows.items():  # gone, not moved to another customer or kept under another id
        assert not models[kind]._default_manager.filter(pk__in=ids).exists(), f"{kind} of alice outlived her"
    assert _rows_of("bob") == bobs  # nothing of anyone else
    assert not AnonymousLink.objects.filter(anonymous_id="visitor-alice").exists()
    assert admin_api.get("customers/alice/export").status_code == 404


def test_every_model_that_holds_customer_data_is_erased_and_exported():
    """A new model pointing at Customer must cascade on erase, and export walks the same relations."""
    holders = _models_pointing_at_customer()
    assert sorted(model._meta.label_lower for model, _ in holders) == sorted(POINTING_AT_CUSTOMER)
    for model, field in holders:
        relation = model._meta.get_field(field.removesuffix("_id")).remote_field
        assert relation.on_delete.__name__ == "CASCADE", f"{model.__name__}.{field} must cascade on erase"


def _models_pointing_at_customer() -> list[tuple[type, str]]:
    return [
        (model, field.attname)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if field.is_relation and field.related_model is Customer
    ]
