"""Proactive support on Olist: would the tickets have reached customers before their bad reviews?

    .venv/bin/python bench/support.py        # or: make bench-support

The support-risk model (XGBoost, behavior.core.training.train) is trained on the Olist sample (sample_4000_orders, CC
BY-NC-SA 4.0) at cutoffs 14 days apart from 2017-01-15: the 6 newest before a gap of one horizon stop the boosting,
the older ones are fitted; its operating threshold is the one training chooses (best F1 on the early-stopping
cutoffs). Its rows are every customer active before a cutoff, as the rules below see them. Then the test period is
replayed day by day, as if scoring ran every midnight (UTC): each day every customer active before it is scored, and
each rule, compiled by behavior.conditions as the app compiles it, opens a ticket for the customers it matches that
have had no ticket of it in the 14 days before (the rule's dedupe window). Tickets are measured against the bad
reviews (1 or 2 stars) customers wrote:

- precision: the share of tickets followed by a bad review of the customer within 14 days;
- reached first: bad reviews written within 14 days after a ticket of the customer, and recall, their share of all
  bad reviews written in the period; lead: the median days from the ticket to the review.

The rules, in the same run: support risk at the threshold and an order past its promised delivery (the demo rule),
support risk at the threshold alone, and the baseline "an order is late" alone (an order past its promised delivery
and not delivered). Ratios are to the baseline. Pure pandas and XGBoost, no database; about half a minute on 2 cores.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script, the project root is not on the path
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")  # conditions import the models; no queries

import django  # noqa: E402

django.setup()

from behavior.conditions import feature_columns, parse  # noqa: E402
from behavior.core.features import (  # noqa: E402
    BAD_RATING,
    build_features,
    build_labels,
    default_targets,
    events_for_features,
)
from behavior.core.importers import read_olist  # noqa: E402
from behavior.core.training import predict, train  # noqa: E402
from bench._common import DATASETS, read_source  # noqa: E402

WINDOW = pd.Timedelta(days=14)  # dedupe window of a rule, and how long after a ticket a bad review counts
TEST_FROM = pd.Timestamp("2018-05-15", tz="UTC")  # the replay of daily scoring starts here


LATE = {"field": "feature.orders_open_past_due", "op": "gte", "value": 1}


def rules(threshold: float) -> dict[str, dict]:
    risky = {"field": "score.support_risk", "op": "gte", "value": threshold}
    return {
        "risk >= threshold and an order late": {"all": [risky, LATE]},
        "risk >= threshold": risky,
        "an order is late (baseline)": LATE,
    }


@dataclass
class Outcome:
    tickets: int
    hits: int  # tickets followed by a bad review within the window
    reached: int  # bad reviews written within the window after a ticket of the customer
    lead_days: float  # median days from ticket to the bad review it reached first


class Frames:
    """Features per cutoff of every customer active before it, computed once."""

    def __init__(self, events: pd.DataFrame):
        self.events, self.cache = events, {}

    def features(self, cutoff: pd.Timestamp) -> pd.DataFrame:
        if cutoff not in self.cache:
            x = build_features(self.events, cutoff)
            self.cache[cutoff] = x[x["days_since_event"].notna()]
        return self.cache[cutoff]

    def stack(self, cutoffs: list[pd.Timestamp], target) -> tuple[pd.DataFrame, np.ndarray]:
        xs = [self.features(c) for c in cutoffs]
        ys = [build_labels(self.events, c, target, customer_ids=x.index).to_numpy()
              for c, x in zip(cutoffs, xs, strict=True)]
        return pd.concat(xs), np.concatenate(ys)


def trained_model(frames: Frames, events: pd.DataFrame):
    """XGBoost for support risk with the threshold training chose; a gap of one horizon before the test."""
    target = default_targets()["support_risk"]
    as_of = events["occurred_at"].max()
    cutoffs = list(pd.date_range(pd.Timestamp("2017-01-15", tz="UTC"), as_of - target.horizon, freq="14D"))
    before = [c for c in cutoffs if c <= TEST_FROM - 2 * target.horizon]
    stop = before[-6:]
    fit = [c for c in before if c <= stop[0] - 2 * target.horizon]
    return train(*frames.stack(fit, target), *frames.stack(stop, target), stop_on_valid=True)


def replay(frames: Frames, booster, conditions: dict, days: pd.DatetimeIndex) -> dict[str, pd.DataFrame]:
    """Tickets (customer_id, opened_at) each rule opens when scoring runs every day."""
    opened: dict[str, list[pd.DataFrame]] = {name: [] for name in conditions}
    last: dict[str, pd.Series] = {name: pd.Series(dtype="datetime64[ns, UTC]") for name in conditions}
    for day in days:
        X = frames.features(day)
        frame = feature_columns(X, [f for c in conditions.values() for f in c.fields]).assign(
            **{"score.support_risk": predict(booster, X)})
        for name, condition in conditions.items():
            ids = X.index[condition.mask(frame, day.to_pydatetime())]
            before = last[name].reindex(ids)
            fresh = ids[~(before > day - WINDOW).to_numpy()]
            last[name] = pd.concat([last[name].drop(fresh, errors="ignore"), pd.Series(day, index=fresh)])
            opened[name].append(pd.DataFrame({"customer_id": fresh, "opened_at": day}))
    return {name: pd.concat(parts, ignore_index=True) for name, parts in opened.items()}


def measure(tickets: pd.DataFrame, bad: pd.DataFrame) -> Outcome:
    """Pair each ticket with the customer's bad reviews in the window after it."""
    pairs = tickets.merge(bad, on="customer_id")
    pairs = pairs[(pairs["reviewed_at"] >= pairs["opened_at"]) & (pairs["reviewed_at"] < pairs["opened_at"] + WINDOW)]
    first = pairs.sort_values("opened_at").drop_duplicates("review")  # a review is reached by its earliest ticket
    lead = ((first["reviewed_at"] - first["opened_at"]) / pd.Timedelta(days=1)).median()
    return Outcome(len(tickets), pairs.drop_duplicates(["customer_id", "opened_at"]).shape[0], len(first),
                   float(lead) if len(first) else float("nan"))


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "-"


def main() -> None:
    started = time.perf_counter()
    events = events_for_features(read_source(read_olist(DATASETS / "olist" / "sample_4000_orders")))
    frames = Frames(events)
    model = trained_model(frames, events)
    days = pd.date_range(TEST_FROM, events["occurred_at"].max().normalize() - WINDOW, freq="1D")
    conditions = {name: parse(tree) for name, tree in rules(model.threshold).items()}
    tickets = replay(frames, model.booster, conditions, days)

    reviews = events[(events["type"] == "review") & (events["rating"] <= BAD_RATING).fillna(False)]
    bad = reviews[(reviews["occurred_at"] >= days[0]) & (reviews["occurred_at"] < days[-1] + pd.Timedelta(days=1))]
    bad = pd.DataFrame({"customer_id": bad["customer_id"].to_numpy(), "reviewed_at": bad["occurred_at"].to_numpy(),
                        "review": np.arange(len(bad))})
    outcomes = {name: measure(t, bad) for name, t in tickets.items()}
    base = outcomes["an order is late (baseline)"]

    print(f"Olist sample_4000_orders: {events['customer_id'].nunique():,} customers; daily scoring from "
          f"{days[0]:%Y-%m-%d} to {days[-1]:%Y-%m-%d} ({len(days)} runs); {len(bad):,} bad reviews written then; "
          f"support-risk threshold {model.threshold:.3f} (best F1 on the early-stopping cutoffs), "
          f"{model.best_iteration + 1} trees; {time.perf_counter() - started:.0f} s\n")
    header = (f"{'rule':38} {'tickets':>8} {'precision':>10} {'reached first':>14} {'recall':>7} {'lead days':>10}"
              f"   {'vs baseline: tickets':>20} {'precision':>10} {'reached':>8}")
    print(header)
    print("-" * len(header))
    for name, o in outcomes.items():
        precision = o.hits / o.tickets if o.tickets else float("nan")
        base_precision = base.hits / base.tickets if base.tickets else float("nan")
        print(f"{name:38} {o.tickets:8,} {precision:10.1%} {o.reached:14,} {o.reached / len(bad):7.1%} "
              f"{o.lead_days:10.1f}   {ratio(o.tickets, base.tickets):>20} {ratio(precision, base_precision):>10} "
              f"{ratio(o.reached, base.reached):>8}")


if __name__ == "__main__":
    main()
