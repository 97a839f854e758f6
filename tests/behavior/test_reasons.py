"""Reasons for scores: a tiny model where recent product views drive buying, and what it says about whom."""

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from behavior.core.features import FEATURES
from behavior.core.reasons import contributions, reason_agreement, reason_text, reasons_sentence, top_reasons

NAMES = ["product_view_7d", "add_to_cart_7d", "days_since_purchase", "sessions_30d", "tenure_days"]
DRIVER = "product_view_7d"


@pytest.fixture(scope="module")
def shop() -> tuple[xgb.Booster, pd.DataFrame]:
    """Customers who viewed many products lately buy; never having bought (NaN recency) helps a little."""
    rng = np.random.default_rng(7)
    n = 3_000
    X = pd.DataFrame({
        "product_view_7d": rng.poisson(3, n).astype(float),
        "add_to_cart_7d": rng.poisson(0.5, n).astype(float),
        "days_since_purchase": np.where(rng.random(n) < 0.4, np.nan, rng.exponential(30, n)),
        "sessions_30d": rng.poisson(4, n).astype(float),
        "tenure_days": rng.uniform(0, 700, n).round(),
    })
    logit = 1.5 * (X["product_view_7d"] - 4) + 0.8 * X["days_since_purchase"].isna() + rng.normal(0, 0.5, n)
    y = (logit > 0).astype(int)
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "nthread": 2, "seed": 1}
    booster = xgb.train(params, xgb.DMatrix(X.to_numpy(np.float32), label=y, feature_names=NAMES), num_boost_round=15)
    return booster, X


def margin(booster: xgb.Booster, X: pd.DataFrame) -> np.ndarray:
    return booster.predict(xgb.DMatrix(X[NAMES].to_numpy(np.float32), feature_names=NAMES), output_margin=True)


def test_names_are_real_features():
    assert set(NAMES) <= set(FEATURES)


def test_the_top_reason_of_likely_buyers_is_their_recent_product_views(shop):
    booster, X = shop
    likely = 1 / (1 + np.exp(-margin(booster, X))) > 0.9
    assert likely.sum() > 100
    reasons = top_reasons(contributions(booster, X, approximate=False), X, NAMES)
    tops = [r[0]["feature"] for r, hit in zip(reasons, likely, strict=True) if hit]
    assert tops == [DRIVER] * len(tops)


@pytest.mark.parametrize("approximate", [False, True])
def test_contributions_plus_bias_sum_to_the_margin_whatever_the_column_order(shop, approximate):
    booster, X = shop
    shuffled = X[NAMES[::-1]]
    contribs = contributions(booster, shuffled, approximate=approximate)
    assert contribs.shape == (len(X), len(NAMES))
    bias = margin(booster, X) - contribs.sum(axis=1)  # the model's expected margin: the same for every row
    np.testing.assert_allclose(bias, bias[0], atol=1e-4)
    np.testing.assert_allclose(contribs, contributions(booster, X, approximate=approximate), atol=1e-6)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_reasons_are_the_k_largest_positive_contributions_of_known_values(shop, k):
    booster, X = shop
    contribs = contributions(booster, X, approximate=False)
    reasons = top_reasons(contribs, X, NAMES, k=k)
    values = X[NAMES].to_numpy()
    for row in range(len(X)):
        expected = sorted(((contribs[row, j], NAMES[j]) for j in range(len(NAMES))
                           if contribs[row, j] > 0 and not np.isnan(values[row, j])), reverse=True)[:k]
        got = reasons[row]
        assert [r["feature"] for r in got] == [name for _, name in expected]
        assert all(r["contribution"] > 0 for r in got)
        assert all(r["value"] == X.iloc[row][r["feature"]] for r in got)


def test_a_missing_value_is_never_a_reason_even_when_it_pushes_the_score_up(shop):
    booster, X = shop
    contribs = contributions(booster, X, approximate=False)
    missing = X["days_since_purchase"].isna().to_numpy()
    column = NAMES.index("days_since_purchase")
    assert (contribs[missing, column] > 0).sum() > 100  # the model does use "never bought"
    reasons = top_reasons(contribs, X, NAMES, k=len(NAMES))
    assert not any(r["feature"] == "days_since_purchase" for row in np.flatnonzero(missing) for r in reasons[row])


def test_texts_read_like_a_sentence():
    X = pd.DataFrame({"product_view_7d": [1.0, 6.0], "add_to_cart_7d": [2.0, np.nan]})
    contribs = np.array([[0.5, 0.2], [0.9, 0.4]])
    reasons = top_reasons(contribs, X, ["product_view_7d", "add_to_cart_7d"])
    assert reasons[0][0]["text"] == "1 product view in the last 7 days"
    assert reasons_sentence(reasons[0]) == "1 product view in the last 7 days and 2 cart adds in the last 7 days"
    assert reasons_sentence(reasons[1]) == "6 product views in the last 7 days"
    assert reasons_sentence([]) == ""
    assert reason_text("days_since_add_to_cart", 2.0) == "2.0 days since the last cart add"
    assert reason_text("categories_viewed_30d", 1.0) == "1 different category viewed in the last 30 days"
    assert reason_text("search_1d", 1.0) == "1 search in the last day"
    assert reason_text("search_1d", 3.0) == "3 searches in the last day"
    assert reason_text("country_code", 1 * 26 + 17) == "country BR"


def test_no_positive_contribution_means_no_reasons():
    X = pd.DataFrame({"product_view_7d": [3.0], "add_to_cart_7d": [1.0]})
    assert top_reasons(np.array([[-0.1, 0.0]]), X, ["product_view_7d", "add_to_cart_7d"]) == [[]]


def test_agreement_is_complete_on_identical_contributions_and_drops_when_rankings_differ(shop):
    booster, X = shop
    exact = contributions(booster, X, approximate=False)
    same = reason_agreement(exact, exact.copy())
    assert same == {"rows": len(X), "top1": 1.0, "topk_same": 1.0, "topk_jaccard": 1.0}
    reversed_ = reason_agreement(exact, -exact, k=2)  # smallest first: never the same top feature
    assert reversed_["top1"] == 0.0 and reversed_["topk_jaccard"] < 1.0
    approx = reason_agreement(exact, contributions(booster, X, approximate=True))
    assert 0.5 < approx["top1"] <= 1.0 and 0.0 <= approx["topk_jaccard"] <= 1.0
