"""Uplift on a real randomized e-mail experiment: does ranking by predicted uplift find the customers an e-mail
moves better than ranking by who is likely to respond, or by chance?

    .venv/bin/python bench/uplift.py [--folds K] [--resamples R] [--simulated CUSTOMERS]

On ../shared/datasets/hillstrom_half (Kevin Hillstrom's MineThatData challenge, a random half), each e-mail
arm against no e-mail, for the outcomes visit and conversion: out-of-fold predictions of K-fold cross-
validation (folds stratified by arm and outcome), then on all rows at once the Qini coefficient (normalised
as scikit-uplift's qini_auc_score) and the observed uplift in the top 30%, with 95% intervals, for the chosen
ranking (behavior.core.uplift.uplift_fit: an uplift learner if it beat the response ranking beyond noise on the
fold's own held-out rows, else the response ranking), each uplift learner alone, the response model (one XGBoost
model of the outcome among the treated) and a random ranking; beside each, its Qini less the response model's on
the same bootstrap draws (paired).

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
from behavior.core.uplift import (  # noqa: E402
    LEARNERS,
    RESPONSE,
    features_frame,
    rankings_compare,
    ranks_within,
    response_ranking,
    top_uplift,
    uplift_fit,
)
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


def out_of_fold(X: pd.DataFrame, treated: np.ndarray, y: np.ndarray, folds: int, seed: int,
                learners: tuple[str, ...] = tuple(LEARNERS)) -> tuple[dict[str, np.ndarray], list[str]]:
    """Each ranking's scores for every row, from models that never saw that row; the ranking chosen per fold."""
    strata = treated.astype(int) * 2 + y.astype(int)
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), int)
    for s in np.unique(strata):  # each arm-and-outcome group dealt round the folds
        rows = rng.permutation(np.flatnonzero(strata == s))
        fold[rows] = np.arange(len(rows)) % folds
    learners = tuple(name for name in learners if name != "class transformation" or np.isin(y, (0, 1)).all())
    names = ("chosen ranking", *learners, RESPONSE, "random")
    scores = {name: np.empty(len(y)) for name in names}
    chosen = []
    for k in range(folds):  # each fold's scores as ranks within it: a response score and an uplift differ in scale
        fit, test = fold != k, fold == k
        model = uplift_fit(X[fit], treated[fit], y[fit], seed=seed + k, learners=learners)
        chosen.append(model.learner)
        scores["chosen ranking"][test] = ranks_within(model.predict(X[test]))
        for name in learners:  # each learner alone, to see which earn their place among the candidates
            scores[name][test] = ranks_within(LEARNERS[name](X[fit], treated[fit], y[fit], seed + k)(X[test]))
        scores[RESPONSE][test] = ranks_within(response_ranking(X[fit], treated[fit], y[fit], seed=seed + k)(X[test]))
        scores["random"][test] = rng.random(test.sum())
    return scores, chosen


def report(arm: str, outcome: str, y: np.ndarray, treated: np.ndarray, scores: dict[str, np.ndarray],
           chosen: list[str], resamples: int, seed: int) -> None:
    """One line per ranking: its Qini coefficient, the uplift in its top 30%, and its Qini less the response
    model's on the same draws, with 95% intervals."""
    draws = np.random.default_rng(seed).integers(0, len(y), (resamples, len(y)))
    comparison = rankings_compare(y, treated, scores, draws=draws)
    for name, s in scores.items():
        over = comparison.over_response.get(name)
        print(f"{arm:14} {outcome:10} {name:20} {comparison.qini[name]!s:>26} {top_uplift(y, s, treated)!s:>26} "
              f"{'' if over is None else str(over):>26}")
    overall = y[treated].mean() - y[~treated].mean()
    print(f"{'':14} {'':10} {'(everyone)':20} {'':>26} {overall:>+26.3f}")
    print(f"{'':14} {'':10} chosen per fold: {', '.join(chosen)}")


def simulated(customers: int, folds: int, resamples: int, seed: int, learners: tuple[str, ...]) -> None:
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
    scores, chosen = out_of_fold(X, treated, y, folds, seed, learners)
    report("simulated", "bought", y, treated, {**scores, "true effects": response_effect(kinds)}, chosen, resamples,
           seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples for the Qini interval")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learners", default=",".join(LEARNERS),
                        help="the uplift learners among the candidates, comma-separated (to see what each adds)")
    parser.add_argument("--simulated", type=int, default=40_000, metavar="CUSTOMERS",
                        help="customers of the simulated shop (0: none)")
    args = parser.parse_args(argv)
    learners = tuple(name.strip() for name in args.learners.split(","))
    if unknown := set(learners) - set(LEARNERS):
        raise SystemExit(f"--learners: no learner {', '.join(sorted(unknown))} (they are {', '.join(LEARNERS)})")
    if not DATA.exists():
        raise SystemExit(f"no {DATA}: the shared datasets sit beside the checkout")
    data = pd.read_csv(DATA)
    print(f"Uplift on {DATA.name}: {len(data):,} customers, {args.folds}-fold out-of-fold predictions\n")
    print(f"{'arm':14} {'outcome':10} {'ranking':20} {'Qini coefficient':>26} {'uplift in the top 30%':>26}"
          f" {'Qini less the response':>26}")
    started = time.perf_counter()
    for arm in ARMS:
        frame = data[data["treatment"].isin([arm, CONTROL])].reset_index(drop=True)
        X, _ = features_frame(frame[FEATURES])
        treated = (frame["treatment"] != CONTROL).to_numpy()
        for outcome in OUTCOMES:
            print(f"  {arm} / {outcome} ...", file=sys.stderr)
            y = frame[outcome].to_numpy(np.float64)
            scores, chosen = out_of_fold(X, treated, y, args.folds, args.seed, learners)
            report(arm, outcome, y, treated, scores, chosen, args.resamples, args.seed)
    if args.simulated:
        simulated(args.simulated, args.folds, args.resamples, args.seed, learners)
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
