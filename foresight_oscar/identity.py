"""Who did it and to what. An Oscar user is the Foresight customer of the same id (the user's primary key),
an Oscar product the Foresight product of the same id; a visitor not logged in is an anonymous id kept in
their session, tied to the customer when they log in or register."""

import uuid

VISITOR_KEY = "foresight_visitor"


def customer_id(user) -> str | None:
    """The Foresight customer id of an Oscar user (their primary key); None for a visitor not logged in."""
    return str(user.pk) if user is not None and user.is_authenticated else None


def visitor_id(request) -> str:
    """This browser's anonymous id, made on its first event. It lives in the session, whose data Django keeps
    when the session key changes at login, so the login can still name it."""
    return request.session.setdefault(VISITOR_KEY, uuid.uuid4().hex)


def who(*, user=None, request=None) -> dict[str, str]:
    """The event fields naming who did it: the customer, else the visitor of the request, else nobody."""
    if (customer := customer_id(user if user is not None else getattr(request, "user", None))) is not None:
        return {"customer": customer}
    return {"anonymous_id": visitor_id(request)} if request is not None else {}


def product_id(product) -> str:
    return str(product.pk)


def category_of(product) -> str:
    """The name of the product's first category (a variant's: its parent's); one query, none when prefetched."""
    category = next(iter((product.parent or product).categories.all()), None)
    return category.name if category else ""
