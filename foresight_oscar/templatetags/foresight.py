"""Foresight in Oscar's templates: `{% load foresight %}`, then `{% foresight_placements "home" %}` for the ads
and offers of the logged-in customer in a slot, and `{% foresight_help %}` for their help messages."""

from django import template
from oscar.core.loading import get_model

from behavior.models import Customer
from campaigns.actions.base import shop_currency
from campaigns.services import placements_show
from foresight_oscar.identity import customer_id, product_id
from support.selectors import help_messages

register = template.Library()
Product = get_model("catalogue", "Product")


@register.inclusion_tag("foresight_oscar/placements.html", takes_context=True)
def foresight_placements(context, slot: str) -> dict:
    """Each shown placement counts an impression, as the API's do; a visitor not logged in sees none."""
    customer = customer_id(context["request"].user)
    try:
        placements = placements_show(customer_external_id=customer, slot=slot) if customer else []
    except Customer.DoesNotExist:
        placements = []
    # An ad's products carry Foresight's ids, which are Oscar's (foresight_oscar.identity); shown from Oscar's
    # catalogue, with the reason each was picked.
    wanted = {item["product"] for placement in placements for item in placement.products}
    products = {product_id(p): p for p in Product.objects.filter(pk__in=[w for w in wanted if w.isdigit()],
                                                                  is_public=True)}
    shown = [{"placement": placement, "products": [{"product": products[item["product"]], "why": item.get("why", "")}
                                                   for item in placement.products if item["product"] in products]}
             for placement in placements]
    return {"placements": shown, "slot": slot, "currency": shop_currency()}


@register.inclusion_tag("foresight_oscar/help.html", takes_context=True)
def foresight_help(context) -> dict:
    customer = customer_id(context["request"].user)
    found = Customer.objects.filter(external_id=customer).first() if customer else None
    return {"messages": help_messages(customer=found) if found else []}
