"""Transparent scorers: BG/NBD against its published fit, probabilities from a fitted curve, the rules' rankings
and their reasons in words."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from behavior.core.features import FEATURES, TargetDefinition, build_features, events_for_features
from behavior.core.scorers import (
    SCORERS,
    _bgnbd_inputs,
    bgnbd_expected,
    bgnbd_fit,
    platt_fit,
    scorer_fit,
    scorer_predict,
    scorer_reasons,
    scorers_for,
)
from behavior.core.training import roc_auc
from tests.conftest import SHARED

DAY = pd.Timedelta(days=1)
CDNOW = SHARED / "cdnow_sample" / "CDNOW_sample.txt"
EXCERPT = Path(__file__).resolve().parent.parent / "data" / "cdnow" / "cdnow_excerpt.csv"
QUARTER = TargetDefinition("quarter", 91 * DAY, ("purchase",), population="active")
LATE = TargetDefinition("risk", 14 * DAY, ("support_contact",), max_rating=2, population="in_flight")


def cdnow_events(rows: pd.DataFrame) -> pd.DataFrame:
    """The log as purchase events, several rows of a customer's day being one order (as the mapped import does)."""
    at = pd.to_datetime(rows["date"].astype(str), format="%Y%m%d").dt.tz_localize("UTC")
    return events_for_features(pd.DataFrame({
        "customer": rows["customer"].astype(str), "type": "purchase", "occurred_at": at, "product": None,
        "category": None, "price": rows["dollars"], "quantity": None,
        "order_id": rows["customer"].astype(str) + at.dt.strftime("-%Y%m%d"), "session_id": None, "rating": None,
        "promised_at": pd.NaT,
    }))


@pytest.mark.shared_data(CDNOW)
def test_bgnbd_finds_the_published_estimates_on_the_cdnow_sample():
    rows = pd.read_csv(CDNOW, sep=r"\s+", header=None, names=["full_id", "customer", "date", "cds", "dollars"])
    X = build_features(cdnow_events(rows), pd.Timestamp("1997-10-01", tz="UTC"))  # calibration to 1997-09-30
    x, t_x, T, buyer = _bgnbd_inputs(X)
    assert (len(X), int(x.sum())) == (2357, 2457)  # customers and repeat purchase days, as in the paper

    found = bgnbd_fit(x[buyer], t_x[buyer], T[buyer])

    # Fader, Hardie & Lee (2005): r 0.243, alpha 4.414, a 0.793, b 2.426 (our T ends a day later: at midnight).
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    assert found == pytest.approx(published, rel=0.05)
    # A customer with 2 repeat purchases, the last in week 30.43, seen 38.86 weeks, expects 1.226 in 39 weeks
    # under the published fit (the paper's worked example; our implementation of its equation 10).
    assert bgnbd_expected(published, 39, np.array([2.0]), np.array([30.43]), np.array([38.86]))[0] == pytest.approx(
        1.226, abs=0.01)


def test_the_cdnow_excerpt_ranks_recent_frequent_buyers_first():
    rows = pd.read_csv(EXCERPT)
    events = cdnow_events(rows)
    cutoff = pd.Timestamp("1997-10-01", tz="UTC")
    X = build_features(events, cutoff)
    later = events[(events["occurred_at"] >= cutoff) & (events["occurred_at"] < cutoff + QUARTER.horizon)]
    y = X.index.isin(later["customer_id"]).astype(float)
    scorer = SCORERS["bg_nbd"]
    params = scorer_fit(scorer, X, y, QUARTER)
    p = scorer_predict(scorer, X, QUARTER, params)

    assert ((p > 0) & (p < 1)).all()
    assert p.mean() == pytest.approx(y.mean(), abs=0.03)  # the fitted curve: probabilities at the observed rate
    assert p[y == 1].mean() > 2 * p[y == 0].mean()
    reasons = scorer_reasons(scorer, X.iloc[[int(np.argmax(p))]], QUARTER, params)[0]
    assert reasons[0]["text"].endswith("purchase days expected in the next 91 days")
    assert any("days with a purchase" in r["text"] for r in reasons)


def test_platt_scaling_keeps_the_ranking_and_never_reverses_it():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=5_000)
    y = rng.random(5_000) < 1 / (1 + np.exp(-(2 * raw - 3)))
    slope, intercept = platt_fit(raw, y)
    assert slope == pytest.approx(2, rel=0.15) and intercept == pytest.approx(-3, rel=0.1)
    assert platt_fit(raw, ~y)[0] == 0  # a rule that ranks backwards gets no ranking: the base rate for everyone


def personas() -> pd.DataFrame:
    """On time, two days late and not shipped beyond the usual, a week late, nothing in flight."""
    X = pd.DataFrame(0.0, index=range(4), columns=list(FEATURES), dtype=np.float32)
    X["days_late"] = [-5.0, 2.0, 7.0, np.nan]
    X["in_flight_ship_delay"] = [0.0, 3.0, 0.0, np.nan]
    X["orders_in_flight"] = [1, 1, 1, 0]
    return X


def test_order_timing_ranks_by_lateness_and_slow_shipping_and_says_so():
    X = personas()
    scorer = SCORERS["order_timing"]
    params = {"slope": 1.0, "intercept": 0.0}
    p = scorer_predict(scorer, X, LATE, params)
    assert p[2] > p[1] > p[0] > p[3]
    words = [r["text"] for r in scorer_reasons(scorer, X.iloc[[1]], LATE, params)[0]]
    assert words == ["an order 2.0 days later than promised", "3.0 days slower to ship than this shop's usual",
                     "1 order bought and not delivered yet"]


def test_each_target_gets_the_scorers_that_fit_its_question():
    churn = TargetDefinition("lapse", 91 * DAY, churn=True, population="buyers")
    assert [s.name for s in scorers_for(QUARTER)] == ["recency", "recency_frequency", "browsing", "bg_nbd",
                                                      "rfm_logistic"]
    assert [s.name for s in scorers_for(churn)] == ["recency", "recency_frequency", "bg_nbd", "rfm_logistic"]
    assert [s.name for s in scorers_for(LATE)] == ["recency", "recency_frequency", "order_timing"]
    # Churn is the same rule the other way round: the likeliest buyers are the least likely to lapse.
    X = build_features(cdnow_events(pd.read_csv(EXCERPT)), pd.Timestamp("1998-01-01", tz="UTC"))
    params = {"slope": 1.0, "intercept": 0.0}
    buy = scorer_predict(SCORERS["recency_frequency"], X, QUARTER, params)
    lapse = scorer_predict(SCORERS["recency_frequency"], X, churn, params)
    assert np.corrcoef(buy, lapse)[0, 1] < -0.99


def buyers(n: int, seed: int) -> pd.DataFrame:
    """Repeat buyers, all seen within the last month, as build_features rows: recency, purchase days, spend and
    tenure drawn at random and independently, nothing browsed."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(0.0, index=pd.Index(range(n), name="customer_id"), columns=list(FEATURES), dtype=np.float32)
    X["days_since_purchase"] = X["days_since_event"] = rng.uniform(1, 30, n)
    X["purchase_days"] = X["orders"] = rng.integers(2, 6, n)
    X["spend"] = rng.uniform(10, 500, n)
    X["tenure_days"] = X["days_since_first_purchase"] = rng.uniform(60, 400, n)
    X["days_since_product_view"] = np.nan
    return X


def test_logistic_rfm_weighs_what_the_rules_leave_out_and_no_more():
    # A shop whose old customers buy again when they spent much and whose new ones when they spent little: spend
    # and tenure decide together, recency and frequency not at all. The rules cannot see it; the regression can.
    X, later = buyers(2_000, seed=1), buyers(2_000, seed=2)
    def outcome(X: pd.DataFrame) -> np.ndarray:
        big, old = X["spend"].to_numpy() > 250, X["tenure_days"].to_numpy() > 230
        return (big == old) & (X.index.to_numpy() % 5 != 0)  # one customer in five never comes back
    y, y_later = outcome(X), outcome(later)
    aucs = {}
    for name in ("recency", "recency_frequency", "bg_nbd", "rfm_logistic"):
        params = scorer_fit(SCORERS[name], X, y, QUARTER)
        aucs[name] = roc_auc(y_later, scorer_predict(SCORERS[name], later, QUARTER, params))
    assert aucs["rfm_logistic"] > 0.8
    assert max(aucs[n] for n in ("recency", "recency_frequency", "bg_nbd")) < 0.6
    reasons = scorer_reasons(SCORERS["rfm_logistic"], later.iloc[[0]], QUARTER, params)[0]
    assert [r["feature"] for r in reasons] == ["days_since_purchase", "purchase_days", "spend"]

    # Where buying again follows recent cart adds, which it does not see, it ranks at chance and browsing wins;
    # with fewer than 30 buyers again it is not fitted at all.
    for rows in (X, later):
        rows["add_to_cart_7d"] = (rows.index.to_numpy() % 3 == 0).astype(np.float32)
    y, y_later = X["add_to_cart_7d"].to_numpy() > 0, later["add_to_cart_7d"].to_numpy() > 0
    fitted = {name: scorer_fit(SCORERS[name], X, y, QUARTER) for name in ("browsing", "rfm_logistic")}
    ranked = {name: roc_auc(y_later, scorer_predict(SCORERS[name], later, QUARTER, params))
              for name, params in fitted.items()}
    assert ranked["browsing"] == 1.0 and abs(ranked["rfm_logistic"] - 0.5) < 0.05
    few = np.zeros(len(X), bool)
    few[:29] = True
    with pytest.raises(ValueError, match="at least 30 positive"):
        scorer_fit(SCORERS["rfm_logistic"], X, few, QUARTER)
