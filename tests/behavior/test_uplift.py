"""Uplift models find whom an action persuades, where the right answer is known; the offline command as other
tools run it."""

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from behavior.core.uplift import features_frame, qini_coefficient, response_ranking, top_uplift, uplift_fit

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
    assert set(model.validation) == {"two models", "X-learner", "class transformation"}


@pytest.fixture
def files(tmp_path):
    train, score = experiment(4_000, seed=3), experiment(500, seed=4)
    train.to_csv(tmp_path / "train.csv", index=False)
    score.drop(columns=["arm", "bought"]).to_csv(tmp_path / "score.csv", index=False)
    return tmp_path, score


def _run(folder, **changed):
    options = {"--train": folder / "train.csv", "--score": folder / "score.csv", "--treatment-column": "arm",
               "--control": "none", "--outcome": "bought", "--out": folder / "uplift.csv", "--ignore": "note",
               **changed}
    call_command("uplift_experiment", *[str(part) for pair in options.items() for part in pair], verbosity=0)
    return pd.read_csv(folder / "uplift.csv")


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
