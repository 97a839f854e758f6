"""Promotion, rollback and refusal of bad artifacts in the model registry."""

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from django.db import IntegrityError

from behavior.core.training import ModelArtifactError
from behavior.models import ModelVersion, Target
from behavior.services.registry import (
    RegistryError,
    model_version_load,
    model_version_promote,
    model_version_promote_if_better,
    model_version_promote_unvalidated,
    model_version_register,
    model_version_rollback,
)
from behavior.services.targets import target_change
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db
FEATURES = ["product_view_7d", "add_to_cart_7d", "days_since_purchase"]
rng = np.random.default_rng(3)


def _data(n=3000):
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=FEATURES).astype("float32")
    y = (X["add_to_cart_7d"] + 0.3 * rng.normal(size=n) > 1.2).astype(int)
    return X, y


def _booster(X, y, *, informative=True, columns=FEATURES):
    labels = y if informative else rng.integers(0, 2, len(y))
    data = xgb.DMatrix(X[columns], label=labels, feature_names=columns)
    return xgb.train({"objective": "binary:logistic", "nthread": 2, "max_depth": 3}, data, num_boost_round=20)


def _register(booster, columns=FEATURES):
    return model_version_register(definition=Target.objects.get(name="purchase_intent").definition(), kind="xgboost",
                                  booster=booster, feature_names=columns, metrics={}, threshold=0.5)


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def test_the_first_candidate_becomes_champion_and_a_worse_one_does_not():
    X, y = _data()
    good = _register(_booster(X, y))
    assert model_version_promote_if_better(candidate=good, X_valid=X, y_valid=y)

    worse = _register(_booster(X, y, informative=False))
    assert not model_version_promote_if_better(candidate=worse, X_valid=X, y_valid=y)

    good.refresh_from_db(), worse.refresh_from_db()
    assert (good.status, worse.status) == ("champion", "retired")
    assert worse.metrics["champion_roc_auc"] > 0.9 and worse.metrics["champion_version"] == good.pk


def test_a_candidate_is_judged_by_its_figure_on_the_validation_rows_it_was_chosen_on_not_by_a_refit():
    X, y = _data()
    good = _register(_booster(X, y))
    model_version_promote_if_better(candidate=good, X_valid=X, y_valid=y)
    refit = _register(_booster(X, y))  # as good on these rows now, but its figure when chosen was 0.6

    assert not model_version_promote_if_better(candidate=refit, X_valid=X, y_valid=y, roc_auc_valid=0.6)
    assert ModelVersion.objects.get(pk=good.pk).status == "champion"


def test_an_unvalidated_or_a_flagged_champion_gives_way_and_an_unvalidated_candidate_never_displaces_a_validated_one():
    X, y = _data()
    guess = _register(_booster(X, y))
    guess.metrics = {"unvalidated": True}
    guess.save()
    assert model_version_promote_unvalidated(candidate=guess)
    weak = _register(_booster(X, y, informative=False))
    assert model_version_promote_if_better(candidate=weak, X_valid=X, y_valid=y)  # a validated choice replaces it

    later_guess = _register(_booster(X, y))
    later_guess.metrics = {"unvalidated": True}
    later_guess.save()
    assert not model_version_promote_unvalidated(candidate=later_guess)
    assert ModelVersion.objects.get(pk=weak.pk).status == "champion"

    strong = _register(_booster(X, y))
    assert model_version_promote_if_better(candidate=strong, X_valid=X, y_valid=y)
    strong.metrics = {**strong.metrics, "delivered": {"below_rule": True, "rule": "recency"}}
    strong.save()
    # It ranks these rows better than the next candidate would, but it delivered less than a rule: it gives way.
    weaker = _register(_booster(X, y, informative=False))
    assert model_version_promote_if_better(candidate=weaker, X_valid=X, y_valid=y)
    weaker.refresh_from_db()
    assert weaker.metrics["replaced_because"] == f"champion #{strong.pk} delivered less than recency on the " \
                                                 "customers it scored"


def test_a_better_candidate_replaces_the_champion_and_rollback_brings_it_back():
    X, y = _data()
    weak = _register(_booster(X, y, informative=False))
    model_version_promote_if_better(candidate=weak, X_valid=X, y_valid=y)
    strong = _register(_booster(X, y))

    assert model_version_promote_if_better(candidate=strong, X_valid=X, y_valid=y)
    assert model_version_rollback(target="purchase_intent") == weak

    weak.refresh_from_db(), strong.refresh_from_db()
    assert (weak.status, strong.status) == ("champion", "retired")
    with pytest.raises(RegistryError, match="no earlier purchase_intent champion"):
        model_version_rollback(target="purchase_intent")


def test_a_corrupt_artifact_is_refused_and_the_champion_stays():
    X, y = _data()
    champion = _register(_booster(X, y))
    model_version_promote_if_better(candidate=champion, X_valid=X, y_valid=y)
    corrupt = _register(_booster(X, y))
    with open(corrupt.artifact.path, "r+b") as file:
        file.seek(40)
        file.write(b"garbage")

    with pytest.raises(ModelArtifactError, match="does not match its checksum"):
        model_version_promote_if_better(candidate=corrupt, X_valid=X, y_valid=y)
    champion.refresh_from_db()
    assert champion.status == "champion"


def test_an_artifact_trained_on_other_features_is_refused():
    X, y = _data()
    version = _register(_booster(X, y, columns=FEATURES[::-1]), columns=FEATURES)

    with pytest.raises(ModelArtifactError, match="other features"):
        model_version_load(version)


def test_the_database_allows_one_champion_per_target():
    ModelVersionFactory(target="support_risk", status="champion")

    with pytest.raises(IntegrityError):
        ModelVersionFactory(target="support_risk", status="champion")


def test_a_champion_that_cannot_score_the_current_features_is_replaced():
    X, y = _data()
    old = _register(_booster(X.rename(columns={"days_since_purchase": "tenure_days"}),
                             y, columns=["product_view_7d", "add_to_cart_7d", "tenure_days"]),
                    columns=["product_view_7d", "add_to_cart_7d", "tenure_days"])
    model_version_promote_if_better(candidate=old, X_valid=X.rename(columns={"days_since_purchase": "tenure_days"}),
                                    y_valid=y)
    new = _register(_booster(X, y))

    assert model_version_promote_if_better(candidate=new, X_valid=X, y_valid=y)
    new.refresh_from_db()
    assert new.metrics["champion_roc_auc"] is None and new.status == "champion"


def test_a_version_of_another_definition_cannot_serve_again():
    X, y = _data()
    old = _register(_booster(X, y))
    model_version_promote_if_better(candidate=old, X_valid=X, y_valid=y)
    newer = _register(_booster(X, y, informative=False))
    model_version_promote(version=newer)

    change = target_change(target=Target.objects.get(name="purchase_intent"), horizon_days=30)

    old.refresh_from_db(), newer.refresh_from_db()
    assert change.retired_versions == [newer.pk] and (old.status, newer.status) == ("retired", "retired")
    with pytest.raises(RegistryError, match="trained for another definition of purchase_intent"):
        model_version_promote(version=old)
