"""The outreach engine: who a rule reaches and who it holds out, one sequence for every rule that acts on
customers (a campaign's ads and offers, a support rule's proactive tickets).

From the customers a condition matches: drop those the rule already reached, hold out a stable control
group, order the rest by the score the rule ranks by, and stop at the rule's cap. Pure: arrays in, a
Selection out, no database. `outreach_reach` (behavior.services.outreach) then claims the contact budget
and has the rule record what it did, in the rule's transaction; previews and dry runs use the selection
alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

HOLDOUT_HASH_KEY = "foresight-hold-1"  # 16 characters, as pandas' seeded hash wants; changing it reshuffles groups


def in_holdout(rule_key: int | str, customer_ids: np.ndarray, percent: float) -> np.ndarray:
    """A stable split: the same customer is always in or out of a rule's control group."""
    keys = pd.Series(np.asarray(customer_ids, dtype=np.int64)).astype(str) + f":{rule_key}"
    # hash_pandas_object is a fixed, seeded 64-bit hash: stable across processes, unlike hash().
    hashed = pd.util.hash_pandas_object(keys, index=False, hash_key=HOLDOUT_HASH_KEY).to_numpy()
    return (hashed % np.uint64(10_000)) < np.uint64(round(percent * 100))


@dataclass(frozen=True)
class Selection:
    matched: int  # customers the condition matched (with what the rule also asks, such as consent)
    already_reached: int  # of them, reached by the rule before (this period, an open ticket)
    control: np.ndarray  # held out: measured, never reached
    wanted: np.ndarray  # to reach, the highest ranked first, within the cap
    over_cap: int  # treated past the cap


def select(*, ids: np.ndarray, mask: np.ndarray | None = None, reached: Iterable[int] = (), rule_key: int | str,
           holdout_percent: float = 0.0, rank: pd.Series | None = None, cap: int | None = None) -> Selection:
    """Who of `ids` (those `mask` keeps) the rule would reach now, ranked by `rank` (by customer id, higher
    first; unranked last)."""
    matched = np.asarray(ids, dtype=np.int64)
    if mask is not None:
        matched = matched[mask]
    fresh = np.setdiff1d(matched, np.fromiter(reached, np.int64))
    control = in_holdout(rule_key, fresh, holdout_percent) if holdout_percent else np.zeros(len(fresh), bool)
    treatment = fresh[~control]
    if rank is not None:
        order = rank.reindex(treatment).to_numpy(np.float64, na_value=-np.inf)
        treatment = treatment[np.argsort(-order, kind="stable")]
    room = len(treatment) if cap is None else max(cap, 0)
    return Selection(matched=len(matched), already_reached=len(matched) - len(fresh), control=fresh[control],
                     wanted=treatment[:room], over_cap=max(len(treatment) - room, 0))


@dataclass
class Outcome:
    """What one rule did in one evaluation."""

    rule: int  # the campaign's or support rule's id
    matched: int
    already_reached: int
    control: int  # held out this time
    reached: int  # assigned, ticketed: each with a contact claimed
    out_of_budget: int  # wanted, but the customer's contact budget was spent
    over_cap: int

    @classmethod
    def of(cls, rule: int, selection: Selection, reached: int) -> Outcome:
        return cls(rule=rule, matched=selection.matched, already_reached=selection.already_reached,
                   control=len(selection.control), reached=reached, out_of_budget=len(selection.wanted) - reached,
                   over_cap=selection.over_cap)

    @classmethod
    def nothing(cls, rule: int) -> Outcome:
        return cls(rule, 0, 0, 0, 0, 0, 0)
