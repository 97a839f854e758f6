"""Customers, products, erase and export over real HTTP."""

import pytest
from django.apps import apps

from behavior.models import AnonymousLink, Customer, Event, Product
from tests.factories import event_payload

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


def _customer_with_history(make_api) -> None:
    ingest = make_api("ingest")
    ingest.post("events", json=[event_payload(customer="alice") for _ in range(3)])
    ingest.post("events", json=[event_payload(customer=None, anonymous_id="visitor-1")])
    ingest.post("identify", json={"anonymous_id": "visitor-1", "customer": "alice"})
    ingest.post("events", json=[event_payload(customer="bob")])


def test_export_returns_everything_stored_about_the_customer(make_api, admin_api):
    _customer_with_history(make_api)

    export = admin_api.get("customers/alice/export").json()

    assert export["customer"]["external_id"] == "alice"
    assert len(export["behavior.event"]) == 4
    assert export["behavior.anonymouslink"][0]["anonymous_id"] == "visitor-1"


def test_erase_removes_the_customer_and_everything_that_points_at_them(make_api, admin_api):
    _customer_with_history(make_api)
    alice = Customer.objects.get(external_id="alice")
    holders = _models_pointing_at_customer()

    response = admin_api.delete("customers/alice")

    assert response.status_code == 204
    assert not Customer.objects.filter(external_id="alice").exists()
    for model, field in holders:
        assert not model._default_manager.filter(**{field: alice.pk}).exists(), model
    assert Event.objects.filter(customer__external_id="bob").count() == 1
    assert AnonymousLink.objects.count() == 0
    assert admin_api.get("customers/alice/export").status_code == 404


def test_every_model_that_holds_customer_data_is_erased_and_exported():
    """A new model pointing at Customer must cascade on erase, and export walks the same relations."""
    holders = _models_pointing_at_customer()
    assert {model for model, _ in holders} >= {Event, AnonymousLink}
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
