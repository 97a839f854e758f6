"""The model registry: store versions with checksummed artifacts, promote the better one, roll back.

A candidate becomes champion only if it beats the current champion on the same validation
data (PR-AUC: what matters is how well the top of the list is ranked at a low base rate).
One champion per target is enforced by the database.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

import numpy as np
import pandas as pd
import xgboost as xgb
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from behavior.models import ModelVersion
from behavior.training import (
    ModelArtifactError,
    average_precision,
    baseline_scores,
    booster_from_bytes,
    booster_to_bytes,
    predict,
)

Status = ModelVersion.Status


class RegistryError(Exception):
    """A registry operation that cannot be done, said in words an operator understands."""


def model_version_register(
    *, target: str, booster: xgb.Booster | None, feature_names: list[str], metrics: dict, threshold: float | None,
    params: dict | None = None, trained_from: datetime | None = None, validated_at: datetime | None = None,
) -> ModelVersion:
    """Store a new candidate. Without a booster it is the transparent heuristic scorer."""
    version = ModelVersion(
        target=target, feature_names=feature_names, metrics=metrics, threshold=threshold, params=params or {},
        trained_from=trained_from, validated_at=validated_at,
        kind=ModelVersion.Kind.XGBOOST if booster is not None else ModelVersion.Kind.HEURISTIC,
    )
    if booster is not None:
        data = booster_to_bytes(booster)
        version.sha256 = hashlib.sha256(data).hexdigest()
        version.artifact.save(f"{target}-{uuid.uuid4().hex}.xgbmodel", ContentFile(data), save=False)
    version.save()
    return version


def model_version_load(version: ModelVersion) -> xgb.Booster | None:
    """The version's booster (None for the heuristic), refusing a corrupt or mismatched artifact."""
    if version.kind == ModelVersion.Kind.HEURISTIC:
        return None
    try:
        with version.artifact.open("rb") as file:
            data = file.read()
    except (OSError, ValueError) as error:
        raise ModelArtifactError(f"the artifact of model version {version.pk} cannot be read: {error}") from error
    if hashlib.sha256(data).hexdigest() != version.sha256:
        raise ModelArtifactError(f"the artifact of model version {version.pk} does not match its checksum")
    return booster_from_bytes(data, expected_features=version.feature_names)


@transaction.atomic
def model_version_promote_if_better(*, candidate: ModelVersion, X_valid: pd.DataFrame, y_valid) -> bool:
    """Make the candidate champion if there is none or it ranks this validation data better.

    The candidate's artifact is loaded first, so a corrupt one is refused and the champion stays.
    A heuristic champion is judged by the heuristic's own scores. A champion that cannot score
    these features (they changed since it was trained) cannot serve either, so it is replaced.
    """
    challenger = model_version_load(candidate)
    champion = ModelVersion.objects.select_for_update().filter(target=candidate.target, status=Status.CHAMPION).first()
    if champion is not None:
        ours = _pr_auc(candidate.target, challenger, X_valid, y_valid)
        try:
            theirs = _pr_auc(champion.target, model_version_load(champion), X_valid, y_valid)
        except (ModelArtifactError, ValueError):
            theirs = None
        candidate.metrics = {**candidate.metrics, "pr_auc": ours, "champion_pr_auc": theirs}
        if ours is None or (theirs is not None and ours <= theirs):
            candidate.status = Status.RETIRED
            candidate.save(update_fields=["metrics", "status"])
            return False
        champion.status = Status.RETIRED
        champion.save(update_fields=["status"])
    candidate.status, candidate.promoted_at = Status.CHAMPION, timezone.now()
    candidate.save()
    return True


@transaction.atomic
def model_version_promote(*, version: ModelVersion) -> ModelVersion:
    """Make a version its target's champion by an operator's decision; the one it replaces can be rolled back to."""
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if version.status == Status.CHAMPION:
        raise RegistryError(f"version {version.pk} is already the {version.target} champion")
    model_version_load(version)  # refuse to promote a corrupt artifact
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
    model_version_load(previous)  # refuse to bring back a corrupt artifact
    champion.status = Status.RETIRED
    champion.save(update_fields=["status"])
    previous.status = Status.CHAMPION
    previous.save(update_fields=["status"])
    return previous


def _pr_auc(target: str, booster: xgb.Booster | None, X: pd.DataFrame, y) -> float | None:
    scores = baseline_scores(X, target) if booster is None else predict(booster, X)
    value = average_precision(np.asarray(y, dtype=bool), scores)
    return None if np.isnan(value) else float(value)  # no positives: nothing to compare
