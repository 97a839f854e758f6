"""Training and evaluation of the behaviour models: frames and arrays in, a booster and small dataclasses out.

Pure pandas, NumPy and XGBoost, no database. The split is by time: several training cutoffs, then a gap,
then the latest cutoff for validation (early stopping, the operating threshold and the reported metrics).
Metrics are computed here with NumPy, so the project needs no scikit-learn.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
import xgboost as xgb

from .features import TARGETS, Target

MIN_POSITIVES = 50  # below this many positive training rows a model learns noise: score with the baseline instead
WARMUP = pd.Timedelta(days=28)  # history a training cutoff needs before it, so that 30-day features mean something
EARLY_STOPPING_ROUNDS = 30
MAX_ROUNDS = 1_000

# No reweighting of the rare positives: scale_pos_weight would inflate the probabilities (the Brier score and
# the calibration table would suffer), and ranking does not need it. The operating threshold is chosen on
# validation instead, which is where reweighting would otherwise have moved it.
DEFAULT_PARAMS: dict = {
    "objective": "binary:logistic",
    "tree_method": "hist",
    "eval_metric": "logloss",  # proper scoring rule: early stopping keeps probabilities honest
    "eta": 0.05,
    "max_depth": 5,
    "min_child_weight": 5,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "lambda": 1.0,
    "nthread": 2,
    "seed": 0,
}


class ModelArtifactError(Exception):
    """A stored model cannot be used: the bytes are corrupt or it expects other features."""


# --- time split -------------------------------------------------------------------------------------------------


def choose_cutoffs(
    first_event: datetime, last_event: datetime, target: Target | str, *, count: int = 8,
    step: pd.Timedelta | None = None,
) -> tuple[list[pd.Timestamp], pd.Timestamp]:
    """Training cutoffs (oldest first) and the validation cutoff, for a history from first_event to last_event.

    Every label window ends by `last_event` (the as-of time; later events are not known yet). Between the last
    training label window and the validation cutoff is a gap of one horizon, so the same customers' purchases do
    not sit on both sides of the split (on real data AUC was 0.761 with the gap and an optimistic 0.779 without).
    Cutoffs fall on midnights UTC, `step` apart (default: one horizon); each training cutoff has at least
    WARMUP of history before it. Fewer than `count` are returned when the history is short; none is an error.
    """
    target = TARGETS[target] if isinstance(target, str) else target
    horizon = target.horizon
    step = horizon if step is None else pd.Timedelta(step)
    if step <= pd.Timedelta(0) or count < 1:
        raise ValueError("step must be positive and count at least 1")
    first, last = pd.Timestamp(first_event), pd.Timestamp(last_event)
    if first.tzinfo is None or last.tzinfo is None:
        raise ValueError("first_event and last_event must be timezone-aware")
    validation = (last.tz_convert("UTC") - horizon).floor("D")
    newest_training = validation - 2 * horizon  # its label window ends one horizon before validation
    earliest_allowed = first.tz_convert("UTC") + WARMUP
    training = [newest_training - i * step for i in range(count)]
    training = sorted(t for t in training if t >= earliest_allowed)
    if not training:
        needed = WARMUP + 3 * horizon + pd.Timedelta(days=1)
        raise ValueError(
            f"history too short to train {target.name}: {last - first} from the first to the last event, "
            f"at least {needed} needed (warm-up, a training horizon, a gap and a validation horizon)"
        )
    return training, validation


# --- training ---------------------------------------------------------------------------------------------------


@dataclass
class TrainedModel:
    booster: xgb.Booster
    threshold: float  # predicted probability at or above which a customer counts as positive (best F1 on validation)
    best_iteration: int
    training_seconds: float
    params: dict = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return list(self.booster.feature_names or [])


def train(
    X_train: pd.DataFrame, y_train: pd.Series | np.ndarray, X_valid: pd.DataFrame, y_valid: pd.Series | np.ndarray,
    *, params: dict | None = None,
) -> TrainedModel:
    """A gradient-boosted model, early-stopped on the validation set, with its threshold chosen there."""
    if list(X_train.columns) != list(X_valid.columns):
        raise ValueError("training and validation frames must have the same columns in the same order")
    params = {**DEFAULT_PARAMS, **(params or {})}
    names = [str(c) for c in X_train.columns]
    started = time.perf_counter()
    dtrain = xgb.DMatrix(_matrix(X_train), label=_labels(y_train), feature_names=names, nthread=params["nthread"])
    dvalid = xgb.DMatrix(_matrix(X_valid), label=_labels(y_valid), feature_names=names, nthread=params["nthread"])
    booster = xgb.train(
        params, dtrain, num_boost_round=MAX_ROUNDS, evals=[(dvalid, "validation")], verbose_eval=False,
        # save_best drops the trees after the best round, so the artifact and every prediction use the best model.
        callbacks=[xgb.callback.EarlyStopping(rounds=EARLY_STOPPING_ROUNDS, save_best=True)],
    )
    seconds = time.perf_counter() - started
    threshold = best_f1_threshold(_labels(y_valid), predict(booster, X_valid))
    return TrainedModel(booster=booster, threshold=threshold, best_iteration=int(booster.best_iteration),
                        training_seconds=seconds, params=params)


def predict(booster: xgb.Booster, X: pd.DataFrame) -> np.ndarray:
    """Probabilities, with X's columns put in the booster's order; a missing or unknown feature is an error."""
    names = list(booster.feature_names or [])
    missing = [n for n in names if n not in X.columns]
    extra = [str(c) for c in X.columns if c not in names]
    if missing or extra:
        raise ValueError(f"features do not match the model: missing {missing}, unexpected {extra}")
    return booster.inplace_predict(_matrix(X[names])).astype(np.float64)


def _matrix(X: pd.DataFrame) -> np.ndarray:
    return np.ascontiguousarray(X.to_numpy(dtype=np.float32, na_value=np.nan))


def _labels(y: pd.Series | np.ndarray) -> np.ndarray:
    return np.asarray(y, dtype=np.float64)


# --- metrics ----------------------------------------------------------------------------------------------------


@dataclass
class Metrics:
    roc_auc: float
    pr_auc: float
    base_rate: float
    threshold: float
    precision: float
    recall: float
    f1: float
    brier: float
    n: int
    positives: int
    calibration: list[dict]  # per bin of predicted probability: lower, upper, mean_predicted, observed_rate, count
    roc_curve: list[list[float]]  # [false positive rate, true positive rate] points from (0, 0) to (1, 1), for charts

    def as_dict(self) -> dict:
        """Plain JSON types; undefined values (NaN) become None."""
        return _json_safe(asdict(self))


def evaluate(
    model_or_booster: TrainedModel | xgb.Booster, X: pd.DataFrame, y: pd.Series | np.ndarray,
    threshold: float | None = None,
) -> Metrics:
    """Metrics of a model on X, y; the threshold defaults to the one the model chose on validation."""
    if isinstance(model_or_booster, TrainedModel):
        booster = model_or_booster.booster
        threshold = model_or_booster.threshold if threshold is None else threshold
    else:
        booster = model_or_booster
    if threshold is None:
        raise ValueError("a threshold is needed to evaluate a bare booster")
    return score_metrics(_labels(y), predict(booster, X), threshold)


def score_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> Metrics:
    """Metrics of any scores (a model's or the baseline's) against labels."""
    y = np.asarray(y, dtype=bool)
    p = np.asarray(p, dtype=np.float64)
    predicted = p >= threshold
    tp = int(np.sum(predicted & y))
    positives, flagged = int(y.sum()), int(predicted.sum())
    precision = tp / flagged if flagged else float("nan")
    recall = tp / positives if positives else float("nan")
    f1 = 2 * tp / (flagged + positives) if flagged + positives else float("nan")
    return Metrics(
        roc_auc=roc_auc(y, p), pr_auc=average_precision(y, p), base_rate=float(y.mean()) if len(y) else float("nan"),
        threshold=float(threshold), precision=precision, recall=recall, f1=f1, brier=brier(y, p), n=len(y),
        positives=positives, calibration=calibration_table(y, p), roc_curve=roc_points(y, p),
    )


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Mann-Whitney: the chance a random positive scores above a random negative (ties count half)."""
    y = np.asarray(y, dtype=bool)
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = pd.Series(np.asarray(p, dtype=np.float64)).rank(method="average").to_numpy()
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def roc_points(y: np.ndarray, p: np.ndarray, points: int = 50) -> list[list[float]]:
    """The ROC curve at about `points` evenly spaced thresholds: small enough to store with the metrics."""
    y = np.asarray(y, dtype=bool)
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return []
    tp, flagged = _cumulative_by_score(y, np.asarray(p, dtype=np.float64))[1:]
    keep = np.unique(np.linspace(0, len(tp) - 1, min(points, len(tp))).round().astype(np.int64))
    fpr, tpr = (flagged[keep] - tp[keep]) / negatives, tp[keep] / positives
    return [[0.0, 0.0], *([round(float(f), 4), round(float(t), 4)] for f, t in zip(fpr, tpr, strict=True))]


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """PR-AUC as average precision: precision at each distinct score, weighted by the recall it adds."""
    y = np.asarray(y, dtype=bool)
    if not y.any():
        return float("nan")
    tp, flagged = _cumulative_by_score(y, np.asarray(p, dtype=np.float64))[1:]
    recall = tp / y.sum()
    return float(np.sum(np.diff(recall, prepend=0.0) * tp / flagged))


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The score at or above which flagging customers gives the best F1 (0.5 when there is no positive)."""
    y = np.asarray(y, dtype=bool)
    if not y.any():
        return 0.5
    scores, tp, flagged = _cumulative_by_score(y, np.asarray(p, dtype=np.float64))
    f1 = 2 * tp / (flagged + y.sum())
    return float(scores[np.argmax(f1)])


def _cumulative_by_score(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each distinct score, highest first: the score, true positives and rows flagged at or above it."""
    order = np.argsort(-p, kind="stable")
    p, y = p[order], y[order]
    tp = np.cumsum(y)
    last_of_tie = np.r_[p[1:] != p[:-1], True]  # ties are flagged together
    return p[last_of_tie], tp[last_of_tie].astype(np.float64), (np.flatnonzero(last_of_tie) + 1).astype(np.float64)


def brier(y: np.ndarray, p: np.ndarray) -> float:
    y = np.asarray(y, dtype=np.float64)
    return float(np.mean((np.asarray(p, dtype=np.float64) - y) ** 2)) if len(y) else float("nan")


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict]:
    """Equal-width bins of predicted probability; an empty bin has count 0 and no means."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    which = np.clip((p * bins).astype(np.int64), 0, bins - 1)  # p == 1 goes in the top bin
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = np.bincount(which, p, minlength=bins) / count
        observed = np.bincount(which, y, minlength=bins) / count
    return [
        {"lower": i / bins, "upper": (i + 1) / bins, "mean_predicted": float(mean_predicted[i]),
         "observed_rate": float(observed[i]), "count": int(count[i])}
        for i in range(bins)
    ]


def roc_auc_interval(
    y: np.ndarray, p: np.ndarray, *, n_boot: int = 500, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """A bootstrap interval for ROC-AUC (percentile method, rows resampled with replacement).

    Vectorized: rows are sorted by score once; each bootstrap sample is a row of resampling counts, and its AUC is
    the Mann-Whitney sum over distinct scores of positive weight times the negative weight below (ties half).
    """
    y = np.asarray(y, dtype=bool)
    p = np.asarray(p, dtype=np.float64)
    n = len(y)
    if n == 0 or y.all() or not y.any():
        return float("nan"), float("nan")
    order = np.argsort(p, kind="stable")
    y, p = y[order], p[order]
    starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])  # first row of each distinct score
    rng = np.random.default_rng(seed)
    chunk = max(1, 4_000_000 // n)  # bounds memory at a few tens of MB
    batches = []
    for size in [chunk] * (n_boot // chunk) + ([n_boot % chunk] if n_boot % chunk else []):
        draws = rng.integers(0, n, size=(size, n)) + np.arange(size)[:, None] * n
        weights = np.bincount(draws.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)
        pos = np.add.reduceat(weights * y, starts, axis=1)
        neg = np.add.reduceat(weights * ~y, starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg
        with np.errstate(invalid="ignore", divide="ignore"):
            batches.append((pos * (below + neg / 2)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1)))
    aucs = np.concatenate(batches)
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(aucs, [tail, 100 - tail])
    return float(low), float(high)


# --- baseline and the small-shop fallback -----------------------------------------------------------------------


def enough_positives(y: pd.Series | np.ndarray) -> bool:
    """Whether training labels hold enough positives to learn from; otherwise use baseline_scores."""
    return int(np.asarray(y, dtype=bool).sum()) >= MIN_POSITIVES


def baseline_scores(X: pd.DataFrame, target_name: str) -> np.ndarray:
    """A transparent heuristic in [0, 1): a ranking, not a probability.

    purchase_intent: recent browsing and cart adds, a fresh product view, and being a repeat buyer.
    support_risk: an order that is late (open past its promise, or delayed lately) ranks above everything else;
    support contacts, bad reviews, returns and recent orders break ties.
    """
    def col(name: str) -> np.ndarray:
        return np.nan_to_num(X[name].to_numpy(dtype=np.float64), nan=0.0)

    if target_name == "purchase_intent":
        days_since_view = X["days_since_product_view"].to_numpy(dtype=np.float64)
        fresh_view = np.where(np.isnan(days_since_view), 0.0, 1.0 / (1.0 + days_since_view))
        raw = (np.log1p(col("product_view_7d")) + 2 * np.log1p(col("add_to_cart_7d"))
               + 2 * np.log1p(col("checkout_start_7d")) + fresh_view + 0.5 * np.log1p(col("orders")))
        return raw / (1.0 + raw)
    if target_name == "support_risk":
        late = (col("orders_open_past_due") > 0) | (col("orders_delayed_90d") > 0)
        tie_breakers = (col("support_contact_30d") + col("bad_reviews_90d") + col("return_requested_30d")
                        + 0.1 * col("orders_90d"))
        return 0.5 * late + 0.5 * tie_breakers / (1.0 + tie_breakers)
    raise ValueError(f"no baseline for target {target_name!r}; known: {sorted(TARGETS)}")


# --- artifacts --------------------------------------------------------------------------------------------------


# A corrupt UBJSON model can crash the process inside XGBoost (measured with 3.2: empty bytes abort, one flipped
# byte segfaults), so the model bytes travel in a small envelope: a magic prefix and a SHA-256 of the model,
# checked before XGBoost sees them.
_MAGIC = b"foresight-xgb-ubj-1\n"
_DIGEST = 32


def booster_to_bytes(booster: xgb.Booster) -> bytes:
    """XGBoost's own UBJSON model format (portable across versions, no pickle), behind a magic prefix and checksum."""
    model = bytes(booster.save_raw("ubj"))
    return _MAGIC + hashlib.sha256(model).digest() + model


def booster_from_bytes(data: bytes, expected_features: list[str]) -> xgb.Booster:
    """Load a stored model, refusing one that is corrupt or was trained on other features (in another order)."""
    data = bytes(data)
    if not data.startswith(_MAGIC) or len(data) <= len(_MAGIC) + _DIGEST:
        raise ModelArtifactError("model artifact cannot be loaded: not a model artifact of this format")
    digest, model = data[len(_MAGIC):len(_MAGIC) + _DIGEST], data[len(_MAGIC) + _DIGEST:]
    if hashlib.sha256(model).digest() != digest:
        raise ModelArtifactError("model artifact cannot be loaded: checksum mismatch (truncated or corrupt)")
    try:
        booster = xgb.Booster(model_file=bytearray(model))
    except xgb.core.XGBoostError as error:
        raise ModelArtifactError(f"model artifact cannot be loaded: {error}".splitlines()[0]) from error
    names = list(booster.feature_names or [])
    if names != list(expected_features):
        missing = [f for f in expected_features if f not in names]
        extra = [f for f in names if f not in expected_features]
        raise ModelArtifactError(
            f"model artifact expects other features: missing {missing}, unexpected {extra}"
            + ("" if missing or extra else ", same names in another order")
        )
    return booster


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
