"""Uplift: whom an action persuades, learnt from a randomized treatment and control group.

A response model ranks customers by how likely they are to buy; an uplift model ranks them by how much
more likely the action makes them buy. Three meta-learners over XGBoost, chosen on held-out rows by the
Qini coefficient:

- two models: the outcome among the treated and among the control group, the difference of the two;
- X-learner (Künzel et al., 2019): those two, then each group's effects imputed from the other group's
  model and learnt again, blended by the treated share;
- class transformation (Jaskowski and Jaroszewicz, 2012): one classifier of "treated and converted, or
  control and not converted", with both groups given equal weight, whose probability p gives 2p - 1.

Pure NumPy, pandas and XGBoost: no database. Outcomes of 0 and 1 give changes in probability; other
numbers (spend) give changes in the expected value.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xgboost as xgb

PARAMS = {"max_depth": 4, "eta": 0.05, "subsample": 0.8, "colsample_bytree": 0.8, "min_child_weight": 10,
          "lambda": 5.0, "tree_method": "hist", "nthread": 2}
MAX_ROUNDS = 600
EARLY_STOPPING_ROUNDS = 30
VALIDATION_SHARE = 0.3  # of the training rows, to choose the learner on
TOP_SHARE = 0.3  # the audience share "uplift in the top 30%" reads
Z_95 = 1.959964


class UpliftError(ValueError):
    """Data an uplift model cannot learn from; the message names what is wrong."""


# --- measuring: the Qini curve and coefficient ---------------------------------------------------------------------


def qini_curve(y: np.ndarray, uplift: np.ndarray, treated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Customers taken (most predicted uplift first) and the extra outcomes they bring.

    At each cut: the treated outcomes above it less the control outcomes above it scaled to the treated count.
    Customers of equal predicted uplift are taken together (a point at the end of each run of equals).
    """
    y, treated = np.asarray(y, np.float64), np.asarray(treated, bool)
    order = np.argsort(-np.asarray(uplift, np.float64), kind="stable")
    y, treated, ranked = y[order], treated[order], np.asarray(uplift, np.float64)[order]
    ends = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]
    n_treated = np.cumsum(treated)[ends].astype(np.float64)
    n_control = (ends + 1) - n_treated
    y_treated = np.cumsum(np.where(treated, y, 0.0))[ends]
    y_control = np.cumsum(np.where(treated, 0.0, y))[ends]
    scale = np.divide(n_treated, n_control, out=np.zeros_like(n_treated), where=n_control > 0)
    return np.r_[0, ends + 1].astype(np.float64), np.r_[0.0, y_treated - y_control * scale]


def qini_coefficient(y: np.ndarray, uplift: np.ndarray, treated: np.ndarray) -> float:
    """The area between the Qini curve and the random line, as a share of the best ranking's (1 at best, 0 for a
    random ranking, negative when the ranking is backwards). The best ranking takes every treated customer who
    converted first and every control customer who converted last, as scikit-uplift's `qini_auc_score`
    normalises with negative effects allowed."""
    y, treated = np.asarray(y, np.float64), np.asarray(treated, bool)
    x, curve = qini_curve(y, uplift, treated)
    best_x, best = qini_curve(y, np.where(treated, y, -y), treated)
    random_area = x[-1] * curve[-1] / 2
    best_area = np.trapezoid(best, best_x) - random_area
    if best_area == 0:
        return 0.0
    return float((np.trapezoid(curve, x) - random_area) / best_area)


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def top_uplift(y: np.ndarray, uplift: np.ndarray, treated: np.ndarray, share: float = TOP_SHARE) -> Estimate:
    """The observed uplift among the `share` with the highest predicted uplift: the treated rate less the control
    rate there, with a 95% normal interval for the difference of two means."""
    y, treated = np.asarray(y, np.float64), np.asarray(treated, bool)
    top = np.argsort(-np.asarray(uplift, np.float64), kind="stable")[: max(round(len(y) * share), 1)]
    a, b = y[top][treated[top]], y[top][~treated[top]]
    if len(a) < 2 or len(b) < 2:
        return Estimate(float("nan"), float("nan"), float("nan"))
    diff = a.mean() - b.mean()
    se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    return Estimate(float(diff), float(diff - Z_95 * se), float(diff + Z_95 * se))


def qini_interval(y: np.ndarray, uplift: np.ndarray, treated: np.ndarray, *, resamples: int = 200,
                  seed: int = 0) -> Estimate:
    """The Qini coefficient with a 95% bootstrap interval (rows drawn again with replacement)."""
    rng = np.random.default_rng(seed)
    n = len(y)
    draws = [qini_coefficient(y[i], uplift[i], treated[i]) for i in (rng.integers(0, n, n) for _ in range(resamples))]
    low, high = np.percentile(draws, [2.5, 97.5])
    return Estimate(qini_coefficient(y, uplift, treated), float(low), float(high))


# --- learning ------------------------------------------------------------------------------------------------------


def _binary(y: np.ndarray) -> bool:
    return bool(np.isin(np.unique(y), (0, 1)).all())


def _fit(X: pd.DataFrame, y: np.ndarray, *, objective: str, seed: int, weight: np.ndarray | None = None
         ) -> xgb.Booster:
    """A booster whose rounds stop early on a fifth of its rows (drawn at random with the seed)."""
    rng = np.random.default_rng(seed)
    stop = rng.random(len(X)) < 0.2
    if stop.all() or not stop.any():
        stop = np.arange(len(X)) % 5 == 0
    w = np.ones(len(X)) if weight is None else weight
    train = xgb.DMatrix(X[~stop], label=y[~stop], weight=w[~stop], enable_categorical=True, nthread=PARAMS["nthread"])
    check = xgb.DMatrix(X[stop], label=y[stop], weight=w[stop], enable_categorical=True, nthread=PARAMS["nthread"])
    return xgb.train({**PARAMS, "objective": objective, "seed": seed}, train, num_boost_round=MAX_ROUNDS,
                     evals=[(check, "stop")], verbose_eval=False,
                     callbacks=[xgb.callback.EarlyStopping(rounds=EARLY_STOPPING_ROUNDS, save_best=True)])


def _predict(booster: xgb.Booster, X: pd.DataFrame) -> np.ndarray:
    return booster.predict(xgb.DMatrix(X, enable_categorical=True, nthread=PARAMS["nthread"])).astype(np.float64)


@dataclass
class Blend:
    """A prediction every learner here makes: a weighted sum of boosters' predictions plus a constant. Kept as
    one artifact (each booster in XGBoost's own format, no pickle)."""

    terms: list[tuple[float, xgb.Booster]]
    constant: float = 0.0

    def __call__(self, X: pd.DataFrame) -> np.ndarray:
        return self.constant + sum((w * _predict(booster, X) for w, booster in self.terms), np.zeros(len(X)))

    def to_bytes(self) -> bytes:
        parts = [bytes(booster.save_raw("ubj")) for _, booster in self.terms]
        head = json.dumps({"constant": self.constant, "weights": [w for w, _ in self.terms],
                           "sizes": [len(p) for p in parts]}).encode()
        return struct.pack(">I", len(head)) + head + b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> Blend:
        (size,) = struct.unpack(">I", data[:4])
        head = json.loads(data[4:4 + size])
        terms, at = [], 4 + size
        for weight, length in zip(head["weights"], head["sizes"], strict=True):
            terms.append((weight, xgb.Booster(model_file=bytearray(data[at:at + length]))))
            at += length
        return cls(terms, head["constant"])


def _outcome_objective(y: np.ndarray) -> str:
    return "binary:logistic" if _binary(y) else "reg:squarederror"


def two_models(X: pd.DataFrame, treated: np.ndarray, y: np.ndarray, seed: int) -> Blend:
    objective = _outcome_objective(y)
    on = _fit(X[treated], y[treated], objective=objective, seed=seed)
    off = _fit(X[~treated], y[~treated], objective=objective, seed=seed + 1)
    return Blend([(1.0, on), (-1.0, off)])


def x_learner(X: pd.DataFrame, treated: np.ndarray, y: np.ndarray, seed: int) -> Blend:
    objective = _outcome_objective(y)
    on = _fit(X[treated], y[treated], objective=objective, seed=seed)
    off = _fit(X[~treated], y[~treated], objective=objective, seed=seed + 1)
    effect_on = _fit(X[treated], y[treated] - _predict(off, X[treated]), objective="reg:squarederror", seed=seed + 2)
    effect_off = _fit(X[~treated], _predict(on, X[~treated]) - y[~treated], objective="reg:squarederror",
                      seed=seed + 3)
    share = float(treated.mean())  # randomized: the same propensity for everyone
    return Blend([(share, effect_off), (1 - share, effect_on)])


def class_transformation(X: pd.DataFrame, treated: np.ndarray, y: np.ndarray, seed: int) -> Blend:
    if not _binary(y):
        raise UpliftError("class transformation needs an outcome of 0 and 1")
    z = (treated == (y == 1)).astype(np.float64)
    weight = np.where(treated, 0.5 / treated.mean(), 0.5 / (1 - treated.mean()))  # both groups weigh the same
    booster = _fit(X, z, objective="binary:logistic", seed=seed, weight=weight)
    return Blend([(2.0, booster)], -1.0)


LEARNERS: dict[str, Callable[[pd.DataFrame, np.ndarray, np.ndarray, int], Blend]] = {
    "two models": two_models, "X-learner": x_learner, "class transformation": class_transformation}


@dataclass
class UpliftModel:
    learner: str
    predict: Blend
    validation: dict[str, float] = field(default_factory=dict)  # each learner's Qini on the held-out rows


@dataclass(frozen=True)
class Columns:
    """How a file's feature columns read: the numeric ones, and each other one's categories (the training file's)."""

    numeric: tuple[str, ...]
    categories: dict[str, pd.Index]


def features_frame(frame: pd.DataFrame, columns: Columns | None = None) -> tuple[pd.DataFrame, Columns]:
    """Numbers as numbers, everything else as categories, both as the training file had them, so that a score file
    reads the same (a number it cannot read is missing; a category it has never seen, too). The columns get
    plain positional names: XGBoost refuses some characters a file's header may hold."""
    if columns is None:
        numeric = tuple(name for name in frame.columns if pd.api.types.is_numeric_dtype(frame[name])
                        and not pd.api.types.is_bool_dtype(frame[name]))
        categories = {name: pd.Index(sorted(frame[name].astype("string").dropna().unique()))
                      for name in frame.columns if name not in numeric}
        columns = Columns(numeric, categories)
    out = {}
    for i, name in enumerate(frame.columns):
        if name in columns.numeric:
            out[f"f{i}"] = pd.to_numeric(frame[name], errors="coerce").astype(np.float64)
        else:
            values, known = frame[name].astype("string"), columns.categories[name]
            out[f"f{i}"] = pd.Categorical(values.where(values.isin(known)), categories=known)
    return pd.DataFrame(out, index=frame.index), columns


def uplift_fit(X: pd.DataFrame, treated: np.ndarray, y: np.ndarray, *, seed: int = 0,
               learners: tuple[str, ...] = tuple(LEARNERS)) -> UpliftModel:
    """The learner with the best Qini on VALIDATION_SHARE of the rows (held out within each group), refitted on
    all of them."""
    treated, y = np.asarray(treated, bool), np.asarray(y, np.float64)
    if treated.all() or not treated.any():
        raise UpliftError("uplift needs treated and control rows; one group is empty")
    if not _binary(y):
        learners = tuple(name for name in learners if name != "class transformation")
    rng = np.random.default_rng(seed)
    held = rng.random(len(y)) < VALIDATION_SHARE
    scores = {}
    for name in learners:
        predict = LEARNERS[name](X[~held], treated[~held], y[~held], seed)
        scores[name] = qini_coefficient(y[held], predict(X[held]), treated[held])
    best = max(scores, key=lambda name: scores[name])
    return UpliftModel(learner=best, predict=LEARNERS[best](X, treated, y, seed), validation=scores)


def response_ranking(X: pd.DataFrame, treated: np.ndarray, y: np.ndarray, *, seed: int = 0) -> Blend:
    """The baseline an uplift model must beat: how likely a treated customer is to convert, by one model."""
    treated, y = np.asarray(treated, bool), np.asarray(y, np.float64)
    return Blend([(1.0, _fit(X[treated], y[treated], objective=_outcome_objective(y), seed=seed))])
