from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, Min, Model, Q

from behavior.models import Customer, Event, Product


def customer_export(*, customer: Customer) -> dict:
    """Everything stored about a customer, by model.

    Walks every relation that points at Customer, so data added by later models is
    exported without touching this function (tests check that erase and export cover them).
    """
    data: dict[str, object] = {"customer": _row(Customer, Customer.objects.filter(pk=customer.pk))[0]}
    for relation in Customer._meta.related_objects:
        model = relation.related_model
        rows = model._default_manager.filter(**{relation.field.name: customer}).order_by("pk")
        data[model._meta.label_lower] = _row(model, rows)
    return data


def _row(model: type[Model], queryset) -> list[dict]:
    return list(queryset.values(*(f.attname for f in model._meta.concrete_fields)))


@dataclass(frozen=True)
class ShopOverview:
    customers: int
    products: int
    events_by_type: dict[str, int]
    first_event: datetime | None
    last_event: datetime | None
    orders: int
    late_orders: int
    reviews: int
    bad_reviews: int  # rated 1 or 2


def shop_overview() -> ShopOverview:
    """What the shop's behaviour data holds, in a handful of aggregate queries."""
    by_type = dict(Event.objects.values_list("type").annotate(n=Count("pk")).order_by())
    span = Event.objects.aggregate(first=Min("occurred_at"), last=Max("occurred_at"))
    orders = Event.objects.filter(type="purchase").values("customer", "order_id").distinct().count()
    late = Event.objects.filter(type="delivery_delayed").values("customer", "order_id").distinct().count()
    reviews = Event.objects.filter(type="review").aggregate(all=Count("pk"), bad=Count("pk", filter=Q(rating__lte=2)))
    return ShopOverview(
        customers=Customer.objects.count(),
        products=Product.objects.count(),
        events_by_type=by_type,
        first_event=span["first"],
        last_event=span["last"],
        orders=orders,
        late_orders=late,
        reviews=reviews["all"],
        bad_reviews=reviews["bad"],
    )
