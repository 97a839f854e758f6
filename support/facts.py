"""The concrete facts behind a ticket, and its reasons in plain words. Pure pandas, no database.

`ticket_facts` reads an events frame (the columns of behavior.selectors.events_frame) and finds, for
every customer at once, their latest open order past its promised delivery (as
behavior.core.features counts `orders_open_past_due`: a purchase of the last 90 days, promised before
now, with no delivery event) and their worst bad review of the last 90 days.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pandas as pd

from behavior.core.features import BAD_RATING, OPEN_ORDER_DAYS
from behavior.core.reasons import reasons_sentence
from behavior.core.words import duration_in_words, probability_in_words

FACT_COLUMNS = ["order_id", "days_late", "promised_at", "review_order_id", "rating", "reviewed_at"]


def ticket_facts(events: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """One row per customer with a late order or a review: FACT_COLUMNS, missing values where there is none."""
    now = pd.Timestamp(now).tz_convert("UTC")
    recent = events[(events["occurred_at"] < now) & (events["occurred_at"] >= now - pd.Timedelta(days=OPEN_ORDER_DAYS))
                    & events["customer_id"].notna()]
    delivered = recent.loc[recent["type"] == "order_delivered", ["customer_id", "order_id"]].drop_duplicates()
    purchases = recent[(recent["type"] == "purchase") & recent["order_id"].notna() & (recent["promised_at"] < now)]
    open_ = purchases.merge(delivered, on=["customer_id", "order_id"], how="left", indicator=True)
    open_ = open_[open_["_merge"] == "left_only"]
    # One row per order (an order has a purchase event per item): its first purchase and its promise.
    orders = (open_.groupby(["customer_id", "order_id"], as_index=False)
              .agg(bought_at=("occurred_at", "min"), promised_at=("promised_at", "max")))
    latest = orders.sort_values(["bought_at", "order_id"]).groupby("customer_id").tail(1).set_index("customer_id")
    late = pd.DataFrame({
        "order_id": latest["order_id"].astype(object),
        # Days as the score's reasons count them (feature days_late), said in one rounding (behavior.core.words):
        # 3.25 days is "3.3 days" in the reasons, the storefront's message and the score's reasons alike.
        # Kept to 4 decimals (9 seconds): enough to round the same, short on the ticket's page.
        "days_late": ((now - latest["promised_at"]) / pd.Timedelta(days=1)).round(4),
        "promised_at": latest["promised_at"],
    })
    # The worst bad review of the period, the latest of equals: a kind review written after it takes nothing
    # away from it, and is no worry of its own.
    reviews = recent[(recent["type"] == "review") & (recent["rating"] <= BAD_RATING)]
    review = (reviews.sort_values(["rating", "occurred_at"], ascending=[True, False])
              .groupby("customer_id").head(1).set_index("customer_id"))
    reviewed = pd.DataFrame({
        "review_order_id": review["order_id"].astype(object),
        "rating": review["rating"].astype("Int64"),
        "reviewed_at": review["occurred_at"],
    })
    facts = late.join(reviewed, how="outer")
    facts.index = facts.index.astype(np.int64)
    facts.index.name = "customer_id"
    return facts[FACT_COLUMNS]


def facts_json(facts: pd.DataFrame) -> dict[int, dict]:
    """Each customer's facts as JSON values (strings, integers, ISO times), missing facts left out."""
    return {int(customer_id): _json_values(row) for customer_id, row in facts.to_dict("index").items()}


def _json_values(row: dict) -> dict:
    out = {}
    for name, value in row.items():
        if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
            continue
        if isinstance(value, pd.Timestamp):
            value = value.isoformat()
        elif isinstance(value, (np.integer, int)):
            value = int(value)
        elif isinstance(value, (np.floating, float)):
            value = float(value)
        else:
            value = str(value)
        out[name] = value
    return out


def ticket_reasons(facts: dict, risk: float | None, score_reasons: list[dict]) -> list[str]:
    """Why a ticket was opened, as an agent reads it: the late order, the worst bad review, then the score's reasons."""
    reasons = []
    if "order_id" in facts:
        promised = facts["promised_at"][:10]
        late = duration_in_words(facts["days_late"])
        reasons.append(f"Order {facts['order_id']} is {late} past its promised delivery ({promised}) and not "
                       "delivered yet")
    if "rating" in facts:  # only bad reviews are facts (ticket_facts)
        order = f" for order {facts['review_order_id']}" if "review_order_id" in facts else ""
        reasons.append(f"A bad review: {stars(facts['rating'])}{order} on {facts['reviewed_at'][:10]}")
    if risk is not None:
        because = reasons_sentence(score_reasons)
        reasons.append(f"Support risk {probability_in_words(risk)}" + (f", mostly from {because}" if because else ""))
    return reasons


def stars(n: int) -> str:
    return "1 star" if n == 1 else f"{n} stars"
