"""Product recommendations for ads: small shops where the right products are known."""

import pandas as pd
import pytest

from campaigns.recommend import STRATEGIES, recommend

pytestmark = pytest.mark.sqlite  # pure pandas: also part of the SQLite pass

AS_OF = pd.Timestamp("2026-03-01", tz="UTC")
DAY = pd.Timedelta(days=1)
BROWSER, TOY_FAN, NEWCOMER = 1, 2, 3  # personas; the crowd makes products popular
CROWD = range(10, 20)
GARDENERS = CROWD[:5]  # the part of the crowd that looks at 40 and buys 41


def frame(rows: list[tuple]) -> pd.DataFrame:
    """Events from (customer, type, product, category, days before AS_OF) rows, in the canonical columns."""
    events = pd.DataFrame(rows, columns=["customer_id", "type", "product_id", "category", "before"])
    return pd.DataFrame({
        "customer_id": events["customer_id"].astype("int64"),
        "type": events["type"].astype("str"),
        "occurred_at": (AS_OF - events["before"] * DAY).astype("datetime64[us, UTC]"),
        "product_id": events["product_id"].astype("Int64"),
        "category": events["category"].astype("str"),
    })


def crowd() -> list[tuple]:
    """Everyone buys book 31, the shop's hit; toys are less popular (20 most). Who looks at 40 buys 41."""
    rows = []
    for i, c in enumerate(CROWD):
        rows += [(c, "purchase", 31, "books", 1.0)]
        rows += [(c, "product_view", 40, "garden", 3.0), (c, "purchase", 41, "garden", 2.0)] if c in GARDENERS else []
        rows += [(c, "product_view", 30, "books", 2.0)] if i < 4 else []
        rows += [(c, "product_view", 20, "toys", 2.0)] if i < 3 else []
        rows += [(c, "product_view", 21, "toys", 2.0)] if i < 2 else []
    return rows


def browser() -> list[tuple]:
    """Looked at 10 then 11; bought 12 after looking at it; looked at 13 again after buying it."""
    return [(BROWSER, "product_view", 10, "toys", 2.0), (BROWSER, "add_to_cart", 11, "toys", 1.0),
            (BROWSER, "product_view", 12, "toys", 3.0), (BROWSER, "purchase", 12, "toys", 1.5),
            (BROWSER, "purchase", 13, "books", 5.0), (BROWSER, "product_view", 13, "books", 0.5)]


def toy_fan() -> list[tuple]:
    """Looks at toys all the time (and once at a book), and already bought toy 20."""
    return [(TOY_FAN, "product_view", 22, "toys", 6.0), (TOY_FAN, "product_view", 22, "toys", 5.0),
            (TOY_FAN, "purchase", 20, "toys", 4.0), (TOY_FAN, "product_view", 30, "books", 9.0)]


def products_of(result: pd.DataFrame, customer: int) -> list[int]:
    return result[result["customer_id"] == customer].sort_values("rank")["product_id"].tolist()


def test_recently_viewed_is_latest_first_without_what_was_bought_since():
    result = recommend(frame(browser() + crowd()), AS_OF, strategy="recently_viewed")
    assert products_of(result, BROWSER) == [13, 11, 10]  # 12 was bought after the look; 13 looked at again
    assert set(result["strategy"]) == {"recently_viewed"}


def test_category_affinity_prefers_the_customers_category_over_the_shops_hits():
    events = frame(toy_fan() + crowd())
    assert products_of(recommend(events, AS_OF, k=1, strategy="popularity"), TOY_FAN) == [31]
    toys_first = products_of(recommend(events, AS_OF, k=3, strategy="category_affinity"), TOY_FAN)
    assert toys_first[0] == 21  # the most popular toy the fan has not bought
    assert set(toys_first) == {21, 22, 31}  # the other toy, and the hit of books, which they glanced at


def test_co_occurrence_finds_what_others_bought_with_the_viewed_product():
    events = frame([*crowd(), (NEWCOMER, "product_view", 40, "garden", 0.5)])
    assert products_of(recommend(events, AS_OF, k=1, strategy="co_occurrence"), NEWCOMER) == [41]


def test_popularity_counts_customers_and_skips_what_the_customer_bought():
    result = recommend(frame(crowd()), AS_OF, k=2, strategy="popularity", customer_ids=[NEWCOMER, GARDENERS[0]])
    assert products_of(result, NEWCOMER) == [31, 41]  # bought by 10 and by 5 customers
    assert not {31, 41} & set(products_of(result, GARDENERS[0]))  # bought both


def test_nothing_at_or_after_as_of_counts():
    late = [(BROWSER, "product_view", 50, "toys", 0.0)] + [(c, "purchase", 51, "toys", -1.0) for c in range(50, 70)]
    events = frame(browser() + crowd() + late)
    assert 50 not in products_of(recommend(events, AS_OF, strategy="recently_viewed"), BROWSER)
    assert recommend(events, AS_OF, k=1, strategy="popularity", customer_ids=[NEWCOMER])["product_id"].tolist() == [31]
    assert not recommend(events, AS_OF)["customer_id"].isin(range(50, 70)).any()  # their first event is after


@pytest.mark.parametrize("k", [1, 4, 12])
def test_blend_gives_every_customer_k_distinct_products_in_rank_order(k):
    events = frame(browser() + toy_fan() + crowd())  # 11 products in all
    result = recommend(events, AS_OF, k=k)
    per_customer = result.groupby("customer_id")
    assert sorted(per_customer.groups) == [BROWSER, TOY_FAN, *CROWD]
    # Products not bought (or looked at again since): all but one for the browser and the toy fan,
    # all but 31 and 41 for the gardeners, all but 31 for the rest of the crowd.
    unbought = {BROWSER: 10, TOY_FAN: 10, **{c: 9 if c in GARDENERS else 10 for c in CROWD}}
    expected = {c: min(k, n) for c, n in unbought.items()}
    assert per_customer.size().to_dict() == expected
    assert per_customer["product_id"].nunique().to_dict() == expected
    assert (per_customer["rank"].apply(list) == per_customer.size().map(lambda n: list(range(1, n + 1)))).all()
    browsed = result[result["customer_id"] == BROWSER]
    turns = ["recently_viewed", "co_occurrence", "category_affinity"]  # each strategy's best, in turn
    assert browsed["strategy"].tolist()[:min(k, 3)] == turns[:k]


def test_blend_fills_from_each_strategy_without_repeating_a_product():
    result = recommend(frame([*crowd(), (NEWCOMER, "product_view", 40, "garden", 0.5)]), AS_OF, k=4)
    newcomer = result[result["customer_id"] == NEWCOMER]
    assert newcomer["product_id"].tolist()[:2] == [40, 41]
    assert newcomer["strategy"].tolist()[:2] == ["recently_viewed", "co_occurrence"]
    assert newcomer["product_id"].is_unique


def test_audience_and_active_products_restrict_the_output():
    events = frame(browser() + toy_fan() + crowd())
    result = recommend(events, AS_OF, k=3, customer_ids=[TOY_FAN, 999], products=[20, 21, 22, 30, 77])
    assert set(result["customer_id"]) == {TOY_FAN, 999}
    assert set(result["product_id"]) <= {20, 21, 22, 30, 77}
    assert products_of(result, 999) == [20, 30, 21]  # a stranger gets the popular active products
    assert len(products_of(result, TOY_FAN)) == 3


def test_an_empty_audience_gives_an_empty_frame():
    result = recommend(frame(crowd()), AS_OF, customer_ids=[])
    assert result.empty
    assert list(result.columns) == ["customer_id", "rank", "product_id", "strategy"]


def test_unknown_strategy_and_naive_time_are_refused():
    events = frame(crowd())
    assert "blend" in STRATEGIES
    with pytest.raises(ValueError, match="unknown strategy"):
        recommend(events, AS_OF, strategy="magic")
    with pytest.raises(ValueError, match="timezone"):
        recommend(events, AS_OF.tz_localize(None))
