from behavior.models import Product

UPDATABLE = ("name", "category", "brand", "price", "active")


def products_upsert(*, products: list[dict]) -> int:
    """Create or replace products by external id in one statement; omitted fields take their defaults."""
    Product.objects.bulk_create(
        [Product(**item) for item in products],
        update_conflicts=True,
        unique_fields=["external_id"],
        update_fields=[*UPDATABLE, "updated_at"],
    )
    return len(products)
