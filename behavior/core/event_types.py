"""The event vocabulary shared by the API, the importers, the simulator and the features."""

BROWSING = ("page_view", "product_view", "search", "add_to_wishlist")
CART = ("add_to_cart", "remove_from_cart", "checkout_start")
ORDERS = (
    "purchase",
    "order_approved",
    "order_shipped",
    "order_delivered",
    "delivery_delayed",
    "payment_failed",
    "return_requested",
    "refund",
)
FEEDBACK = ("review",)
SUPPORT = ("support_contact",)

EVENT_TYPES = BROWSING + CART + ORDERS + FEEDBACK + SUPPORT

# Fields an event of a type cannot do without.
REQUIRED_FIELDS = {
    **{t: ("product",) for t in ("product_view", "add_to_wishlist", "add_to_cart", "remove_from_cart")},
    **{t: ("order_id",) for t in ORDERS},
    "review": ("rating",),
}
