from pathlib import Path

import numpy as np
import pandas as pd
from django.core.management.base import BaseCommand, CommandError

from behavior.core.uplift import CHANCE, FOLDS, RESPONSE, UpliftError, features_frame, uplift_fit

# What the file's uplift column holds when no uplift learner serves, said on standard output at any verbosity.
NOT_AN_UPLIFT = {
    RESPONSE: "the uplift column holds each row's predicted outcome when treated (a response score: it ranks, but "
              "it is not a change in the outcome)",
    CHANCE: "the uplift column holds the average effect on every row (no ranking did better than chance)",
}


class Command(BaseCommand):
    help = ("Learn whom a treatment persuades from a past A/B test in a file (one treatment arm against its "
            "control; every other column is a feature) and write, for each row of the score file, the predicted "
            "change the treatment makes to the outcome: columns row (0-based) and uplift. The uplift learners, the "
            "response ranking and chance are compared on held-out rows; a learner serves only if it ranks them "
            "better than the response ranking beyond noise, else the response ranking's score fills the column.")

    def add_arguments(self, parser):
        parser.add_argument("--train", type=Path, required=True, metavar="FILE", help="CSV of the experiment")
        parser.add_argument("--score", type=Path, required=True, metavar="FILE",
                            help="CSV of the customers to score (the same feature columns)")
        parser.add_argument("--treatment-column", required=True, metavar="COL")
        parser.add_argument("--control", required=True, metavar="VALUE",
                            help="the treatment column's value of the control group; the other value is treated")
        parser.add_argument("--outcome", required=True, metavar="COL",
                            help="0/1 (uplift is a change in probability) or a number such as spend")
        parser.add_argument("--out", type=Path, required=True, metavar="FILE.csv")
        parser.add_argument("--ignore", default="", metavar="A,B", help="columns that are not features")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *, train, score, treatment_column, control, outcome, out, ignore, seed, verbosity, **options):
        experiment, scored = _read(train, "--train"), _read(score, "--score")
        ignored = [name.strip() for name in ignore.split(",") if name.strip()]
        for name, flag in [(treatment_column, "--treatment-column"), (outcome, "--outcome"),
                           *((name, "--ignore") for name in ignored)]:
            if name not in experiment.columns:
                raise CommandError(f"{flag}: the train file has no column {name!r} (it has "
                                   f"{', '.join(map(repr, experiment.columns))})")
        arms = experiment[treatment_column].astype("string")
        if arms.isna().any():
            bad = int(np.flatnonzero(arms.isna().to_numpy())[0])
            raise CommandError(f"--treatment-column: {treatment_column!r} is empty on row {bad}: every row of the "
                               "train file is treated or control")
        values = sorted(arms.unique())
        if control not in values:
            raise CommandError(f"--control: no row of {treatment_column!r} is {control!r} (its values: "
                               f"{', '.join(map(repr, values))})")
        if len(values) != 2:
            raise CommandError(f"{treatment_column!r} holds {len(values)} values ({', '.join(map(repr, values))}): "
                               "the train file must be one treatment arm against its control; keep the rows of one "
                               "arm and the control")
        y = pd.to_numeric(experiment[outcome], errors="coerce")
        if y.isna().any():
            bad = int(np.flatnonzero(y.isna().to_numpy())[0])
            raise CommandError(f"--outcome: {outcome!r} must be a number on every row; row {bad} has "
                               f"{experiment[outcome].iloc[bad]!r}")
        features = [c for c in experiment.columns if c not in {treatment_column, outcome, *ignored}]
        if not features:
            raise CommandError("no feature columns are left once the treatment, outcome and ignored ones are out")
        missing = [c for c in features if c not in scored.columns]
        if missing:
            raise CommandError(f"--score: the score file lacks the feature columns {', '.join(map(repr, missing))}")
        X, columns = features_frame(experiment[features])
        Z, _ = features_frame(scored[features], columns)
        treated = (arms != control).to_numpy(bool)
        try:
            model = uplift_fit(X, treated, y.to_numpy(np.float64), seed=seed)
        except UpliftError as error:
            raise CommandError(str(error)) from error
        pd.DataFrame({"row": np.arange(len(scored)), "uplift": model.predict(Z)}).to_csv(out, index=False)
        if verbosity:
            self.stdout.write(f"{treated.sum():,} treated and {(~treated).sum():,} control rows, each scored by "
                              f"models fitted without it ({FOLDS} folds): each ranking's Qini with its 95% interval, "
                              "and less the response ranking's on the same bootstrap draws")
            for name, qini in model.comparison.qini.items():
                over = model.comparison.over_response.get(name)
                self.stdout.write(f"  {name:22} {qini!s:>26}" + (f"   {over!s:>26}" if over else ""))
        self.stdout.write(f"{model.learner} serves: {model.why}")
        if model.learner in NOT_AN_UPLIFT:
            self.stdout.write(NOT_AN_UPLIFT[model.learner])
        if verbosity:
            self.stdout.write(f"wrote {len(scored):,} rows to {out}")


def _read(path: Path, flag: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, low_memory=False)
    except FileNotFoundError as error:
        raise CommandError(f"{flag}: no file {path}") from error
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise CommandError(f"{flag}: {path} is not a readable CSV file: {error}") from error
    if frame.empty:
        raise CommandError(f"{flag}: {path} has no rows")
    return frame
