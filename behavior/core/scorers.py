"""Transparent scorers: rules a person can read, the candidates XGBoost must beat before it serves.

Pure pandas, NumPy and SciPy, no database. A scorer turns a build_features frame into a raw score (higher:
the target's event more likely) from a rule with at most a handful of fitted numbers, and a logistic curve
fitted on the training rows turns that score into a probability (Platt scaling: the ranking stays the rule's,
the number means what it says). Each scorer also says, in words, what its score rests on.

- recency: how lately the customer did anything (any target);
- recency/frequency: how often and how lately the customer did what the target counts (any target);
- browsing: recent views, cart adds and checkouts (purchase targets);
- BG/NBD expected purchases (Fader, Hardie & Lee 2005, "Counting your customers the easy way") fitted by
  maximum likelihood on the customers' purchase days (purchase and churn targets);
- order timing: how late the customer's orders in flight are against their promise, and whether shipping
  is slower than the shop's usual (targets about problems with orders);
- logistic RFM: a logistic regression on how lately, how often and how much the customer bought and how long
  they have been a customer, with the pairwise products of the four (purchase and churn targets).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special

from .features import TargetDefinition, describe

NEVER = 10_000.0  # days: stands in for "never" in recency, below any real history


def _col(X: pd.DataFrame, name: str, missing: float = 0.0) -> np.ndarray:
    return np.nan_to_num(X[name].to_numpy(dtype=np.float64), nan=missing)


def _oriented(target: TargetDefinition, propensity: np.ndarray) -> np.ndarray:
    """Churn is the absence of a purchase: the same rule, the other way round."""
    return -propensity if target.churn else propensity


# --- the rules -------------------------------------------------------------------------------------------------


def _recency_frequency(X: pd.DataFrame, target: TargetDefinition, params: dict) -> np.ndarray:
    if target.about_purchases:
        frequency, recency = _col(X, "purchase_days"), _col(X, "days_since_purchase", NEVER)
    else:
        # What the target counts: its event types, and bad reviews when a bad review counts (never all reviews:
        # a customer who already reviewed an order is the one least likely to review it again).
        hits = [f"{t}_365d" for t in target.event_types] + (["bad_reviews"] if target.max_rating else [])
        frequency = sum((_col(X, h) for h in hits), np.zeros(len(X)))
        recency = _col(X, "days_since_event", NEVER)
    return _oriented(target, np.log1p(frequency) - np.log1p(recency))


def _recency(X: pd.DataFrame, target: TargetDefinition, params: dict) -> np.ndarray:
    return _oriented(target, -np.log1p(_col(X, "days_since_event", NEVER)))


def _browsing(X: pd.DataFrame, target: TargetDefinition, params: dict) -> np.ndarray:
    days_since_view = X["days_since_product_view"].to_numpy(dtype=np.float64)
    fresh_view = np.where(np.isnan(days_since_view), 0.0, 1.0 / (1.0 + days_since_view))
    return (np.log1p(_col(X, "product_view_7d")) + 2 * np.log1p(_col(X, "add_to_cart_7d"))
            + 2 * np.log1p(_col(X, "checkout_start_7d")) + fresh_view + 0.5 * np.log1p(_col(X, "orders")))


def _order_timing(X: pd.DataFrame, target: TargetDefinition, params: dict) -> np.ndarray:
    # Days late decides; an order not shipped when the shop usually has shipped it adds half its wait. A customer
    # with no promised order in sight ranks as a month early.
    late = _col(X, "days_late", -30.0)
    slow = np.clip(_col(X, "in_flight_ship_delay"), 0, None)
    return late + 0.5 * slow


# BG/NBD on weeks, as the published fits are: x repeat purchase days, t_x the week of the last, T the weeks since
# the first purchase, all at the cutoff.
WEEK = 7.0


def _bgnbd_inputs(X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    first = X["days_since_first_purchase"].to_numpy(dtype=np.float64)
    last = X["days_since_purchase"].to_numpy(dtype=np.float64)
    buyer = ~np.isnan(first)
    x = np.maximum(_col(X, "purchase_days") - 1, 0)
    T = np.where(buyer, first, 0) / WEEK
    t_x = np.where(buyer, first - last, 0) / WEEK
    return x, t_x, T, buyer


def bgnbd_log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> float:
    """The BG/NBD log-likelihood of (r, alpha, a, b) for customers with x repeat purchases, the last at t_x, seen T."""
    r, alpha, a, b = params
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b) - special.gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(b + x - 1) - (r + x) * np.log(alpha + t_x), -np.inf)
    return float(np.sum(a1 + a2 + np.logaddexp(a3, a4)))


def bgnbd_fit(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> dict:
    """Maximum-likelihood (r, alpha, a, b), optimised on their logarithms so that they stay positive."""
    def loss(log_params: np.ndarray) -> float:
        return -bgnbd_log_likelihood(np.exp(log_params), x, t_x, T) / len(x)

    found = optimize.minimize(loss, np.log([0.5, 5.0, 0.5, 2.0]), method="Nelder-Mead",
                              options={"maxiter": 4_000, "xatol": 1e-6, "fatol": 1e-10})
    r, alpha, a, b = (float(v) for v in np.exp(found.x))
    return {"r": r, "alpha": alpha, "a": a, "b": b}


def bgnbd_expected(params: dict, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Expected purchase days in the next t weeks of customers with history (x, t_x, T) (the paper's eq. 10)."""
    r, alpha, a, b = (params[k] for k in ("r", "alpha", "a", "b"))
    z = t / (alpha + T + t)
    hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
    first = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp)
    with np.errstate(divide="ignore", invalid="ignore"):
        dead = np.where(x > 0, a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
    return first / (1 + dead)


def _bgnbd_fit(X: pd.DataFrame, y: np.ndarray, target: TargetDefinition) -> dict:
    x, t_x, T, buyer = _bgnbd_inputs(X)
    buyer &= T > 0
    if buyer.sum() < 20:
        raise ValueError(f"BG/NBD needs at least 20 customers with a purchase history, the rows hold {buyer.sum()}")
    return bgnbd_fit(x[buyer], t_x[buyer], T[buyer])


def _bgnbd(X: pd.DataFrame, target: TargetDefinition, params: dict) -> np.ndarray:
    x, t_x, T, buyer = _bgnbd_inputs(X)
    horizon_weeks = target.horizon / pd.Timedelta(days=WEEK)
    with np.errstate(all="ignore"):
        expected = np.where(buyer & (T > 0), bgnbd_expected(params, horizon_weeks, x, t_x, T), 0.0)
    # log(E) ranks like E; 1e-4 purchases stands in for customers with no purchase to go on.
    return _oriented(target, np.log(np.clip(np.nan_to_num(expected, nan=0.0), 1e-4, None)))


def expected_purchases(X: pd.DataFrame, target: TargetDefinition, params: dict) -> np.ndarray:
    """BG/NBD's expected purchase days within the target's horizon, for reasons in words."""
    raw = _bgnbd(X, target, params)
    return np.exp(-raw if target.churn else raw)


# Logistic RFM: log recency, frequency, monetary value and tenure, and their ten pairwise products, weighed by a
# ridge-penalised logistic regression. Smooth in the four, so it carries over from the young customers of the
# training cutoffs to the older ones scored now, where trees split on counts that meant something else: on CDNOW
# nine months in (91 days ahead), 0.781 ROC-AUC where XGBoost on every feature reached 0.763 and recency/frequency
# 0.774, both fitted on the same labelled cutoffs (bench/accuracy.py --only nine_months).
RFM_RIDGE = 1.0  # on the standardised terms; 0.1 to 10 gave the same ranking there
RFM_MIN_OUTCOMES = 30  # positives and negatives each: fewer cannot weigh 14 terms


def _rfm_terms(X: pd.DataFrame) -> np.ndarray:
    base = np.column_stack([
        np.log1p(np.clip(_col(X, "days_since_purchase", NEVER), 0, None)),
        np.log1p(np.clip(_col(X, "purchase_days"), 0, None)),
        np.log1p(np.clip(_col(X, "spend"), 0, None)),
        np.log1p(np.clip(_col(X, "tenure_days"), 0, None)),
    ])
    k = base.shape[1]
    return np.column_stack([base, *(base[:, i] * base[:, j] for i in range(k) for j in range(i, k))])


def _rfm_logistic_fit(X: pd.DataFrame, y: np.ndarray, target: TargetDefinition) -> dict:
    y = np.asarray(y, dtype=np.float64)
    if min(y.sum(), len(y) - y.sum()) < RFM_MIN_OUTCOMES:
        raise ValueError(f"logistic RFM needs at least {RFM_MIN_OUTCOMES} positive and negative rows, the rows hold "
                         f"{int(y.sum())} and {int(len(y) - y.sum())}")
    terms = _rfm_terms(X)
    mean, spread = terms.mean(axis=0), terms.std(axis=0)
    spread[spread == 0] = 1.0
    design = np.column_stack([(terms - mean) / spread, np.ones(len(terms))])
    penalty = np.r_[np.full(terms.shape[1], RFM_RIDGE), 0.0]  # the intercept is not shrunk
    w = np.zeros(design.shape[1])
    for _ in range(100):
        p = special.expit(design @ w)
        gradient = design.T @ (y - p) - penalty * w
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w += step
        if np.abs(step).max() < 1e-8:
            break
    return {"mean": mean.tolist(), "spread": spread.tolist(), "weights": w[:-1].tolist(), "bias": float(w[-1])}


def _rfm_logistic(X: pd.DataFrame, target: TargetDefinition, params: dict) -> np.ndarray:
    terms = (_rfm_terms(X) - np.asarray(params["mean"])) / np.asarray(params["spread"])
    return terms @ np.asarray(params["weights"]) + params["bias"]  # the log-odds: y was fitted as it is counted


# --- probability from a rule -----------------------------------------------------------------------------------


def platt_fit(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of P(y) = sigmoid(slope * raw + intercept) by maximum likelihood; slope at least 0.

    The raw score is standardised first, so Newton's steps are well conditioned whatever its scale.
    """
    y = np.asarray(y, dtype=np.float64)
    mean, spread = float(raw.mean()), float(raw.std()) or 1.0
    z = (raw - mean) / spread
    rate = np.clip(y.mean(), 1e-6, 1 - 1e-6)
    w = np.array([0.0, np.log(rate / (1 - rate))])
    design = np.column_stack([z, np.ones_like(z)])
    for _ in range(50):
        p = special.expit(design @ w)
        gradient = design.T @ (y - p)
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + 1e-6 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        w += step
        if np.abs(step).max() < 1e-8:
            break
    slope = max(float(w[0]), 0.0)  # a rule that ranks backwards on training earns no ranking at all
    if slope == 0.0:
        return 0.0, float(np.log(rate / (1 - rate)))
    return slope / spread, float(w[1]) - slope * mean / spread


# --- the registry ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scorer:
    name: str
    label: str
    how: str  # one sentence: what the rule ranks by
    fits: Callable[[TargetDefinition], bool]
    rule: Callable[[pd.DataFrame, TargetDefinition, dict], np.ndarray]
    reason_features: Callable[[TargetDefinition], tuple[str, ...]]
    fit_rule: Callable[[pd.DataFrame, np.ndarray, TargetDefinition], dict] = lambda X, y, target: {}
    fitted_ranking: bool = False  # whether fit_rule's numbers move the ranking (not only the probability curve)


SCORERS: dict[str, Scorer] = {s.name: s for s in (
    Scorer("recency", "recency", "how lately the customer did anything", fits=lambda target: True, rule=_recency,
           reason_features=lambda t: ("days_since_event",)),
    Scorer("recency_frequency", "recency/frequency",
           "how often and how lately the customer did what the target counts",
           fits=lambda target: True, rule=_recency_frequency,
           reason_features=lambda t: (("purchase_days", "days_since_purchase") if t.about_purchases
                                      else (*(f"{e}_365d" for e in t.event_types),
                                            *(("bad_reviews",) if t.max_rating else ()), "days_since_event"))),
    Scorer("browsing", "recent browsing", "recent product views, cart adds and checkouts, and earlier orders",
           fits=lambda target: target.about_purchases and not target.churn, rule=_browsing,
           reason_features=lambda t: ("add_to_cart_7d", "checkout_start_7d", "product_view_7d",
                                      "days_since_product_view", "orders")),
    Scorer("bg_nbd", "BG/NBD expected purchases",
           "the purchases BG/NBD expects within the horizon from how often and how lately the customer bought",
           fits=lambda target: target.about_purchases, rule=_bgnbd, fit_rule=_bgnbd_fit, fitted_ranking=True,
           reason_features=lambda t: ("days_since_purchase", "purchase_days", "days_since_first_purchase")),
    Scorer("order_timing", "order timing",
           "how late the orders in flight are against their promise, and shipping slower than the shop's usual",
           fits=lambda target: not target.about_purchases, rule=_order_timing,
           reason_features=lambda t: ("days_late", "in_flight_ship_delay", "orders_in_flight",
                                      "in_flight_days_to_promise")),
    Scorer("rfm_logistic", "logistic RFM",
           "how lately, how often and how much the customer bought and how long they have been a customer, "
           "weighed by a logistic regression on the shop's labelled rows",
           fits=lambda target: target.about_purchases, rule=_rfm_logistic, fit_rule=_rfm_logistic_fit,
           fitted_ranking=True,
           reason_features=lambda t: ("days_since_purchase", "purchase_days", "spend", "tenure_days")),
)}


def scorers_for(target: TargetDefinition) -> list[Scorer]:
    return [s for s in SCORERS.values() if s.fits(target)]


def scorer_fit(scorer: Scorer, X: pd.DataFrame, y: np.ndarray, target: TargetDefinition) -> dict:
    """The scorer's parameters for this target from training rows: its rule's own, then the Platt curve."""
    params = scorer.fit_rule(X, y, target)
    slope, intercept = platt_fit(scorer.rule(X, target, params), y)
    return {**params, "slope": slope, "intercept": intercept}


def scorers_needing_no_fit(target: TargetDefinition) -> list[Scorer]:
    """The scorers whose ranking is the rule's alone (only their probability curve is fitted): a young shop's
    labels can choose among them without a validation split, since no fitted number moves the ranking."""
    return [s for s in scorers_for(target) if not s.fitted_ranking]


def scorer_first(target: TargetDefinition) -> Scorer:
    """What serves a target before its labels can choose: recent browsing for purchases (it ranks a shop's first
    visitors before anyone has bought), order timing for problems with orders in flight, else how often and how
    lately the customer did what the target counts (for churn: bought)."""
    if target.about_purchases and not target.churn:
        return SCORERS["browsing"]
    if target.population == "in_flight" and not target.about_purchases:
        return SCORERS["order_timing"]
    return SCORERS["recency_frequency"]


# A young shop's curve is fitted only from this many positives (and negatives) on; below, a handful of outcomes
# would set the slope by chance.
UNVALIDATED_PLATT_OUTCOMES = 10


def scorer_fit_unvalidated(scorer: Scorer, X: pd.DataFrame, y: np.ndarray, X_now: pd.DataFrame,
                           target: TargetDefinition) -> dict:
    """A young shop's probability curve for a rule: Platt's on the labelled rows `X`, `y` when both outcomes
    occur there often enough and the rule ranks them the right way round; otherwise one standard deviation of the
    rule among those rows (or, with none, among the customers scored now, `X_now`) per e-fold of the odds, around
    the rate seen so far, (positives + 1) / (rows + 2) (Laplace's rule of succession; with no labelled row, none of
    the customers now counts as positive yet)."""
    y = np.asarray(y, dtype=np.float64)
    if min(y.sum(), len(y) - y.sum()) >= UNVALIDATED_PLATT_OUTCOMES:
        fitted = scorer_fit(scorer, X, y, target)
        if fitted["slope"] > 0:  # a flat curve would throw away the rule's ranking, the one thing known to hold
            return fitted
    reference = X if len(X) else X_now
    raw = scorer.rule(reference, target, {}) if len(reference) else np.zeros(1)
    rows = len(reference)
    rate = (y.sum() + 1) / (rows + 2)
    slope = 1.0 / (float(raw.std()) or 1.0)
    return {"slope": slope, "intercept": float(np.log(rate / (1 - rate))) - slope * float(raw.mean())}


def scorer_predict(scorer: Scorer, X: pd.DataFrame, target: TargetDefinition, params: dict) -> np.ndarray:
    raw = scorer.rule(X, target, params)
    return special.expit(params["slope"] * raw + params["intercept"])


def scorer_reasons(scorer: Scorer, X: pd.DataFrame, target: TargetDefinition, params: dict, k: int = 3
                   ) -> list[list[dict]]:
    """Each row's facts the rule rests on, in words (no contributions: a rule has none to give)."""
    names = [n for n in scorer.reason_features(target) if n in X.columns]
    values = X[names].to_numpy(dtype=np.float64)
    extra = expected_purchases(X, target, params) if scorer.name == "bg_nbd" else None
    horizon = round(target.horizon / pd.Timedelta(days=1))
    out = []
    for row in range(len(X)):
        reasons = []
        if extra is not None and extra[row] > 0:
            reasons.append({"feature": "expected_purchases", "value": float(extra[row]), "contribution": None,
                            "text": f"{extra[row]:.2f} purchase days expected in the next {horizon} days"})
        for name, value in zip(names, values[row], strict=True):
            if len(reasons) < k and not np.isnan(value) and value != 0:
                reasons.append({"feature": name, "value": float(value), "contribution": None,
                                "text": describe(name, float(value))})
        out.append(reasons)
    return out
