"""The model registry: store versions with checksummed artifacts, promote the better one, roll back.

A version is XGBoost (an artifact) or a transparent scorer (behavior.core.scorers: its fitted numbers in
`params`), trained for one target definition. A candidate becomes champion only if it ranks the same
validation rows (the target's population at the validation cutoffs) better than the current champion,
by ROC-AUC. One champion per target is enforced by the database; a version trained for another
definition of its target can never be champion again.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from datetime import datetime

import numpy as np
import pandas as pd
import xgboost as xgb
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from behavior.core.features import TargetDefinition
from behavior.core.scorers import SCORERS, scorer_predict
from behavior.core.training import ModelArtifactError, booster_from_bytes, booster_to_bytes, predict, roc_auc
from behavior.core.uplift import Blend, qini_coefficient
from behavior.models import ModelVersion, Target

Status = ModelVersion.Status


class RegistryError(Exception):
    """A registry operation that cannot be done, said in words an operator understands."""


def model_version_register(
    *, definition: TargetDefinition, kind: str, booster: xgb.Booster | None, feature_names: list[str],
    metrics: dict, threshold: float | None, params: dict | None = None, trained_from: datetime | None = None,
    validated_at: datetime | None = None,
) -> ModelVersion:
    """Store a new candidate: XGBoost with its booster, or a transparent scorer with its fitted `params`."""
    if (kind == ModelVersion.Kind.XGBOOST) != (booster is not None):
        raise ValueError("an XGBoost version needs its booster, and only it has one")
    version = ModelVersion(
        target=definition.name, definition=definition.as_dict(), kind=kind, feature_names=feature_names,
        metrics=metrics, threshold=threshold, params=params or {}, trained_from=trained_from,
        validated_at=validated_at,
    )
    if booster is not None:
        data = booster_to_bytes(booster)
        version.sha256 = hashlib.sha256(data).hexdigest()
        version.artifact.save(f"{definition.name}-{uuid.uuid4().hex}.xgbmodel", ContentFile(data), save=False)
    version.save()
    return version


def model_version_load(version: ModelVersion) -> xgb.Booster | None:
    """The version's booster (None for a transparent scorer), refusing a corrupt or mismatched artifact."""
    if version.kind != ModelVersion.Kind.XGBOOST:
        if version.kind not in SCORERS:
            raise ModelArtifactError(f"model version {version.pk} is of an unknown kind {version.kind!r}")
        return None
    try:
        with version.artifact.open("rb") as file:
            data = file.read()
    except (OSError, ValueError) as error:
        raise ModelArtifactError(f"the artifact of model version {version.pk} cannot be read: {error}") from error
    if hashlib.sha256(data).hexdigest() != version.sha256:
        raise ModelArtifactError(f"the artifact of model version {version.pk} does not match its checksum")
    return booster_from_bytes(data, expected_features=version.feature_names)


def uplift_version_register(*, target: str, model: Blend, learner: str, feature_names: list[str], metrics: dict,
                            trained_from: datetime | None = None, validated_at: datetime | None = None
                            ) -> ModelVersion:
    """Store a new uplift candidate (which customers an action persuades), its boosters in one artifact."""
    data = model.to_bytes()
    version = ModelVersion(target=target, kind=ModelVersion.Kind.UPLIFT, feature_names=feature_names,
                           metrics=metrics, params={"learner": learner}, trained_from=trained_from,
                           validated_at=validated_at, sha256=hashlib.sha256(data).hexdigest())
    version.artifact.save(f"{target.replace(':', '-')}-{uuid.uuid4().hex}.uplift", ContentFile(data), save=False)
    version.save()
    return version


def uplift_version_load(version: ModelVersion) -> Blend:
    """An uplift version's model, refusing a corrupt or mismatched artifact."""
    try:
        with version.artifact.open("rb") as file:
            data = file.read()
        if hashlib.sha256(data).hexdigest() != version.sha256:
            raise ModelArtifactError(f"the artifact of model version {version.pk} does not match its checksum")
        blend = Blend.from_bytes(data)
    except (OSError, ValueError, KeyError, TypeError, struct.error, xgb.core.XGBoostError) as error:
        raise ModelArtifactError(f"the artifact of model version {version.pk} cannot be read: {error}") from error
    if any(booster.feature_names != version.feature_names for _, booster in blend.terms):
        raise ModelArtifactError(f"the artifact of model version {version.pk} reads other features than it records")
    return blend


@transaction.atomic
def uplift_version_promote_if_better(*, candidate: ModelVersion, X_valid: pd.DataFrame, treated: np.ndarray,
                                     y: np.ndarray) -> bool:
    """Make an uplift candidate champion of its target if it ranked its validation rows better than the response
    model did (its metrics) and better than the current champion ranks them, by the Qini coefficient."""
    champion = ModelVersion.objects.select_for_update().filter(target=candidate.target, status=Status.CHAMPION).first()
    better = candidate.metrics["qini"] > candidate.metrics["response_qini"]
    if better and champion is not None:
        try:
            theirs = qini_coefficient(y, uplift_version_load(champion)(X_valid), treated)
        except (ModelArtifactError, KeyError, ValueError):
            theirs = None  # a champion that cannot rank these rows cannot serve either
        candidate.metrics = {**candidate.metrics, "champion_qini": theirs, "champion_version": champion.pk}
        better = theirs is None or candidate.metrics["qini"] > theirs
    if not better:
        candidate.status = Status.RETIRED
        candidate.save(update_fields=["metrics", "status"])
        return False
    if champion is not None:
        champion.status = Status.RETIRED
        champion.save(update_fields=["status"])
    candidate.status, candidate.promoted_at = Status.CHAMPION, timezone.now()
    candidate.save()
    return True


class LoadedModel:
    """A version ready to score a build_features frame: its booster loaded once, or its scorer's rule."""

    def __init__(self, version: ModelVersion):
        self.version = version
        self.definition = TargetDefinition.from_dict(version.definition)
        self.booster = model_version_load(version)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.booster is not None:
            return predict(self.booster, X)
        return scorer_predict(SCORERS[self.version.kind], X, self.definition, self.version.params)


@transaction.atomic
def model_version_promote_if_better(*, candidate: ModelVersion, X_valid: pd.DataFrame, y_valid,
                                    roc_auc_valid: float | None = None) -> bool:
    """Make the candidate champion if there is none, the champion is unvalidated or delivered less than a simple
    rule on the customers it scored (behavior.services.outcomes), or it ranks this validation data better than the
    champion does.

    `roc_auc_valid` is the candidate's ROC-AUC on these rows when it was chosen: a model fitted again on them
    afterwards would flatter itself on them. Without it, the candidate ranks them now. The candidate's artifact is
    loaded first, so a corrupt one is refused and the champion stays. A champion that cannot score these rows
    (corrupt, or it needs features that are gone) cannot serve either, so it is replaced.
    """
    challenger = LoadedModel(candidate)
    champion = ModelVersion.objects.select_for_update().filter(target=candidate.target, status=Status.CHAMPION).first()
    if champion is not None and champion.metrics.get("delivered", {}).get("below_rule"):
        # What it delivered outweighs what it promised: a champion that ranked its customers below a simple rule
        # gives way to the newer choice, made on newer data.
        candidate.metrics = {**candidate.metrics, "champion_version": champion.pk, "replaced_because": (
            f"champion #{champion.pk} delivered less than {champion.metrics['delivered'].get('rule')} on the "
            "customers it scored")}
    elif champion is not None and not champion.metrics.get("unvalidated"):
        ours = _roc_auc(challenger, X_valid, y_valid) if roc_auc_valid is None else _none_if_nan(roc_auc_valid)
        try:
            theirs = _roc_auc(LoadedModel(champion), X_valid, y_valid)
        except (ModelArtifactError, ValueError, KeyError):
            theirs = None
        candidate.metrics = {**candidate.metrics, "champion_roc_auc": theirs, "champion_version": champion.pk}
        if ours is None or (theirs is not None and ours <= theirs):
            candidate.status = Status.RETIRED
            candidate.save(update_fields=["metrics", "status"])
            return False
    _crown(candidate, champion)
    return True


@transaction.atomic
def model_version_promote_unvalidated(*, candidate: ModelVersion) -> bool:
    """Make an unvalidated scorer champion unless a validated one serves: a young shop's newer labels replace its
    older guess, and never a choice that was validated."""
    champion = ModelVersion.objects.select_for_update().filter(target=candidate.target, status=Status.CHAMPION).first()
    if champion is not None and not champion.metrics.get("unvalidated"):
        candidate.status = Status.RETIRED
        candidate.save(update_fields=["status"])
        return False
    _crown(candidate, champion)
    return True


def _crown(candidate: ModelVersion, champion: ModelVersion | None) -> None:
    if champion is not None:
        champion.status = Status.RETIRED
        champion.save(update_fields=["status"])
    candidate.status, candidate.promoted_at = Status.CHAMPION, timezone.now()
    candidate.save()


def _check_current(version: ModelVersion) -> None:
    target = Target.objects.filter(name=version.target).first()
    if target is None or target.definition().as_dict() != version.definition:
        raise RegistryError(f"version {version.pk} was trained for another definition of {version.target}: "
                            "it answers another question now")
    model_version_load(version)  # refuse a corrupt artifact


@transaction.atomic
def model_version_promote(*, version: ModelVersion) -> ModelVersion:
    """Make a version its target's champion by an operator's decision; the one it replaces can be rolled back to."""
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if version.status == Status.CHAMPION:
        raise RegistryError(f"version {version.pk} is already the {version.target} champion")
    _check_current(version)
    for champion in ModelVersion.objects.select_for_update().filter(target=version.target, status=Status.CHAMPION):
        champion.status = Status.RETIRED
        champion.save(update_fields=["status"])
    version.status, version.promoted_at = Status.CHAMPION, timezone.now()
    version.save(update_fields=["status", "promoted_at"])
    return version


@transaction.atomic
def model_version_rollback(*, target: str) -> ModelVersion:
    """Retire the champion and bring back the one before it."""
    champion = ModelVersion.objects.select_for_update().filter(target=target, status=Status.CHAMPION).first()
    if champion is None:
        raise RegistryError(f"there is no {target} champion to roll back")
    previous = (
        ModelVersion.objects.select_for_update()
        .filter(target=target, status=Status.RETIRED, promoted_at__isnull=False, promoted_at__lt=champion.promoted_at)
        .order_by("-promoted_at")
        .first()
    )
    if previous is None:
        raise RegistryError(f"no earlier {target} champion to roll back to")
    _check_current(previous)
    champion.status = Status.RETIRED
    champion.save(update_fields=["status"])
    previous.status = Status.CHAMPION
    previous.save(update_fields=["status"])
    return previous


def _roc_auc(model: LoadedModel, X: pd.DataFrame, y) -> float | None:
    return _none_if_nan(roc_auc(np.asarray(y, dtype=bool), model.predict(X)))


def _none_if_nan(value: float) -> float | None:
    return None if np.isnan(value) else float(value)  # one class only: nothing to compare
