"""Targets as data: define one, change one, and retire what answered the old question.

A target's models and scores answer the question it asked when they were made. Changing the
question (the horizon, what counts, the population) retires its models and removes its current
scores, in one transaction: a campaign's `score.<target>` condition then finds no stale answer,
and the next `train` makes models for the new question.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from behavior.models import ModelVersion, Score, Target

DEFINING_FIELDS = ("horizon_days", "event_types", "max_rating", "churn", "population", "population_days")


class TargetError(Exception):
    """A target definition that cannot be stored, said in words an operator understands."""


@dataclass(frozen=True)
class TargetChange:
    target: Target
    retired_versions: list[int]
    removed_scores: int

    def __str__(self) -> str:
        if not self.retired_versions and not self.removed_scores:
            return f"{self.target.name}: changed; it had no models or scores yet"
        versions = ", ".join(f"#{pk}" for pk in self.retired_versions) or "none"
        return (f"{self.target.name}: changed, so its models answer another question: retired model versions "
                f"{versions} and removed {self.removed_scores:,} scores; run `manage.py train` for new ones")


def _checked(target: Target) -> Target:
    try:
        target.full_clean()
    except ValidationError as error:
        problems = "; ".join(f"{field}: {' '.join(messages)}" if field != "__all__" else " ".join(messages)
                             for field, messages in error.message_dict.items())
        raise TargetError(f"target {target.name!r}: {problems}") from error
    return target


def target_add(*, name: str, **fields) -> Target:
    """Define a new target; its name becomes the condition field score.<name>."""
    if Target.objects.filter(name=name).exists():
        raise TargetError(f"target {name!r} exists already: change it with `targets set {name} ...`")
    target = _checked(Target(name=name, **fields))
    target.save()
    return target


@transaction.atomic
def target_change(*, target: Target, **fields) -> TargetChange:
    """Change a target's fields; if its definition changed, retire its models and remove its scores."""
    target = Target.objects.select_for_update().get(pk=target.pk)
    before = {f: getattr(target, f) for f in DEFINING_FIELDS}
    for field, value in fields.items():
        setattr(target, field, value)
    _checked(target).save()
    if {f: getattr(target, f) for f in DEFINING_FIELDS} == before:
        return TargetChange(target, [], 0)
    return _retire_answers(target)


def _retire_answers(target: Target) -> TargetChange:
    current = target.definition().as_dict()
    versions = (ModelVersion.objects.filter(target=target.name).exclude(status=ModelVersion.Status.RETIRED)
                .order_by("pk"))
    stale = [v.pk for v in versions if v.definition != current]
    ModelVersion.objects.filter(pk__in=stale).update(status=ModelVersion.Status.RETIRED)
    removed, _ = Score.objects.filter(target=target.name).delete()
    return TargetChange(target, stale, removed)
