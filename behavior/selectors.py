from django.db.models import Model

from behavior.models import Customer


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
