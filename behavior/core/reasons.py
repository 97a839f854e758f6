"""Reasons for scores: the features that pushed each customer's score up, from XGBoost's own contributions.

Pure NumPy, pandas and XGBoost, no database. `contributions` asks the booster for per-feature
contributions (SHAP values in log-odds; with the bias they sum to the margin), `top_reasons`
picks each row's largest positive ones and words them with the templates of
`behavior.core.features.describe`, and `reason_agreement` says how far the cheap approximate
contributions pick the same reasons as the exact ones. Measured (bench/reasons.py, 2 cores): exact
contributions cost 40-80 times a plain prediction, 0.9 ms per row with 300 trees of depth 6, so they
are computed where someone reads them; approximate ones cost 3-4 times a prediction but pick the
same top reason for only about 63% of customers, too few to show them as reasons.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xgboost as xgb

from .features import DEVICES, describe


def contributions(booster: xgb.Booster, X: pd.DataFrame, *, approximate: bool) -> np.ndarray:
    """Contributions per row and feature, in the booster's feature order, without the bias column."""
    names = booster.feature_names or list(X.columns)
    matrix = xgb.DMatrix(X[names].to_numpy(dtype=np.float32), feature_names=names)
    contribs = booster.predict(matrix, pred_contribs=True, approx_contribs=approximate)
    return contribs[:, :-1]


def exact_reasons(booster: xgb.Booster, X: pd.DataFrame) -> list[list[dict]]:
    """Each row's top reasons from its exact contributions: what the scoring cycle and the API show."""
    return top_reasons(contributions(booster, X, approximate=False), X, booster.feature_names or list(X.columns))


def top_reasons(contribs: np.ndarray, X: pd.DataFrame, feature_names: Sequence[str], k: int = 3
                ) -> list[list[dict]]:
    """Each row's (at most) k features with the largest positive contributions, largest first.

    A feature whose value is missing is never a reason: its contribution only says the model
    took the missing branch, which a marketer cannot act on.
    """
    values = X[feature_names].to_numpy(dtype=np.float64)
    usable = np.where(np.isnan(values) | (contribs <= 0), -np.inf, contribs)
    k = min(k, usable.shape[1])
    if k <= 0 or len(usable) == 0:
        return [[] for _ in range(len(usable))]
    top = np.argpartition(-usable, k - 1, axis=1)[:, :k]
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(usable, top, axis=1), axis=1, kind="stable"), axis=1)
    chosen = np.take_along_axis(usable, top, axis=1)
    reasons = []
    for row, (columns, kept) in enumerate(zip(top, np.isfinite(chosen), strict=True)):
        reasons.append([_reason(feature_names[c], float(values[row, c]), float(contribs[row, c]))
                        for c in columns[kept]])
    return reasons


def reasons_sentence(reasons: list[dict]) -> str:
    """One row's reasons as one sentence: "6 product views in the last 7 days and 1 cart add in the last day"."""
    texts = [r["text"] for r in reasons]
    if not texts:
        return ""
    return texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " and " + texts[-1]


def reason_agreement(exact: np.ndarray, approx: np.ndarray, k: int = 3) -> dict[str, float]:
    """How often two contribution matrices rank the same features highest (by raw contribution).

    `top1`: share of rows with the same largest feature; `topk_same`: share with the same set of
    k largest; `topk_jaccard`: mean Jaccard similarity of those sets.
    """
    k = min(k, exact.shape[1])
    a = np.argpartition(-exact, k - 1, axis=1)[:, :k]
    b = np.argpartition(-approx, k - 1, axis=1)[:, :k]
    shared = (a[:, :, None] == b[:, None, :]).sum(axis=(1, 2))
    return {
        "rows": len(exact),
        "top1": float(np.mean(exact.argmax(axis=1) == approx.argmax(axis=1))),
        "topk_same": float(np.mean(shared == k)),
        "topk_jaccard": float(np.mean(shared / (2 * k - shared))),
    }


def _reason(name: str, value: float, contribution: float) -> dict:
    return {"feature": name, "value": value, "contribution": contribution, "text": reason_text(name, value)}


def reason_text(name: str, value: float) -> str:
    """The feature's value in words (its template in behavior.core.features), codes turned back into names."""
    if name == "country_code":  # the base-26 number of build_features, back to its ISO letters
        return f"country {chr(65 + int(value) // 26)}{chr(65 + int(value) % 26)}"
    if name == "device_code" and 0 <= value < len(DEVICES):
        return f"shops on {DEVICES[int(value)]}"
    return describe(name, value)
