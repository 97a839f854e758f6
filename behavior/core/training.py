"""Training and evaluation of the behaviour models: frames and arrays in, a booster and small dataclasses out.

Pure pandas, NumPy and XGBoost, no database. The split is by time (a rolling origin): training cutoffs whose
labels end where the first of several validation cutoffs begins, whose rows are pooled so that a small shop's
validation positives add up. Boosting stops early on a fifth of the training customers, never on validation rows,
so the validation metrics are an honest estimate of the learner chosen on them. Metrics are computed here with
NumPy, without scikit-learn.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
import xgboost as xgb

from .features import TargetDefinition

MIN_POSITIVES = 50  # below this many positive training rows XGBoost learns noise: only the transparent scorers run
SMALL_DATA_POSITIVES = 1_000  # below this many, shallower and more regularised trees
WARMUP = pd.Timedelta(days=28)  # history a training cutoff needs before it, so that 30-day features mean something
TRAINING_CUTOFFS = 12
VALIDATION_CUTOFFS = 4
EARLY_STOPPING_ROUNDS = 30
EARLY_STOPPING_SHARE = 5  # one training customer in this many stops the boosting
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
# A few hundred positives: fewer, shallower splits, each backed by more rows, shrunk harder.
SMALL_DATA_PARAMS: dict = {"max_depth": 3, "min_child_weight": 10, "lambda": 10.0, "alpha": 1.0, "gamma": 1.0}


class ModelArtifactError(Exception):
    """A stored model cannot be used: the bytes are corrupt or it expects other features."""


# --- time split -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeSplit:
    training: list[pd.Timestamp]  # oldest first
    validation: list[pd.Timestamp]  # oldest first, pooled
    step: pd.Timedelta
    history_days: float  # history before the first training cutoff
    # The grid's cutoffs between the newest training and the first validation cutoff, oldest first: their labels
    # straddle the split, so they neither train nor validate, but the final fit of the chosen learner uses them.
    between: list[pd.Timestamp] = field(default_factory=list)


def cutoff_step(horizon: pd.Timedelta) -> pd.Timedelta:
    """Weekly cutoffs, or one horizon apart for horizons shorter than a week."""
    return min(horizon, pd.Timedelta(days=7))


def choose_cutoffs(
    first_event: datetime, last_event: datetime, target: TargetDefinition, *, training: int = TRAINING_CUTOFFS,
    validation: int = VALIDATION_CUTOFFS,
) -> TimeSplit:
    """Training and validation cutoffs for a history from first_event to last_event (the as-of time).

    Cutoffs fall on midnights UTC on one grid, `cutoff_step` apart counted back from the as-of day, so targets
    of different horizons share their features. Every label window ends by `last_event`, and the newest training
    label window ends where the first validation cutoff begins, so no label is on both sides of the split: a
    validated choice needs a warm-up and two horizons of history; the grid's cutoffs between the two sides are
    `between`, for the final fit. Each training cutoff has at least WARMUP of
    history before it. With a short history fewer validation cutoffs are used, down to one; no training cutoff at
    all is a HistoryTooShort that says how much history is needed.
    """
    horizon, step = target.horizon, cutoff_step(target.horizon)
    first, last = _utc_pair(first_event, last_event)
    newest_validation = _newest_labelled(last, horizon, step)
    earliest_allowed = first + WARMUP
    for count in range(validation, 0, -1):
        valid = [newest_validation - i * step for i in range(count)][::-1]
        newest_training = valid[0] - horizon  # its label window ends where validation begins
        train_cutoffs = [newest_training - i * step for i in range(training)]
        train_cutoffs = sorted(t for t in train_cutoffs if t >= earliest_allowed)
        if train_cutoffs:
            history = (train_cutoffs[0] - first) / pd.Timedelta(days=1)
            between = [c for c in (valid[0] - i * step for i in range(1, int(horizon / step) + 1))
                       if c > train_cutoffs[-1]][::-1]
            return TimeSplit(train_cutoffs, valid, step, history, between)
    needed = (WARMUP + horizon + step * int(np.ceil(horizon / step))) / pd.Timedelta(days=1)
    raise HistoryTooShort(
        f"history too short to validate {target.name}: {(last - first) / pd.Timedelta(days=1):.0f} days from the "
        f"first event to the as-of time, at least {needed:.0f} needed (a {WARMUP.days}-day warm-up, then a training "
        f"and a validation horizon of {horizon.days} days each, on a {step.days}-day grid)"
    )


class HistoryTooShort(ValueError):
    """Too little history to split into training and validation cutoffs; the message says how much is needed."""


def labelled_cutoffs(first_event: datetime, last_event: datetime, target: TargetDefinition, *,
                     most: int = TRAINING_CUTOFFS + VALIDATION_CUTOFFS) -> list[pd.Timestamp]:
    """Cutoffs of a history too short to validate on, oldest first: the grid's whose label windows end by the as-of
    time and that have a day of history before them. With none, the middle of the history, whose label window the
    as-of time cuts short (a rate of fewer days, better than none); none at all for an empty history."""
    horizon, step = target.horizon, cutoff_step(target.horizon)
    first, last = _utc_pair(first_event, last_event)
    newest = _newest_labelled(last, horizon, step)
    found = [c for c in (newest - i * step for i in range(most)) if c >= first + pd.Timedelta(days=1)]
    if not found and last > first:
        found = [first + (last - first) / 2]
    return sorted(found)


def _newest_labelled(last: pd.Timestamp, horizon: pd.Timedelta, step: pd.Timedelta) -> pd.Timestamp:
    """The newest grid cutoff whose label window ends by `last`."""
    anchor = last.floor("D")
    return anchor - step * int(np.ceil((horizon - (last - anchor)) / step))


def _utc_pair(first_event: datetime, last_event: datetime) -> tuple[pd.Timestamp, pd.Timestamp]:
    first, last = pd.Timestamp(first_event), pd.Timestamp(last_event)
    if first.tzinfo is None or last.tzinfo is None:
        raise ValueError("first_event and last_event must be timezone-aware")
    return first.tz_convert("UTC"), last.tz_convert("UTC")


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
    *, params: dict | None = None, stop_on_valid: bool = False,
) -> TrainedModel:
    """A gradient-boosted model with its threshold chosen on the validation rows.

    Boosting stops early on one training customer in EARLY_STOPPING_SHARE (all of their rows, so no customer
    sits on both sides), fitted on the others: the validation rows stay unseen and their metrics honest.
    `stop_on_valid` stops on the validation rows instead (for benchmarks that hold out a test set of their own).
    Fewer than SMALL_DATA_POSITIVES positive rows get the more regularised SMALL_DATA_PARAMS.
    """
    if list(X_train.columns) != list(X_valid.columns):
        raise ValueError("training and validation frames must have the same columns in the same order")
    y_train, y_valid = _labels(y_train), _labels(y_valid)
    small = y_train.sum() < SMALL_DATA_POSITIVES
    params = {**DEFAULT_PARAMS, **(SMALL_DATA_PARAMS if small else {}), **(params or {})}
    names = [str(c) for c in X_train.columns]
    if stop_on_valid:
        fit, (X_stop, y_stop) = np.ones(len(X_train), bool), (X_valid, y_valid)
    else:
        fit = _customer_ids(X_train) % EARLY_STOPPING_SHARE != 0
        if not (y_train[fit].any() and y_train[~fit].any()):
            fit = np.arange(len(X_train)) % EARLY_STOPPING_SHARE != 0  # a handful of customers: split rows instead
        X_stop, y_stop = X_train[~fit], y_train[~fit]
    started = time.perf_counter()
    nthread = params["nthread"]
    dtrain = xgb.DMatrix(_matrix(X_train[fit]), label=y_train[fit], feature_names=names, nthread=nthread)
    dstop = xgb.DMatrix(_matrix(X_stop), label=y_stop, feature_names=names, nthread=nthread)
    booster = xgb.train(
        params, dtrain, num_boost_round=MAX_ROUNDS, evals=[(dstop, "early_stopping")], verbose_eval=False,
        # save_best drops the trees after the best round, so the artifact and every prediction use the best model.
        callbacks=[xgb.callback.EarlyStopping(rounds=EARLY_STOPPING_ROUNDS, save_best=True)],
    )
    seconds = time.perf_counter() - started
    threshold = best_f1_threshold(y_valid, predict(booster, X_valid))
    return TrainedModel(booster=booster, threshold=threshold, best_iteration=int(booster.best_iteration),
                        training_seconds=seconds, params=params)


def _customer_ids(X: pd.DataFrame) -> np.ndarray:
    index = X.index.get_level_values("customer_id") if "customer_id" in (X.index.names or []) else X.index
    return np.asarray(index, dtype=np.int64)


def predict(booster: xgb.Booster, X: pd.DataFrame) -> np.ndarray:
    """Probabilities from the booster's own features, taken from X by name; a missing one is an error."""
    names = list(booster.feature_names or [])
    missing = [n for n in names if n not in X.columns]
    if missing:
        raise ValueError(f"features do not match the model: missing {missing}")
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
    top_precision: float  # share of positives among the top TOP_SHARE of scores: what a campaign acts on
    top_lift: float  # top_precision against the base rate
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
    base_rate = float(y.mean()) if len(y) else float("nan")
    top = top_precision(y, p)
    return Metrics(
        roc_auc=roc_auc(y, p), pr_auc=average_precision(y, p), base_rate=base_rate,
        threshold=float(threshold), precision=precision, recall=recall, f1=f1, brier=brier(y, p), n=len(y),
        positives=positives, top_precision=top, top_lift=top / base_rate if base_rate else float("nan"),
        calibration=calibration_table(y, p), roc_curve=roc_points(y, p),
    )


TOP_SHARE = 0.10


def top_precision(y: np.ndarray, p: np.ndarray, share: float = TOP_SHARE) -> float:
    """The share of positives among the highest `share` of scores (ties at the edge count in proportion)."""
    y = np.asarray(y, dtype=np.float64)
    if not len(y):
        return float("nan")
    k = max(1.0, share * len(y))
    order = np.argsort(-np.asarray(p, dtype=np.float64), kind="stable")
    scores, labels = np.asarray(p, dtype=np.float64)[order], y[order]
    edge = scores[int(np.ceil(k)) - 1]
    above = scores > edge
    tied = scores == edge
    taken = above.sum()
    # Rows tied with the k-th score are taken in proportion, so that the order of ties does not matter.
    positives = labels[above].sum() + (k - taken) * labels[tied].mean()
    return float(positives / k)


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


def _resampled_aucs(
    y: np.ndarray, scores: list[np.ndarray], groups: np.ndarray | None, n_boot: int, seed: int
) -> np.ndarray:
    """ROC-AUCs of each score array on the same bootstrap samples: shape (n_boot, len(scores)).

    A sample draws rows with replacement, or whole groups (a customer's rows at several cutoffs rise and fall
    together, so drawing them one by one would make intervals too narrow). Vectorized: each sample is a row of
    resampling weights, and its AUC is the Mann-Whitney sum over distinct scores of positive weight times the
    negative weight below (ties half).
    """
    y = np.asarray(y, dtype=bool)
    n = len(y)
    if groups is None:
        cluster, clusters = np.arange(n), n
    else:
        cluster = pd.factorize(np.asarray(groups))[0]
        clusters = int(cluster.max()) + 1
    rng = np.random.default_rng(seed)
    prepared = []
    for p in scores:
        order = np.argsort(np.asarray(p, dtype=np.float64), kind="stable")
        sorted_p = np.asarray(p, dtype=np.float64)[order]
        starts = np.flatnonzero(np.r_[True, sorted_p[1:] != sorted_p[:-1]])  # first row of each distinct score
        prepared.append((order, starts))
    chunk = max(1, 4_000_000 // max(n, clusters))  # bounds memory at a few tens of MB
    out = []
    for size in [chunk] * (n_boot // chunk) + ([n_boot % chunk] if n_boot % chunk else []):
        draws = rng.integers(0, clusters, size=(size, clusters)) + np.arange(size)[:, None] * clusters
        weights = np.bincount(draws.ravel(), minlength=size * clusters).reshape(size, clusters)[:, cluster]
        weights = weights.astype(np.float64)
        row = []
        for order, starts in prepared:
            w, labels = weights[:, order], y[order]
            pos = np.add.reduceat(w * labels, starts, axis=1)
            neg = np.add.reduceat(w * ~labels, starts, axis=1)
            below = np.cumsum(neg, axis=1) - neg
            with np.errstate(invalid="ignore", divide="ignore"):
                row.append((pos * (below + neg / 2)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1)))
        out.append(np.column_stack(row))
    return np.concatenate(out)


def roc_auc_interval(
    y: np.ndarray, p: np.ndarray, *, groups: np.ndarray | None = None, n_boot: int = 500, seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """A bootstrap interval for ROC-AUC (percentile method), resampling rows or, given `groups`, whole groups."""
    y = np.asarray(y, dtype=bool)
    if len(y) == 0 or y.all() or not y.any():
        return float("nan"), float("nan")
    aucs = _resampled_aucs(y, [p], groups, n_boot, seed)[:, 0]
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(aucs, [tail, 100 - tail])
    return float(low), float(high)


def roc_auc_difference(
    y: np.ndarray, p: np.ndarray, q: np.ndarray, *, groups: np.ndarray | None = None, n_boot: int = 500,
    seed: int = 0, level: float = 0.95,
) -> tuple[float, float, float]:
    """ROC-AUC of p minus that of q on the same rows, with a paired bootstrap interval (both on each sample).

    Paired, because both rank the same customers: most of the noise in either AUC is shared and cancels.
    """
    y = np.asarray(y, dtype=bool)
    if len(y) == 0 or y.all() or not y.any():
        return float("nan"), float("nan"), float("nan")
    aucs = _resampled_aucs(y, [p, q], groups, n_boot, seed)
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(aucs[:, 0] - aucs[:, 1], [tail, 100 - tail])
    return roc_auc(y, p) - roc_auc(y, q), float(low), float(high)


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
