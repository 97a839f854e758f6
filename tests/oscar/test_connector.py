"""The connector in a real django-oscar shop, over real HTTP: a visitor browses and fills a basket, logs in
and checks out through Oscar's own pages; Foresight stores each step as an event of that customer."""

import re
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from django.contrib.auth import get_user_model
from oscar.core.loading import get_model

from behavior.models import Customer, Event, Product

pytestmark = pytest.mark.django_db(transaction=True)

Category = get_model("catalogue", "Category")
Country = get_model("address", "Country")
Order = get_model("order", "Order")
Partner = get_model("partner", "Partner")
OscarProduct = get_model("catalogue", "Product")
ProductCategory = get_model("catalogue", "ProductCategory")
ProductClass = get_model("catalogue", "ProductClass")
StockRecord = get_model("partner", "StockRecord")

PASSWORD = "a long shopper passphrase"


@pytest.fixture
def shop(db):
    """A small catalogue as Oscar's sandbox has one: a product class, a category, two books in stock."""
    Country.objects.create(iso_3166_1_a2="GB", iso_3166_1_a3="GBR", iso_3166_1_numeric="826",
                           printable_name="United Kingdom", name="United Kingdom", is_shipping_country=True)
    books = ProductClass.objects.create(name="Book", requires_shipping=True, track_stock=True)
    fiction = Category.objects.add_root({"name": "Fiction"})
    partner = Partner.objects.create(name="Warehouse")
    made = []
    for title, price in (("The Trial", "12.99"), ("Dune", "9.50")):
        product = OscarProduct.objects.create(title=title, product_class=books, structure="standalone",
                                              is_public=True)
        ProductCategory.objects.create(product=product, category=fiction)
        StockRecord.objects.create(product=product, partner=partner, partner_sku=f"sku-{product.pk}",
                                   price=Decimal(price), num_in_stock=10)
        made.append(product)
    shopper = get_user_model().objects.create_user(username="ada", email="ada@example.com", password=PASSWORD)
    return {"products": made, "shopper": shopper}


class Browser(requests.Session):
    """A shopper's browser: cookies kept, each form posted with the CSRF token of the page it came from."""

    def __init__(self, base: str):
        super().__init__()
        self.base = base.rstrip("/")

    def page(self, path: str) -> requests.Response:
        answer = self.get(self.base + path, timeout=30)
        assert answer.status_code == 200, (path, answer.status_code)
        return answer

    def submit(self, path: str, form_page: str, **fields) -> requests.Response:
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', self.page(form_page).text)[1]
        answer = self.post(self.base + path, data={"csrfmiddlewaretoken": token, **fields}, timeout=30,
                           headers={"Referer": self.base + form_page})
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:500])
        return answer


def test_a_shoppers_journey_becomes_their_events(live_server, shop):
    trial, dune = shop["products"]
    browser = Browser(live_server.url)

    browser.page(trial.get_absolute_url())  # a visitor, not logged in yet
    browser.submit(f"/basket/add/{trial.pk}/", trial.get_absolute_url(), quantity=1)
    browser.submit(f"/basket/add/{dune.pk}/", dune.get_absolute_url(), quantity=1)
    anonymous = Event.objects.filter(customer__isnull=True)
    assert anonymous.count() == Event.objects.count() and anonymous.values("anonymous_id").distinct().count() == 1
    assert list(anonymous.filter(type="add_to_cart").values_list("product__external_id", flat=True)
                .order_by("occurred_at")) == [str(trial.pk), str(dune.pk)]
    assert anonymous.filter(type="product_view", product__external_id=str(trial.pk)).exists()

    browser.submit("/accounts/login/", "/accounts/login/", **{
        "login-username": "ada@example.com", "login-password": PASSWORD, "login_submit": "Log In"})
    customer = Customer.objects.get(external_id=str(shop["shopper"].pk))
    assert Event.objects.filter(customer__isnull=True).count() == 0  # the visitor's events joined her

    browser.page("/checkout/")
    browser.submit("/checkout/shipping-address/", "/checkout/shipping-address/", first_name="Ada",
                   last_name="Lovelace", line1="12 St James's Square", line4="London", postcode="SW1Y 4JH")
    browser.submit("/checkout/preview/", "/checkout/preview/", action="place_order")
    order = Order.objects.get(user=shop["shopper"])

    kinds = list(Event.objects.filter(customer=customer).order_by("occurred_at", "pk").values_list("type", flat=True))
    assert kinds[0] == "product_view" and kinds.count("add_to_cart") == 2
    assert "checkout_start" in kinds and kinds.count("purchase") == 2
    bought = Event.objects.filter(customer=customer, type="purchase").order_by("price")
    assert [(e.order_id, e.price, e.quantity) for e in bought] == [
        (order.number, Decimal("9.50"), 1), (order.number, Decimal("12.99"), 1)]
    assert {e.product.external_id for e in bought} == {str(trial.pk), str(dune.pk)}
    assert Product.objects.get(external_id=str(trial.pk)).category == "Fiction"

    order.set_status("Shipped")
    order.set_status("Shipped")  # no change, no event
    order.set_status("Delivered")
    assert list(Event.objects.filter(customer=customer, type__in=["order_shipped", "order_delivered"])
                .order_by("occurred_at").values_list("type", "order_id")) == [
        ("order_shipped", order.number), ("order_delivered", order.number)]


@pytest.mark.parametrize(("block", "module"), [("# foresight: settings", "settings.py"),
                                               ("# foresight: oscar settings", "settings.py"),
                                               ("# foresight: oscar urls", "urls.py")])
def test_the_shop_is_set_up_with_the_readmes_lines(readme_block, block, module):
    """The shop under test is the one the README describes: each of its lines is in the shop's own files."""
    written = {line.strip() for line in (Path(__file__).parent / module).read_text().splitlines()}
    wanted = [line.strip() for line in readme_block(block).splitlines()
              if line.strip() and not line.lstrip().startswith("#")]
    assert [line for line in wanted if line not in written] == []
