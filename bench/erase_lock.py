"""What the erase/ingest lock costs ingestion: events_store with and without it, in one run.

    .venv/bin/python bench/erase_lock.py [--batches N] [--customers C]

Batches of 1,000 events (a storefront's largest) go through `behavior.services.ingest.events_store`
on PostgreSQL, alternating between the real store, which holds each batch's customers with
FOR KEY SHARE (services.ingest._lock_customers), and the same store with that step skipped. Their
ratio is the lock's cost; alternating keeps a busy machine's noise out of it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script, the project root is not on the path

from bench.ingest import database_recreate, django_setup  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/foresight_bench_erase_lock"
BATCH = 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=200, help="batches of 1,000 events per variant (default 200)")
    parser.add_argument("--customers", type=int, default=20_000, help="customers the events name (default 20,000)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    args = parser.parse_args(argv)

    database_recreate(args.database_url)
    django_setup(args.database_url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import numpy as np
    import pandas as pd

    from behavior.core.events import Limits, clean_events, records_frame
    from behavior.services import ingest

    rng = np.random.default_rng(1)
    now = datetime.now(UTC)
    limits = Limits(now=now, max_clock_skew=timedelta(minutes=5), oldest=now - timedelta(days=365),
                    max_properties_bytes=2048)

    def batch() -> pd.DataFrame:
        """A checked batch, as the API hands it to events_store."""
        records = [{"event_id": str(uuid.uuid4()), "type": "product_view", "customer": f"c{customer}",
                    "product": f"sku-{product}", "occurred_at": (now - timedelta(minutes=int(minutes))).isoformat()}
                   for customer, product, minutes in zip(rng.integers(0, args.customers, BATCH),
                                                         rng.integers(0, 500, BATCH), rng.integers(1, 10_000, BATCH),
                                                         strict=True)]
        cleaned = clean_events(records_frame(records)[0], limits)
        assert not cleaned.problems, cleaned.problems[:3]
        return cleaned.frame

    real_lock = ingest._lock_customers
    ingest.events_store(batch())  # warm up: the first batch creates most products
    seconds: dict[str, list[float]] = {"with the lock": [], "without": []}
    for n in range(2 * args.batches):
        variant = "with the lock" if n % 2 == 0 else "without"
        ingest._lock_customers = real_lock if variant == "with the lock" else (lambda cursor: True)
        staged = ingest.events_stage(batch(), vendor="postgresql")
        started = time.perf_counter()
        stored = ingest.events_store(staged)
        seconds[variant].append(time.perf_counter() - started)
        assert len(stored) == BATCH, len(stored)
        if n % 50 == 49:
            print(f"  {n + 1:,} of {2 * args.batches:,} batches", file=sys.stderr)
    ingest._lock_customers = real_lock

    per_event = {variant: 1e6 * statistics.median(s) / BATCH for variant, s in seconds.items()}
    print(f"events_store, batches of {BATCH:,} over {args.customers:,} customers, {args.batches} batches each "
          "(median per batch):")
    for variant, micros in per_event.items():
        print(f"  {variant:14} {micros:6.1f} us an event")
    ratio = per_event["with the lock"] / per_event["without"]
    print(f"  the lock costs {per_event['with the lock'] - per_event['without']:+.1f} us an event: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
