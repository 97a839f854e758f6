"""Reasons benchmark: what exact and approximate XGBoost contributions cost beside a plain prediction.

    .venv/bin/python bench/reasons.py [--customers N] [--days D] [--sample S] [--rounds R]

Simulates a shop (foresight_demo.simulation), trains two purchase-intent models on features and labels
at an earlier cutoff (one early-stopped on a later cutoff, one of a fixed --rounds trees, since
contribution cost grows with the trees), then scores the features at the end. Plain prediction
(`inplace_predict`, the baseline) runs over every active customer; exact and approximate
contributions over a sample. Figures are ms per 1,000 rows (= seconds per million customers),
beside their ratio to the baseline measured in the same run, so the ratios hold on any machine.
Pure NumPy/XGBoost, no database; about 40 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script, the project root is not on the path

from behavior.core.features import FEATURES, build_features, default_targets, events_for_features, training_frame  # noqa: E402
from behavior.core.reasons import contributions, reason_agreement, reasons_sentence, top_reasons  # noqa: E402
from foresight_demo.simulation import simulate_block, simulate_catalogue  # noqa: E402

END = datetime(2026, 1, 1, tzinfo=UTC)
DAY = pd.Timedelta(days=1)
PARAMS = {"objective": "binary:logistic", "eval_metric": "auc", "max_depth": 6, "eta": 0.1,
          "subsample": 0.8, "colsample_bytree": 0.8, "min_child_weight": 5, "seed": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--sample", type=int, default=5_000, help="rows for the contribution timings")
    parser.add_argument("--rounds", type=int, default=300, help="trees of the fixed-size model")
    args = parser.parse_args()
    threads = os.cpu_count() or 1
    print(f"{platform.python_version()} xgboost {xgb.__version__}, {threads} cores")

    started = time.perf_counter()
    events, customers = simulated_shop(args.customers, args.days)
    print(f"simulated {args.customers:,} customers, {len(events):,} events in {time.perf_counter() - started:.1f} s")

    X = build_features(events, pd.Timestamp(END), customers)
    X = X[X["days_since_event"].notna()]
    sample = X.sample(min(args.sample, len(X)), random_state=1)
    print(f"scoring {len(X):,} active customers; contributions on a sample of {len(sample):,}")
    for rounds in (None, args.rounds):
        started = time.perf_counter()
        booster = train(events, customers, threads, rounds)
        print(f"\n{'early-stopped' if rounds is None else 'fixed-size'} model: {booster.num_boosted_rounds()} trees "
              f"of depth <= {PARAMS['max_depth']}, trained in {time.perf_counter() - started:.1f} s")
        measure(booster, X, sample)


def measure(booster: xgb.Booster, X: pd.DataFrame, sample: pd.DataFrame) -> None:
    names = list(FEATURES)
    predict = per_1000(lambda: booster.inplace_predict(X.to_numpy(np.float32)), len(X))
    exact_ms = per_1000(lambda: contributions(booster, sample, approximate=False), len(sample), repeats=1)
    approx_ms = per_1000(lambda: contributions(booster, sample, approximate=True), len(sample))
    exact = contributions(booster, sample, approximate=False)
    approx = contributions(booster, sample, approximate=True)
    reasons_ms = per_1000(lambda: top_reasons(exact, sample, names), len(sample))

    print(f"{'':36}{'ms / 1,000 rows':>16}{'x predict':>11}{'1M customers':>14}")
    for label, ms in (("predict (inplace_predict, baseline)", predict), ("exact contributions", exact_ms),
                      ("approximate contributions", approx_ms), ("top_reasons (pick + words)", reasons_ms)):
        print(f"{label:36}{ms:16.2f}{ms / predict:11.1f}{ms:13.0f}s")  # ms per 1,000 rows = s per 1M rows
    agreement = reason_agreement(exact, approx, k=3)
    print(f"approx vs exact: same top-1 {agreement['top1']:.1%}, same top-3 set {agreement['topk_same']:.1%}, "
          f"mean top-3 Jaccard {agreement['topk_jaccard']:.3f}")

    likely = booster.inplace_predict(sample.to_numpy(np.float32)).argsort()[::-1][:2]
    for row, reasons in zip(likely, top_reasons(exact[likely], sample.iloc[likely], names), strict=True):
        print(f"  e.g. customer {sample.index[row]}: {reasons_sentence(reasons)}")


def simulated_shop(customers: int, days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events and customers in the columns build_features reads, ids as integers."""
    shop = simulate_block(seed=11, block=0, first_customer=0, customers=customers, days=days, end=END,
                          catalogue=simulate_catalogue(seed=11, products=5_000))
    events = events_for_features(shop.events, shop.customers["external_id"])
    people = pd.DataFrame({"customer_id": np.arange(len(shop.customers)), "attributes": shop.customers["attributes"]})
    return events, people


def train(events: pd.DataFrame, customers: pd.DataFrame, threads: int, rounds: int | None) -> xgb.Booster:
    """Trained at END - 21 days and validated at END - 7 days (label windows end before END).

    With `rounds`, exactly that many trees; without, early stopping on the validation AUC.
    """
    cutoffs = [pd.Timestamp(END) - 21 * DAY, pd.Timestamp(END) - 7 * DAY]
    X, y, groups = training_frame(events, cutoffs, default_targets()["purchase_intent"], customers)
    fit, valid = (groups == cutoffs[0]).to_numpy(), (groups == cutoffs[1]).to_numpy()
    names = list(X.columns)
    dtrain = xgb.DMatrix(X[fit].to_numpy(np.float32), label=y[fit], feature_names=names)
    dvalid = xgb.DMatrix(X[valid].to_numpy(np.float32), label=y[valid], feature_names=names)
    if rounds is not None:
        return xgb.train({**PARAMS, "nthread": threads}, dtrain, num_boost_round=rounds)
    booster = xgb.train({**PARAMS, "nthread": threads}, dtrain, num_boost_round=300, evals=[(dvalid, "valid")],
                        early_stopping_rounds=20, verbose_eval=False)
    return booster[: booster.best_iteration + 1]  # the trees up to the best round, as a champion would keep


def per_1000(run: Callable[[], object], rows: int, repeats: int = 3) -> float:
    """Best wall time of `repeats` runs, in ms per 1,000 rows."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best * 1e6 / rows


if __name__ == "__main__":
    main()
