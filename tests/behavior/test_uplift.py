"""Uplift models find whom an action persuades, where the right answer is known; the offline command as other
tools run it."""

import io

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from behavior.core.uplift import (
    RESPONSE,
    Comparison,
    Estimate,
    features_frame,
    qini_coefficient,
    ranking_choose,
    rankings_compare,
    response_ranking,
    top_uplift,
    uplift_fit,
)

# Four kinds of customer, each with its chance to buy without and with the action.
KINDS = {"persuadable": (0.10, 0.45), "sure thing": (0.60, 0.60), "lost cause": (0.03, 0.03),
         "do not disturb": (0.45, 0.15)}


def experiment(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    kind = rng.choice(list(KINDS), n)
    treated = rng.random(n) < 0.5
    without, with_ = (np.array([KINDS[k][i] for k in kind]) for i in (0, 1))
    return pd.DataFrame({
        "kind": kind, "visits": rng.poisson(3, n), "noise": rng.normal(size=n),
        "arm": np.where(treated, "offer", "none"),
        "bought": (rng.random(n) < np.where(treated, with_, without)).astype(int),
        "note": "ignore me",
    })


def test_the_qini_coefficient_is_one_for_the_best_ranking_zero_for_none_and_negative_backwards():
    y = np.array([1, 0, 0, 1, 0, 1, 0, 0], float)
    treated = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    best = np.where(treated, y, -y)
    assert qini_coefficient(y, best, treated) == pytest.approx(1.0)
    assert qini_coefficient(y, np.zeros(8), treated) == pytest.approx(0.0)  # one tie: the random line
    assert qini_coefficient(y, -best, treated) < 0


def test_the_paired_bootstrap_compares_rankings_on_the_same_draws():
    # Four rows: treated and bought, treated and not, control and bought, control and not.
    y, treated = np.array([1, 0, 1, 0], float), np.array([1, 1, 0, 0], bool)
    scores = {RESPONSE: np.array([1, 2, 3, 4], float), "forwards": np.array([4, 3, 2, 1], float),
              "flat": np.zeros(4)}
    # The rows themselves, then two rows twice each: (treated and bought, control and not), (treated and not,
    # control and bought).
    draws = np.array([[0, 1, 2, 3], [0, 0, 3, 3], [1, 1, 2, 2]])
    # Qini by hand (area between curve and random line over the best ranking's), draw by draw:
    #   forwards 1/3, 1, 1;  response -1/6, -1, 1;  flat 0, 0, 0.
    # Interval ends: numpy's linear percentiles of three values, at positions 0.05 and 1.95.
    compared = rankings_compare(y, treated, scores, draws=draws)

    def close(estimate, value, low, high):
        return (estimate.value, estimate.low, estimate.high) == pytest.approx((value, low, high))

    assert close(compared.qini["forwards"], 1 / 3, 1 / 3 + 0.05 * 2 / 3, 1)
    assert close(compared.qini[RESPONSE], -1 / 6, -1 + 0.05 * 5 / 6, -1 / 6 + 0.95 * 7 / 6)
    assert close(compared.qini["flat"], 0, 0, 0)
    # Differences paired draw by draw: forwards less response 1/2, 2, 0; flat less response 1/6, 1, -1.
    assert close(compared.over_response["forwards"], 1 / 2, 0.05 * 0.5, 0.5 + 0.95 * 1.5)
    assert close(compared.over_response["flat"], 1 / 6, -1 + 0.05 * 7 / 6, 1 / 6 + 0.95 * 5 / 6)


def test_a_learner_serves_only_when_it_beats_the_response_ranking_beyond_noise():
    def comparison(low: float) -> Comparison:
        return Comparison({"two models": Estimate(0.08, 0.05, 0.11), RESPONSE: Estimate(0.05, 0.02, 0.08),
                           "chance": Estimate(0, 0, 0)},
                          {"two models": Estimate(0.03, low, 0.06), "chance": Estimate(-0.05, -0.08, -0.02)}, 1000)

    assert ranking_choose(comparison(0.001))[0] == "two models"
    chosen, why = ranking_choose(comparison(-0.001))  # a better Qini, but not beyond noise
    assert chosen == RESPONSE and "+0.030 [-0.001, +0.060]" in why


def test_an_uplift_model_ranks_persuadables_first_and_beats_the_response_model_where_it_should():
    train, test = experiment(8_000, seed=1), experiment(8_000, seed=2)
    X, columns = features_frame(train[["kind", "visits", "noise"]])
    Z, _ = features_frame(test[["kind", "visits", "noise"]], columns)
    treated_train, treated_test = (frame["arm"].eq("offer").to_numpy() for frame in (train, test))
    y_test = test["bought"].to_numpy(float)

    model = uplift_fit(X, treated_train, train["bought"].to_numpy(float), seed=0)
    uplift = model.predict(Z)
    response = response_ranking(X, treated_train, train["bought"].to_numpy(float))(Z)

    by_kind = pd.Series(uplift).groupby(test["kind"]).mean()
    assert list(by_kind.sort_values(ascending=False).index) == ["persuadable", "sure thing", "lost cause",
                                                                 "do not disturb"] or \
        list(by_kind.sort_values(ascending=False).index) == ["persuadable", "lost cause", "sure thing",
                                                              "do not disturb"]
    assert by_kind["persuadable"] == pytest.approx(0.35, abs=0.08)
    assert by_kind["do not disturb"] == pytest.approx(-0.30, abs=0.08)
    # Against the true effects (known here): nearly as good. The response model puts the sure things and the
    # do-not-disturbs first, who buy most when treated, and falls far short.
    truth = test["kind"].map({kind: on - off for kind, (off, on) in KINDS.items()}).to_numpy()
    best, found = (qini_coefficient(y_test, ranking, treated_test) for ranking in (truth, uplift))
    assert found > 0.85 * best
    assert qini_coefficient(y_test, response, treated_test) < 0.6 * best
    top = top_uplift(y_test, uplift, treated_test)
    assert top.low > 0.25  # the top 30% are the persuadables (a quarter) and a few next to them
    assert model.ranks_by_uplift, model.why
    assert set(model.validation) == {"two models", "X-learner", "class transformation", "S-learner", "DR-learner",
                                     "response ranking", "chance"}


@pytest.fixture
def files(tmp_path):
    train, score = experiment(4_000, seed=3), experiment(500, seed=4)
    train.to_csv(tmp_path / "train.csv", index=False)
    score.drop(columns=["arm", "bought"]).to_csv(tmp_path / "score.csv", index=False)
    return tmp_path, score


def _run(folder, verbosity=0, stdout=None, **changed):
    options = {"--train": folder / "train.csv", "--score": folder / "score.csv", "--treatment-column": "arm",
               "--control": "none", "--outcome": "bought", "--out": folder / "uplift.csv", "--ignore": "note",
               **changed}
    call_command("uplift_experiment", *[str(part) for pair in options.items() for part in pair], verbosity=verbosity,
                 stdout=stdout or io.StringIO())
    return pd.read_csv(folder / "uplift.csv")


def in_proportion(n: int, seed: int) -> pd.DataFrame:
    """An e-mail that doubles each customer's chance to visit: the more likely to visit anyway, the more it adds,
    so ranking by the chance to visit when e-mailed is ranking by the effect, and no uplift learner can do better."""
    rng = np.random.default_rng(seed)
    visits = rng.integers(0, 10, n)
    treated = rng.random(n) < 0.5
    base = 0.02 + 0.04 * visits
    return pd.DataFrame({"visits": visits, "noise": rng.normal(size=n), "arm": np.where(treated, "mail", "none"),
                         "bought": (rng.random(n) < np.where(treated, 2 * base, base)).astype(int)})


def test_the_command_falls_back_to_the_response_ranking_and_says_so(tmp_path):
    in_proportion(6_000, seed=5).to_csv(tmp_path / "train.csv", index=False)
    score = in_proportion(400, seed=6)
    score.drop(columns=["arm", "bought"]).to_csv(tmp_path / "score.csv", index=False)
    quiet, told = io.StringIO(), io.StringIO()

    out = _run(tmp_path, stdout=quiet, **{"--control": "none", "--ignore": ""})
    again = _run(tmp_path, verbosity=1, stdout=told, **{"--control": "none", "--ignore": ""})

    assert list(out.columns) == ["row", "uplift"] and list(out["row"]) == list(range(400))
    # The response ranking's score in the uplift column: the chance to buy when mailed, 0.04 + 0.08 x visits.
    assert out["uplift"].corr(score["visits"], method="spearman") > 0.95
    assert out["uplift"].between(0, 1).all() and out["uplift"].max() > 0.5
    assert (again["uplift"] == out["uplift"]).all()
    # Said even when asked for quiet: the column is not an uplift.
    said = quiet.getvalue()
    assert "response ranking serves: no uplift learner beat it beyond noise" in said
    assert "predicted outcome when treated" in said
    # Asked for more: every candidate's Qini with its interval, and its difference from the response ranking.
    lines = told.getvalue().splitlines()
    for name in ("two models", "X-learner", "class transformation", "S-learner", "DR-learner", "chance"):
        row = next(line for line in lines if line.strip().startswith(name))
        assert row.count("[") == 2, row
    assert next(line for line in lines if line.strip().startswith("response ranking")).count("[") == 1


def test_the_command_writes_a_row_and_an_uplift_for_each_row_of_the_score_file(files):
    folder, score = files
    out = _run(folder)
    assert list(out.columns) == ["row", "uplift"] and list(out["row"]) == list(range(len(score)))
    by_kind = out["uplift"].groupby(score["kind"]).mean()
    assert by_kind.idxmax() == "persuadable" and by_kind.idxmin() == "do not disturb"


@pytest.mark.parametrize(("changed", "complaint"), [
    ({"--control": "nobody"}, "no row of 'arm' is 'nobody'"),
    ({"--outcome": "sold"}, "--outcome: the train file has no column 'sold'"),
    ({"--ignore": "note,nothing"}, "--ignore: the train file has no column 'nothing'"),
])
def test_the_command_names_what_is_wrong(files, changed, complaint):
    with pytest.raises(CommandError, match=complaint):
        _run(files[0], **changed)


def test_a_score_file_reads_its_columns_as_the_train_file_did(files):
    folder = files[0]
    before = _run(folder)["uplift"]
    odd = pd.read_csv(folder / "score.csv")
    odd["visits"] = odd["visits"].astype(str)
    odd.loc[0, "visits"] = "unknown"  # one number that cannot be read: that row's is missing, the others' stay
    odd.loc[1, "kind"] = "never seen"
    odd.to_csv(folder / "odd.csv", index=False)
    after = _run(folder, **{"--score": folder / "odd.csv"})["uplift"]
    assert (after[2:] == before[2:]).all()


def test_a_file_of_several_arms_or_a_score_file_without_the_features_is_refused(files):
    folder, _ = files
    train = pd.read_csv(folder / "train.csv")
    train.loc[:10, "arm"] = "other offer"
    train.to_csv(folder / "three.csv", index=False)
    with pytest.raises(CommandError, match=r"holds 3 values .*one treatment arm against its control"):
        _run(folder, **{"--train": folder / "three.csv"})
    pd.read_csv(folder / "score.csv").drop(columns=["visits"]).to_csv(folder / "short.csv", index=False)
    with pytest.raises(CommandError, match="lacks the feature columns 'visits'"):
        _run(folder, **{"--score": folder / "short.csv"})
    train.loc[:10, "arm"] = None
    train.to_csv(folder / "gaps.csv", index=False)
    with pytest.raises(CommandError, match="'arm' is empty on row 0"):
        _run(folder, **{"--train": folder / "gaps.csv"})
