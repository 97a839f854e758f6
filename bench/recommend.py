"""Recommendation benchmark: hit rate at 10 on the next purchases, each strategy beside the popularity baseline.

    .venv/bin/python bench/recommend.py [--customers N] [--days D] [--window W]

A time split: `campaigns.recommend.recommend` sees only the events before a cutoff and fills 10 slots for every
customer active before it; held out are the customers who buy in the `--window` days after it. A customer is a hit
when any of their 10 products is among those they bought then (second column: added to the cart or bought). Beside
each hit rate, its 95% Wilson interval and its ratio to popularity's, measured in the same run on the same
customers, so the ratios carry over between machines; the seconds and customers/s are those of one `recommend`
call for all active customers (the shared work, popularity and co-occurrence, included).

- Taobao UserBehavior prefix (Tianchi research terms; 814 complete users, 55,000 products, 9 days Beijing time):
  cutoff 2017-12-02 00:00, so 7 days of history and the last 2 days held out.
- A simulated shop (foresight_demo.simulation; --customers over --days, 5,000 products), cutoff `--window` days before
  its end: the scale figure. Its shoppers pick products by category and popularity and do not come back to a
  product they looked at, so popularity is hard to beat there and recently viewed has little to find.

Pure pandas, no database; about 1 minute on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script, the project root is not on the path
DATASETS = ROOT.parent / "shared" / "datasets"  # beside the checkout

from behavior.core.features import events_for_features  # noqa: E402
from behavior.core.importers import read_taobao  # noqa: E402
from bench._common import machine_facts, number  # noqa: E402
from bench.accuracy import read_source  # noqa: E402
from campaigns.recommend import STRATEGIES, recommend  # noqa: E402
from foresight_demo.simulation import simulate_block, simulate_catalogue  # noqa: E402

K = 10
Z = 1.959964  # two-sided 95%
SIM_END = datetime(2026, 1, 1, tzinfo=UTC)
TAOBAO_CUTOFF = pd.Timestamp("2017-12-02", tz="Asia/Shanghai").tz_convert("UTC")
BASELINE = "popularity"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000, help="simulated customers")
    parser.add_argument("--days", type=int, default=60, help="simulated days")
    parser.add_argument("--window", type=int, default=2, help="days after the cutoff whose purchases are held out")
    args = parser.parse_args()
    m = {key: value for key, value in machine_facts({"server_version": None}).items()
         if not key.startswith("postgresql")}  # no database in this benchmark
    print(f"machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, load {m['load']} at start; "
          f"Python {m['python']}, pandas {pd.__version__}, numpy {np.__version__}")
    window = pd.Timedelta(days=args.window)

    started = time.perf_counter()
    raw = read_source(read_taobao(DATASETS / "taobao_userbehavior_prefix" / "UserBehavior_prefix.csv"))
    taobao = events_for_features(raw[raw["customer"] != "100370"])  # the prefix cuts this user's history short
    print(f"taobao prefix: {len(taobao):,} events read in {time.perf_counter() - started:.1f} s")
    evaluate(f"taobao prefix, cutoff {TAOBAO_CUTOFF:%Y-%m-%d %H:%M} UTC", taobao, TAOBAO_CUTOFF, window)

    started = time.perf_counter()
    shop = simulate_block(seed=5, block=0, first_customer=0, customers=args.customers, days=args.days, end=SIM_END,
                          catalogue=simulate_catalogue(seed=5, products=5_000))
    simulated = events_for_features(shop.events)
    print(f"\nsimulated {args.customers:,} customers over {args.days} days: {len(simulated):,} events "
          f"in {time.perf_counter() - started:.1f} s")
    evaluate(f"simulated shop, cutoff {args.window} days before its end", simulated,
             pd.Timestamp(SIM_END) - window, window)


def evaluate(label: str, events: pd.DataFrame, cutoff: pd.Timestamp, window: pd.Timedelta) -> None:
    """One line per strategy: hit rates at K on the held-out buyers, beside the baseline's, and the time taken."""
    after = events[events["occurred_at"].ge(cutoff) & events["occurred_at"].lt(cutoff + window)]
    held_out = {
        "purchase": after[after["type"].eq("purchase")],
        "cart/purchase": after[after["type"].isin(["add_to_cart", "purchase"])],
    }
    active = np.unique(events.loc[events["occurred_at"].lt(cutoff), "customer_id"].to_numpy(np.int64))
    buyers = np.intersect1d(held_out["purchase"]["customer_id"].to_numpy(np.int64), active)
    print(f"{label}: {len(active):,} active customers, {len(buyers):,} of them buy in the {window.days} days after")

    results = {}
    for strategy in STRATEGIES:
        started = time.perf_counter()
        slots = recommend(events, cutoff, k=K, strategy=strategy)
        seconds = time.perf_counter() - started
        results[strategy] = ({name: hits(slots, found, buyers) for name, found in held_out.items()}, seconds)

    header = f"{'strategy':18}" + "".join(f"{'hit@10 ' + name + ' [95%]':>30}{'x ' + BASELINE:>14}"
                                          for name in held_out) + f"{'seconds':>9}{'customers/s':>13}"
    print(header)
    print("-" * len(header))
    for strategy, (hit, seconds) in results.items():
        line = f"{strategy:18}"
        for name, (rate, low, high) in hit.items():
            baseline = results[BASELINE][0][name][0]
            ratio = f"{rate / baseline:.2f}" if baseline > 0 else "n/a (0)"
            line += f"{rate:>16.1%} [{low:5.1%}, {high:5.1%}]{ratio:>14}"
        print(f"{line}{seconds:9.2f}{number(len(active) / seconds):>13}")
    rate, _, high = results[BASELINE][0]["purchase"]
    if rate == 0:
        print(f"n/a: {BASELINE} recommended no buyer a product they bought, so there is no ratio; "
              f"its hit rate is below {high:.1%} (95%)")


def hits(slots: pd.DataFrame, found: pd.DataFrame, buyers: np.ndarray) -> tuple[float, float, float]:
    """The share of `buyers` with a recommended product among their `found` events, and its Wilson interval."""
    found = found[["customer_id", "product_id"]].dropna().astype("int64").drop_duplicates()
    matched = slots.merge(found, on=["customer_id", "product_id"])
    return wilson(len(np.intersect1d(matched["customer_id"], buyers)), len(buyers))


def wilson(successes: int, n: int) -> tuple[float, float, float]:
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    p = successes / n
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z * np.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2)) / (1 + Z**2 / n)
    return p, centre - half, centre + half


if __name__ == "__main__":
    main()
