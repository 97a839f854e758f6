"""Oscar's signals, turned into Foresight events through the same checked ingest as the API.

Each receiver stores what it saw in a savepoint of its own and logs what it could not: a problem in
Foresight must never fail the shopper's page or their checkout.
"""

import logging
import uuid
from decimal import Decimal

from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from oscar.apps.basket.signals import basket_addition
from oscar.apps.catalogue.signals import product_viewed
from oscar.apps.checkout.signals import start_checkout
from oscar.apps.order.signals import order_placed, order_status_changed
from oscar.core.loading import get_model

from behavior.models import Customer
from behavior.services.customers import IdentityConflict, customer_identify
from behavior.services.ingest import events_ingest
from behavior.services.products import products_upsert
from foresight_oscar.conf import oscar_settings, promised_at
from foresight_oscar.identity import VISITOR_KEY, category_of, customer_id, product_id, who

logger = logging.getLogger(__name__)

BasketLine = get_model("basket", "Line")
Product = get_model("catalogue", "Product")
StockRecord = get_model("partner", "StockRecord")

# Events that stand for something stored in Oscar get ids derived from it, so that sending one again
# (a status set twice, a signal sent again) stores nothing new.
EVENT_IDS = uuid.UUID("5f0a3c1e-7a64-4d0b-9a55-2f4a1c7e9b10")


def _price(product, request) -> float | None:
    strategy = getattr(request, "strategy", None)
    info = strategy.fetch_for_product(product) if strategy else None
    if info is None or not info.price.exists or not info.price.is_tax_known:
        return None
    return float(info.price.incl_tax)


def _ingest(*records: dict) -> None:
    now = timezone.now().isoformat()
    records = tuple({"event_id": str(uuid.uuid4()), "occurred_at": now, **r} for r in records)
    try:
        with transaction.atomic():  # a savepoint: a failure here leaves the shop's own transaction usable
            report = events_ingest(records=list(records))
    except Exception:
        logger.exception("Oscar events not stored: %s", ", ".join(r["type"] for r in records))
        return
    for rejected in report.rejected:
        logger.warning("Oscar event refused by Foresight's checks: %s", rejected)


@receiver(product_viewed, dispatch_uid="foresight_oscar.product_viewed")
def _product_viewed(sender, product, user, request, **kwargs):
    _ingest({"type": "product_view", **who(user=user, request=request), "product": product_id(product),
             "category": category_of(product), **_known(price=_price(product, request))})


@receiver(basket_addition, dispatch_uid="foresight_oscar.basket_addition")
def _basket_addition(sender, product, user, request, **kwargs):
    _ingest({"type": "add_to_cart", **who(user=user, request=request), "product": product_id(product),
             "category": category_of(product), **_known(price=_price(product, request))})


@receiver(post_delete, sender=BasketLine, dispatch_uid="foresight_oscar.basket_line_removed")
def _basket_line_removed(sender, instance, **kwargs):
    # Only a known customer's own open basket: an anonymous basket's lines are deleted when it is merged into the
    # customer's at login, a submitted basket's stay with its order, and deleting a user deletes their lines
    # too, which must not bring back a customer erased from Foresight.
    basket = instance.basket
    customer = customer_id(basket.owner)
    if customer is None or basket.status != basket.OPEN or not Customer.objects.filter(external_id=customer).exists():
        return
    _ingest({"type": "remove_from_cart", "customer": customer, "product": product_id(instance.product),
             "category": category_of(instance.product), "quantity": instance.quantity})


@receiver(start_checkout, dispatch_uid="foresight_oscar.start_checkout")
def _start_checkout(sender, request, **kwargs):
    _ingest({"type": "checkout_start", **who(request=request)})


@receiver(order_placed, dispatch_uid="foresight_oscar.order_placed")
def _order_placed(sender, order, user, **kwargs):
    customer = customer_id(order.user)
    if customer is None:
        return  # a guest checkout has no customer to learn about
    promised = promised_at(order)
    _ingest(*[
        {"event_id": str(uuid.uuid5(EVENT_IDS, f"{order.number}:{line.pk}:purchase")), "type": "purchase",
         "customer": customer, "order_id": str(order.number), "quantity": line.quantity,
         "price": float(line.unit_price_incl_tax or Decimal(0)), "occurred_at": order.date_placed.isoformat(),
         **_known(promised_at=promised.isoformat() if promised else None), **_of_product(line.product)}
        for line in order.lines.select_related("product__parent").prefetch_related(
            "product__categories", "product__parent__categories")])


@receiver(order_status_changed, dispatch_uid="foresight_oscar.order_status_changed")
def _order_status_changed(sender, order, old_status, new_status, **kwargs):
    customer = customer_id(order.user)
    event_type = oscar_settings.ORDER_STATUS_EVENTS.get(new_status)
    if customer is None or event_type is None:
        return
    _ingest({"event_id": str(uuid.uuid5(EVENT_IDS, f"{order.number}:{new_status}")), "type": event_type,
             "customer": customer, "order_id": str(order.number)})


@receiver(user_logged_in, dispatch_uid="foresight_oscar.user_logged_in")
def _logged_in(sender, request, user, **kwargs):
    """The visitor's events so far, and those still to come under their anonymous id, join the customer."""
    visitor = request.session.get(VISITOR_KEY) if request is not None else None
    if visitor is None:
        return
    try:
        with transaction.atomic():
            customer_identify(anonymous_id=visitor, external_id=customer_id(user))
    except IdentityConflict:  # the browser was someone else's visitor before: start this one afresh
        del request.session[VISITOR_KEY]
    except Exception:
        logger.exception("Oscar login not linked to the visitor's events")


@receiver(post_save, sender=Product, dispatch_uid="foresight_oscar.product_saved")
@receiver(post_save, sender=StockRecord, dispatch_uid="foresight_oscar.stockrecord_saved")
def _product_saved(sender, instance, raw=False, **kwargs):
    if raw:  # fixtures being loaded
        return
    pk = instance.product_id if sender is StockRecord else instance.pk
    # After the commit: Oscar saves stock records as it allocates an order's stock, and a checkout must never
    # wait on Foresight's product rows.
    transaction.on_commit(lambda: _product_store(pk))


def _product_store(pk: int) -> None:
    product = Product.objects.filter(pk=pk).select_related("parent").prefetch_related(
        "categories", "parent__categories").first()
    if product is None:
        return
    stockrecord = product.stockrecords.order_by("pk").first()
    try:
        with transaction.atomic():
            products_upsert(products=[{
                "external_id": product_id(product), "name": product.get_title()[:500],
                "category": category_of(product)[:255], "active": product.is_public,
                **_known(price=stockrecord.price if stockrecord else None)}])
    except Exception:
        logger.exception("Oscar product %s not stored in Foresight", pk)


def _of_product(product) -> dict[str, str]:
    """An order line's product fields; none when the product has since been deleted from the catalogue."""
    return {"product": product_id(product), "category": category_of(product)} if product is not None else {}


def _known(**fields) -> dict:
    return {name: value for name, value in fields.items() if value is not None}
