"""Filling the database with a simulated shop, block by block.

Each block of customers is generated (foresight_demo.simulation), its customers are upserted, and its
events go through the same checks and the same bulk store as every other source. Memory is
bounded by the block, not by the number of customers. Re-running with the same arguments
stores nothing new: event ids come from the seed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from behavior.conf import foresight_settings
from behavior.core.events import Limits, clean_events
from behavior.services.customers import customers_bulk_upsert
from behavior.services.ingest import events_store
from behavior.services.products import products_upsert
from foresight_demo.simulation import simulate_block, simulate_catalogue

# 25,000 customers x 90 days is ~250,000 events; the whole process peaks at ~0.6 GB RSS.
BLOCK_CUSTOMERS = 25_000
UPSERT_BATCH = 5_000


class SimulationError(Exception):
    """The simulated events failed the checks every event must pass: a bug in the simulator."""


@dataclass
class SimulationReport:
    customers: int = 0
    products: int = 0
    events_generated: int = 0
    events_stored: int = 0
    seconds: float = 0.0


def shop_simulate(*, customers: int, days: int, seed: int, end: datetime | None = None, products: int = 5_000,
                  block_customers: int = BLOCK_CUSTOMERS,
                  on_block: Callable[[SimulationReport], None] | None = None) -> SimulationReport:
    """Simulate `customers` customers over the `days` days up to `end` (default now) and store everything.

    The same seed, counts and block size give the same events; `on_block` hears the running totals.
    """
    started = time.monotonic()
    now = timezone.now()
    end = end or now
    if customers < 1 or days < 1 or products < 1 or block_customers < 1:
        raise ValueError("customers, days, products and the block size must be at least 1.")
    if end > now + foresight_settings.MAX_CLOCK_SKEW:
        raise ValueError("end must not be in the future.")

    catalogue = simulate_catalogue(seed=seed, products=products)
    rows = catalogue.assign(price=catalogue["price"].map("{:.2f}".format))
    rows = rows[["external_id", "name", "category", "brand", "price"]].to_dict("records")
    for first in range(0, len(rows), UPSERT_BATCH):
        products_upsert(products=rows[first:first + UPSERT_BATCH])
    report = SimulationReport(products=products)

    for block, first in enumerate(range(0, customers, block_customers)):
        simulated = simulate_block(seed=seed, block=block, first_customer=first,
                                   customers=min(block_customers, customers - first), days=days, end=end,
                                   catalogue=catalogue)
        customers_bulk_upsert(customers=simulated.customers)
        limits = Limits(now=timezone.now(), max_clock_skew=foresight_settings.MAX_CLOCK_SKEW)
        cleaned = clean_events(simulated.events, limits)
        if cleaned.problems or len(cleaned.repeated):
            raise SimulationError(f"{len(cleaned.problems)} problems, e.g. {cleaned.problems[:3]}; "
                                  f"{len(cleaned.repeated)} repeated ids")
        report.customers += len(simulated.customers)
        report.events_generated += len(cleaned.frame)
        report.events_stored += len(events_store(cleaned.frame))
        report.seconds = time.monotonic() - started
        if on_block:
            on_block(report)
    return report
