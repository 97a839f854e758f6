"""Uplift on a real randomized e-mail experiment: does ranking by predicted uplift find the customers an e-mail
moves better than ranking by who is likely to respond, or by chance?

    .venv/bin/python bench/uplift.py [--folds K] [--resamples R] [--simulated CUSTOMERS]

On ../shared/datasets/hillstrom_half (Kevin Hillstrom's MineThatData challenge, a random half), each e-mail
arm against no e-mail, for the outcomes visit and conversion: out-of-fold predictions of K-fold cross-
validation (folds stratified by arm and outcome), then on all rows at once the Qini coefficient (normalised
as scikit-uplift's qini_auc_score) and the observed uplift in the top 30%, with 95% intervals, for the uplift
model (behavior.core.uplift, the learner chosen on each fold's own held-out rows), the response model (one XGBoost
model of the outcome among the treated) and a random ranking.

Then the same on a simulated shop (foresight_demo.simulation) where the right answer is known: the customers who
viewed a product in its last 90 days are offered a discount at random and buy within a week as their hidden kind
does (persuadables, sure things, lost causes, do-not-disturbs; response_kinds), the rankings learn from the
features Foresight builds from their events, and the true effects are the ranking to beat.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script, the project root is not on the path

from behavior.core.features import build_features, events_for_features  # noqa: E402
from behavior.core.uplift import features_frame, qini_interval, response_ranking, top_uplift, uplift_fit  # noqa: E402
from bench._common import DATASETS  # noqa: E402
from foresight_demo.simulation import (  # noqa: E402
    response_draw,
    response_effect,
    response_kinds,
    simulate_block,
    simulate_catalogue,
)

DATA = DATASETS / "hillstrom_half" / "hillstrom_half.csv"
CONTROL = "No E-Mail"
ARMS = ("Mens E-Mail", "Womens E-Mail")
OUTCOMES = ("visit", "conversion")
SIMULATED_DAYS = 365
SIMULATED_END = datetime(2026, 10, 1, tzinfo=UTC)
FEATURES = ["recency", "history", "mens", "womens", "zip_code", "newbie", "channel"]  # history_segment: bins of history


def out_of_fold(X: pd.DataFrame, treated: np.ndarray, y: np.ndarray, folds: int, seed: int
                ) -> dict[str, np.ndarray]:
    """Each ranking's scores for every row, from models that never saw that row; the learners chosen per fold."""
    strata = treated.astype(int) * 2 + y.astype(int)
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), int)
    for s in np.unique(strata):  # each arm-and-outcome group dealt round the folds
        rows = rng.permutation(np.flatnonzero(strata == s))
        fold[rows] = np.arange(len(rows)) % folds
    scores = {name: np.empty(len(y)) for name in ("uplift model", "response model", "random")}
    chosen = []
    for k in range(folds):
        fit, test = fold != k, fold == k
        model = uplift_fit(X[fit], treated[fit], y[fit], seed=seed + k)
        chosen.append(model.learner)
        scores["uplift model"][test] = model.predict(X[test])
        scores["response model"][test] = response_ranking(X[fit], treated[fit], y[fit], seed=seed + k)(X[test])
        scores["random"][test] = rng.random(test.sum())
    print(f"    learners chosen per fold: {', '.join(chosen)}", file=sys.stderr)
    return scores


def report(arm: str, outcome: str, y: np.ndarray, treated: np.ndarray, scores: dict[str, np.ndarray],
           resamples: int, seed: int) -> None:
    """One line per ranking: its Qini coefficient and the uplift in its top 30%, with 95% intervals."""
    qini = {name: qini_interval(y, s, treated, resamples=resamples, seed=seed) for name, s in scores.items()}
    baseline = qini["response model"].value
    for name, s in scores.items():
        ratio = f"{qini[name].value / baseline:.2f}x" if baseline > 0 else "-"
        print(f"{arm:14} {outcome:10} {name:15} {qini[name]!s:>26} {top_uplift(y, s, treated)!s:>26} {ratio:>17}")
    overall = y[treated].mean() - y[~treated].mean()
    print(f"{'':14} {'':10} {'(everyone)':15} {'':>26} {overall:>+26.3f}")


def simulated(customers: int, folds: int, resamples: int, seed: int) -> None:
    """A simulated shop's customers (foresight_demo.simulation) offered a discount at random, each answering as
    their hidden kind does: the features Foresight builds from their events, and the true effects to beat."""
    print(f"  simulated shop: {customers:,} customers over {SIMULATED_DAYS} days ...", file=sys.stderr)
    block = simulate_block(seed=seed, block=0, first_customer=0, customers=customers, days=SIMULATED_DAYS,
                           end=SIMULATED_END, catalogue=simulate_catalogue(seed=seed, products=1_000))
    ids = block.customers["external_id"]
    X = build_features(events_for_features(block.events, ids), SIMULATED_END,
                       pd.DataFrame({"customer_id": np.arange(len(ids)), "attributes": block.customers["attributes"]})
                       ).reindex(np.arange(len(ids)))
    audience = X["product_view_90d"].fillna(0).to_numpy() >= 1  # as a campaign would: who came by lately
    X, kinds = X[audience].reset_index(drop=True), response_kinds(block)[audience]
    treated = np.random.default_rng(seed).random(len(kinds)) < 0.5
    y = response_draw(np.random.default_rng(seed + 1), kinds, treated).astype(np.float64)
    shares = ", ".join(f"{kind} {share:.0%}" for kind, share in kinds.value_counts(normalize=True).items())
    print(f"{'':14} {'':10} {len(kinds):,} who viewed a product in the last 90 days: {shares}")
    scores = out_of_fold(X, treated, y, folds, seed)
    report("simulated", "bought", y, treated, {**scores, "true effects": response_effect(kinds)}, resamples, seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples for the Qini interval")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--simulated", type=int, default=40_000, metavar="CUSTOMERS",
                        help="customers of the simulated shop (0: none)")
    args = parser.parse_args(argv)
    if not DATA.exists():
        raise SystemExit(f"no {DATA}: the shared datasets sit beside the checkout")
    data = pd.read_csv(DATA)
    print(f"Uplift on {DATA.name}: {len(data):,} customers, {args.folds}-fold out-of-fold predictions\n")
    print(f"{'arm':14} {'outcome':10} {'ranking':15} {'Qini coefficient':>26} {'uplift in the top 30%':>26}"
          f" {'Qini vs response':>17}")
    started = time.perf_counter()
    for arm in ARMS:
        frame = data[data["treatment"].isin([arm, CONTROL])].reset_index(drop=True)
        X, _ = features_frame(frame[FEATURES])
        treated = (frame["treatment"] != CONTROL).to_numpy()
        for outcome in OUTCOMES:
            print(f"  {arm} / {outcome} ...", file=sys.stderr)
            y = frame[outcome].to_numpy(np.float64)
            report(arm, outcome, y, treated, out_of_fold(X, treated, y, args.folds, args.seed), args.resamples,
                   args.seed)
    if args.simulated:
        simulated(args.simulated, args.folds, args.resamples, args.seed)
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
