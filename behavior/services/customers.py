from dataclasses import dataclass

from django.db import transaction

from behavior.models import AnonymousLink, Customer, Event


class IdentityConflict(Exception):
    """The anonymous id is already linked to another customer."""


def customer_upsert(*, external_id: str, attributes: dict | None = None, marketing_consent: bool | None = None
                    ) -> tuple[Customer, bool]:
    """Create or update a customer; fields left as None keep their stored value."""
    changes = {}
    if attributes is not None:
        changes["attributes"] = attributes
    if marketing_consent is not None:
        changes["marketing_consent"] = marketing_consent
    return Customer.objects.update_or_create(external_id=external_id, defaults=changes)


@dataclass(frozen=True)
class Identified:
    customer: Customer
    linked_events: int


@transaction.atomic
def customer_identify(*, anonymous_id: str, external_id: str) -> Identified:
    """Tie an anonymous visitor to a customer; their earlier events follow them.

    Identifying the same pair again is harmless. Later events sent with only the
    anonymous id are stored against the customer too (see events_store).
    """
    customer, _ = Customer.objects.get_or_create(external_id=external_id)
    link, _ = AnonymousLink.objects.get_or_create(anonymous_id=anonymous_id, defaults={"customer": customer})
    if link.customer_id != customer.pk:
        raise IdentityConflict(f"anonymous_id {anonymous_id!r} is already linked to another customer.")
    linked = Event.objects.filter(anonymous_id=anonymous_id, customer__isnull=True).update(customer=customer)
    return Identified(customer=customer, linked_events=linked)


def customer_erase(*, customer: Customer) -> dict[str, int]:
    """Delete the customer and everything that points at them; returns counts by model."""
    _, deleted = customer.delete()
    return deleted
