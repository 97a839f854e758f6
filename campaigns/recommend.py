"""Products for personalized ads: k slots per customer, from an events frame at a point in time.

Pure pandas and NumPy, no database. Only events strictly before `as_of` count: product views,
wishlist and cart adds, and purchases (the events frame's columns are those of
`behavior.core.features`). Each slot names the strategy that filled it, so an ad can say why:

- `recently_viewed`: products the customer looked at in the last RECENT_DAYS and has not bought
  since, most recent first;
- `co_occurrence`: neighbours of the customer's most recent products, by the cosine of how many
  customers had both among their HISTORY latest products;
- `category_affinity`: the customer's recency-weighted interest per category times each
  product's share of its category's popularity;
- `popularity`: the products most customers showed interest in lately, the same for everyone.

`blend` lets the first three take turns at the slots (each one's best product, then each one's
second, ...), skipping products already chosen, and tops up from popularity, so every customer
gets k products when the shop has that many.
A product the customer bought and has not looked at since is never recommended.

Everything is computed for all customers at once: a customer's (customer, product) interactions
are one row of a pairs table, and each strategy is array arithmetic over those rows. Customers
are taken BATCH at a time, so the candidate arrays stay bounded (about 100 rows per customer).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

import numpy as np
import pandas as pd

BLEND = ("recently_viewed", "co_occurrence", "category_affinity")  # in the order of their turns; then popularity
SOURCES_OF_SLOTS = (*BLEND, "popularity")  # what the output's strategy column can say
# Each strategy in a campaign manager's words (an ad's choice, and why a product is in it).
STRATEGIES = {
    "blend": "best available (viewed, then similar, then category favourites)",
    "recently_viewed": "recently viewed and not bought",
    "category_affinity": "favourite categories' popular products",
    "co_occurrence": "often viewed or bought together",
    "popularity": "popular now",
}

# How much an event says about interest in its product; other event types are ignored.
INTEREST = {"product_view": 1.0, "add_to_wishlist": 2.0, "add_to_cart": 3.0, "purchase": 4.0}
RECENT_DAYS = 30  # recently viewed: older looks are not "recent" in an ad
AFFINITY_HALF_LIFE_DAYS = 14  # an event's weight in category affinity halves every two weeks
POPULARITY_HALF_LIFE_DAYS = 3  # popularity is what customers look at this week, not last season
TOP_CATEGORIES = 3  # a customer's categories that category_affinity draws from
HISTORY = 20  # a customer's latest products that count for co-occurrence: at most 190 pairs per customer
SOURCES = 5  # a customer's latest products whose neighbours are recommended
NEIGHBOURS = 20  # kept per product
BATCH = 100_000  # customers at a time


def recommend(
    events: pd.DataFrame,
    as_of: datetime,
    *,
    k: int = 10,
    strategy: str = "blend",
    customer_ids: Iterable[int] | None = None,
    products: Iterable[int] | None = None,
) -> pd.DataFrame:
    """Up to k products per customer: columns customer_id, rank (1..k), product_id, strategy.

    Customers are `customer_ids` (the campaign audience; customers without history get popular
    products), or everyone with an event before `as_of`. `products`, when given, are the only
    products that may be recommended (the active ones). A single strategy may fill fewer than
    k slots; `blend` and `popularity` fill k when there are k products the customer has not bought.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    if k < 1:
        raise ValueError("k must be at least 1")
    shop = _Shop(events, _utc(as_of), products, depth=2 * k)
    targets = shop.active_customers if customer_ids is None else np.unique(np.fromiter(customer_ids, np.int64))
    frames = [_recommend_batch(shop, targets[start : start + BATCH], k, strategy)
              for start in range(0, len(targets), BATCH)]
    if not frames:
        return _tidy(*[np.empty(0, np.int64)] * 4)
    return pd.concat(frames, ignore_index=True)


@dataclass
class _Pairs:
    """One row per (customer, product) interaction, grouped by customer and latest first."""

    row: np.ndarray  # the customer: a code in the shop, or a row of the batch
    product: np.ndarray  # product code
    looked: np.ndarray  # days since the last view, wishlist or cart add; NaN if none
    bought: np.ndarray  # bought, and not looked at since
    interest: np.ndarray  # INTEREST weights of its events, halved every AFFINITY_HALF_LIFE_DAYS
    recency: np.ndarray  # 0 for the customer's latest product, 1 for the one before, ...

    def take(self, index: np.ndarray, row: np.ndarray) -> _Pairs:
        return _Pairs(row, self.product[index], self.looked[index], self.bought[index], self.interest[index],
                      self.recency[index])


class _Shop:
    """What all customers share: products, their popularity and neighbours, and everyone's pairs."""

    def __init__(self, events: pd.DataFrame, as_of: pd.Timestamp, products: Iterable[int] | None, depth: int):
        before = (events["occurred_at"] < as_of).to_numpy() & events["customer_id"].notna().to_numpy()
        self.active_customers = np.unique(events["customer_id"].to_numpy(np.int64, na_value=-1)[before])
        weights = np.array(list(INTEREST.values()))
        kind = pd.Index(list(INTEREST)).get_indexer(events["type"])
        useful = before & (kind >= 0) & events["product_id"].notna().to_numpy()
        e = events[useful]
        weight = weights[kind[useful]]
        customer = e["customer_id"].to_numpy(np.int64)
        product = e["product_id"].to_numpy(np.int64)
        age = ((as_of - e["occurred_at"]) / pd.Timedelta(days=1)).to_numpy(np.float64)

        wanted = None if products is None else np.unique(np.fromiter(products, np.int64))
        self.product_ids = np.unique(product if wanted is None else np.concatenate([product, wanted]))
        self.allowed = np.ones(len(self.product_ids), bool) if wanted is None else np.isin(self.product_ids, wanted)
        self.customer_ids = np.unique(customer)
        product = np.searchsorted(self.product_ids, product)
        customer = np.searchsorted(self.customer_ids, customer)
        self.pairs, self.popularity = self._pairs(customer, product, age, weight)
        self.pair_start = np.searchsorted(self.pairs.row, np.arange(len(self.customer_ids) + 1))
        allowed = np.flatnonzero(self.allowed)
        self.popular = allowed[np.argsort(-self.popularity[allowed], kind="stable")]  # ties: lower code first

        self.category, self.category_products, self.category_share = self._categories(e["category"], product, age,
                                                                                        depth)

    def key(self, row: np.ndarray, product: np.ndarray) -> np.ndarray:
        return row.astype(np.int64) * len(self.product_ids) + product

    def _pairs(self, customer, product, age, weight) -> tuple[_Pairs, np.ndarray]:
        """The pairs table, and each product's popularity."""
        purchase = weight == INTEREST["purchase"]
        events = pd.DataFrame({
            "pair": self.key(customer, product),
            "looked": np.where(purchase, np.nan, age),
            "bought": np.where(purchase, age, np.nan),
            "interest": weight * 0.5 ** (age / AFFINITY_HALF_LIFE_DAYS),
            "strength": weight,
        })
        pairs = events.groupby("pair").agg(looked=("looked", "min"), bought=("bought", "min"),
                                           interest=("interest", "sum"), strength=("strength", "max"))
        key = pairs.index.to_numpy()
        looked, bought = pairs["looked"].to_numpy(), pairs["bought"].to_numpy()
        latest = np.fmin(looked, bought)
        row, product = key // len(self.product_ids), key % len(self.product_ids)
        # Popularity counts each customer once per product, with their strongest interest in it.
        popularity = np.bincount(product, pairs["strength"].to_numpy() * 0.5 ** (latest / POPULARITY_HALF_LIFE_DAYS),
                                 minlength=len(self.product_ids))
        order = np.lexsort((latest, row))
        row = row[order]
        bought_since = bought <= np.nan_to_num(looked, nan=np.inf)  # a tie counts as bought
        return _Pairs(row, product[order], looked[order], bought_since[order], pairs["interest"].to_numpy()[order],
                      _positions(row)), popularity

    def _categories(self, category: pd.Series, product: np.ndarray, age: np.ndarray, depth: int):
        """Each product's latest category; each category's `depth` most popular allowed products and their share."""
        codes, names = pd.factorize(category)
        latest = pd.DataFrame({"product": product, "category": codes, "age": age})
        latest = latest[latest["category"] >= 0].sort_values("age", kind="stable").drop_duplicates("product")
        of_product = np.full(len(self.product_ids), -1)
        of_product[latest["product"].to_numpy()] = latest["category"].to_numpy()
        known = of_product >= 0
        total = np.bincount(of_product[known], self.popularity[known], minlength=len(names))
        ranked = self.popular[of_product[self.popular] >= 0]
        ranked = ranked[np.argsort(of_product[ranked], kind="stable")]  # by category, most popular first
        top = _padded(of_product[ranked], ranked, len(names), depth)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(top >= 0, self.popularity[top] / total[:, None], 0.0)
        return of_product, top, np.nan_to_num(share)

    @cached_property
    def neighbours(self) -> tuple[np.ndarray, np.ndarray]:
        """Each product's NEIGHBOURS allowed products with the highest cosine of co-occurrence, best first.

        Computed when co_occurrence asks: most of the shared work for it.
        """
        n = len(self.product_ids)
        recent = self.pairs.recency < HISTORY
        history = _padded(self.pairs.row[recent], self.pairs.product[recent], len(self.customer_ids), HISTORY)
        first, second = np.triu_indices(HISTORY, 1)
        counted = []
        for start in range(0, len(history), BATCH):
            rows = history[start : start + BATCH]
            i, j = rows[:, first], rows[:, second]
            both = j >= 0  # histories fill from the left, so a second product means a first one
            key = np.minimum(i, j)[both].astype(np.int64) * n + np.maximum(i, j)[both]
            counted.append(pd.Series(key).value_counts())
        together = pd.concat(counted).groupby(level=0).sum() if counted else pd.Series(dtype=np.int64)
        key = together.index.to_numpy(np.int64)
        low, high = key // n, key % n
        customers = np.bincount(history[history >= 0], minlength=n)
        cosine = together.to_numpy() / np.sqrt(customers[low] * customers[high])
        source, target = np.concatenate([low, high]), np.concatenate([high, low])
        cosine = np.concatenate([cosine, cosine])
        keep = self.allowed[target]
        source, target, cosine = _top(source[keep], target[keep], cosine[keep], NEIGHBOURS)
        return (_padded(source, target, n, NEIGHBOURS),
                _padded(source, cosine, n, NEIGHBOURS, fill=0.0))

    def pairs_of(self, ids: np.ndarray) -> _Pairs:
        """The pairs of these customers, with `row` their position in `ids`."""
        known = np.isin(ids, self.customer_ids)
        rows, code = np.flatnonzero(known), np.searchsorted(self.customer_ids, ids[known])
        counts = self.pair_start[code + 1] - self.pair_start[code]
        index = np.repeat(self.pair_start[code] - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        return self.pairs.take(index, np.repeat(rows, counts))


def _recommend_batch(shop: _Shop, ids: np.ndarray, k: int, strategy: str) -> pd.DataFrame:
    pairs = shop.pairs_of(ids)
    blocked = shop.key(pairs.row[pairs.bought], pairs.product[pairs.bought])
    names = BLEND if strategy == "blend" else (strategy,)
    found = [(SOURCES_OF_SLOTS.index(name), *_STRATEGIES[name](shop, pairs, blocked, k))
             for name in names if name != "popularity"]
    none = np.empty(0, np.int64)
    source = np.concatenate([np.full(len(rows), code) for code, rows, _ in found] + [none])
    row = np.concatenate([rows for _, rows, _ in found] + [none])
    product = np.concatenate([products for *_, products in found] + [none])
    turn = np.concatenate([_positions(rows) for _, rows, _ in found] + [none])
    # The strategies take turns (each one's best, then each one's second, ...); a product a customer
    # already got is skipped. Turns beat filling from recently viewed first: 19% against 15% hits on
    # the simulated shop, where customers rarely come back to a product, and 15% either way on Taobao.
    order = np.lexsort((source, turn, row))
    source, row, product = source[order], row[order], product[order]
    first = np.sort(np.unique(shop.key(row, product), return_index=True)[1])
    source, row, product = source[first], row[first], product[first]
    slot = _positions(row) < k
    source, row, product = source[slot], row[slot], product[slot]

    if strategy in ("blend", "popularity"):
        need = k - np.bincount(row, minlength=len(ids))
        extra_row, extra_product = _popular(shop, need, np.concatenate([blocked, shop.key(row, product)]))
        source = np.concatenate([source, np.full(len(extra_row), SOURCES_OF_SLOTS.index("popularity"))])
        row, product = np.concatenate([row, extra_row]), np.concatenate([product, extra_product])
        order = np.argsort(row, kind="stable")  # popular products after the others
        source, row, product = source[order], row[order], product[order]
    return _tidy(ids[row], _positions(row) + 1, shop.product_ids[product], source)


def _recently_viewed(shop: _Shop, pairs: _Pairs, blocked: np.ndarray, k: int):
    fresh = (pairs.looked < RECENT_DAYS) & ~pairs.bought & shop.allowed[pairs.product]
    row, product, _ = _top(pairs.row[fresh], pairs.product[fresh], -pairs.looked[fresh], k)
    return row, product


def _category_affinity(shop: _Shop, pairs: _Pairs, blocked: np.ndarray, k: int):
    category = shop.category[pairs.product]
    known = category >= 0
    categories = len(shop.category_products)
    interest = pd.Series(pairs.interest[known]).groupby(pairs.row[known].astype(np.int64) * categories
                                                       + category[known]).sum()
    key = interest.index.to_numpy()
    row, category = key // categories, key % categories
    affinity = interest.to_numpy() / np.bincount(row, interest.to_numpy())[row]  # the customer's share per category
    row, category, affinity = _top(row, category, affinity, TOP_CATEGORIES)
    depth = shop.category_products.shape[1]
    product = shop.category_products[category].ravel()
    score = (affinity[:, None] * shop.category_share[category]).ravel()
    row = np.repeat(row, depth)
    usable = (product >= 0) & ~np.isin(shop.key(row, product), blocked)
    row, product, _ = _top(row[usable], product[usable], score[usable], k)
    return row, product


def _co_occurrence(shop: _Shop, pairs: _Pairs, blocked: np.ndarray, k: int):
    latest = pairs.recency < SOURCES
    neighbours, similarity = shop.neighbours
    product = neighbours[pairs.product[latest]].ravel()
    score = (pairs.interest[latest][:, None] * similarity[pairs.product[latest]]).ravel()
    row = np.repeat(pairs.row[latest], NEIGHBOURS)
    key = shop.key(row, product)
    usable = (product >= 0) & ~np.isin(key, blocked)
    summed = pd.Series(score[usable]).groupby(key[usable]).sum()  # a product near several sources adds up
    key = summed.index.to_numpy()
    row, product, _ = _top(key // len(shop.product_ids), key % len(shop.product_ids), summed.to_numpy(), k)
    return row, product


_STRATEGIES = {"recently_viewed": _recently_viewed, "co_occurrence": _co_occurrence,
               "category_affinity": _category_affinity}


def _popular(shop: _Shop, need: np.ndarray, blocked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row, its `need` most popular products that are not blocked.

    Rows look at the top 2 * need first; the few that were short (many blocked products) look
    four times deeper, until the catalogue is exhausted.
    """
    rows = np.flatnonzero(need > 0)
    depth = 2 * int(need.max()) if len(rows) else 0
    found_row, found_product = [], []
    while len(rows):
        top = shop.popular[:depth]
        row, product = np.repeat(rows, len(top)), np.tile(top, len(rows))
        usable = ~np.isin(shop.key(row, product), blocked)
        row, product = row[usable], product[usable]
        taken = _positions(row) < need[row]
        row, product = row[taken], product[taken]
        short = np.bincount(row, minlength=len(need))[rows] < need[rows]
        if depth >= len(shop.popular):
            short[:] = False  # nothing more to find
        done = ~short[np.searchsorted(rows, row)]
        found_row.append(row[done])
        found_product.append(product[done])
        rows, depth = rows[short], depth * 4
    none = np.empty(0, np.int64)
    return np.concatenate([*found_row, none]), np.concatenate([*found_product, none])


def _tidy(customer: np.ndarray, rank: np.ndarray, product: np.ndarray, source: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": customer.astype(np.int64),
        "rank": rank.astype(np.int64),
        "product_id": product.astype(np.int64),
        "strategy": pd.Categorical.from_codes(source, categories=list(SOURCES_OF_SLOTS)),
    })


def _top(row: np.ndarray, item: np.ndarray, score: np.ndarray, k: int):
    """The k best-scored items per row, grouped by row and best first (ties keep their order).

    Two stable argsorts: 0.6 s for 2 million rows, against 1.0 s for np.lexsort over (item, score, row).
    """
    by_score = np.argsort(-score, kind="stable")
    order = by_score[np.argsort(row[by_score], kind="stable")]
    row, item, score = row[order], item[order], score[order]
    keep = _positions(row) < k
    return row[keep], item[keep], score[keep]


def _positions(group: np.ndarray) -> np.ndarray:
    """Each element's position within its run of equal values (0, 1, ...); `group` is sorted."""
    if not len(group):
        return np.empty(0, np.int64)
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    return np.arange(len(group)) - np.repeat(starts, np.diff(np.r_[starts, len(group)]))


def _padded(group: np.ndarray, values: np.ndarray, groups: int, width: int, fill=-1) -> np.ndarray:
    """A groups x width matrix of each group's first `width` values (`group` sorted), padded with `fill`."""
    position = _positions(group)
    keep = position < width
    out = np.full((groups, width), fill, dtype=np.result_type(values.dtype, np.min_scalar_type(fill)))
    out[group[keep], position[keep]] = values[keep]
    return out


def _utc(moment: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    return stamp.tz_convert("UTC")
