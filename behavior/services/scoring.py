"""The scoring cycle: features for a range of customers, every target's champion, scores written back.

A run fixes its champions and its "now" (`as_of`) when it starts; a target without a champion gets
one first (training serves even a shop's first day, with an unvalidated rule), so a run never
refuses for want of a model, and a run with nothing to score still completes and sends its signal.
It records its customers' id ranges as chunks in the database. Each chunk is scored on its own (a
Celery task, or a loop in-process): each target scores the customers of its population, whose
current scores it overwrites, and the chunk's other scores of that target are removed (they left the
population), so scoring it twice gives the same rows: safe to retry or redeliver. The database, not
the broker, knows which chunks are done: the last one to finish closes the run, and chunks whose
message or worker was lost are sent again by `scoring_chunks_stalled`. Exact reasons (XGBoost
contributions, about 1 ms a row) are computed for the customers at or above a model's threshold,
those campaigns and support act on; the API computes the others on demand.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import orjson
import pandas as pd
from django.db import transaction
from django.utils import timezone

from behavior.core.features import build_features
from behavior.core.reasons import exact_reasons
from behavior.core.scorers import SCORERS, scorer_reasons
from behavior.models import ModelVersion, PastScore, Score, ScoringChunk, ScoringRun, Target
from behavior.selectors import customer_id_ranges, customers_frame, events_frame, shop_norms_at
from behavior.services.bulk import rows_upsert
from behavior.services.learning import TrainingError, models_train
from behavior.services.registry import LoadedModel
from behavior.signals import scoring_finished

# Customers per chunk: bounds a worker's memory (about 10 events each, a few hundred MB at most).
CHUNK_CUSTOMERS = 50_000
# A chunk takes seconds; one unfinished this long after it was sent has lost its message or its worker.
STALLED_AFTER = timedelta(minutes=10)


@dataclass
class ChunkResult:
    customers: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def scoring_run_start(*, as_of: datetime | None = None, chunk_customers: int = CHUNK_CUSTOMERS) -> ScoringRun:
    """Open a run with the current champions, its customers split into id ranges (its chunks)."""
    now = timezone.now()
    as_of = as_of or now
    defined = list(Target.objects.values_list("name", flat=True))
    champions = _champions(defined)
    skipped = {}
    untrained = [t for t in defined if t not in champions]
    if untrained:
        try:
            models_train(as_of=as_of, targets=untrained)
        except TrainingError as error:  # no events yet: nobody to score, and nothing lost by saying so
            skipped = {t: str(error) for t in untrained}
        champions = _champions(defined)
    ranges = customer_id_ranges(chunk_customers)
    # The first run of a day keeps its scores (two starting at once may both: harmless).
    keeps = not ScoringRun.objects.filter(keeps_scores=True, as_of__date=timezone.localdate(as_of)).exclude(
        status=ScoringRun.Status.FAILED).exists()
    with transaction.atomic():
        run = ScoringRun.objects.create(as_of=as_of, model_versions=champions, skipped=skipped, chunks=len(ranges),
                                        keeps_scores=keeps, norms=shop_norms_at(as_of))
        ScoringChunk.objects.bulk_create([ScoringChunk(run=run, first=first, last=last, dispatched_at=now)
                                          for first, last in ranges])
        if not ranges:  # no customer yet: the run is done, and its listeners still act (rules need no score)
            _run_finish(run)
    return run


def _champions(targets: list[str]) -> dict[str, int]:
    return {v.target: v.pk for v in ModelVersion.objects.filter(status=ModelVersion.Status.CHAMPION,
                                                                target__in=targets)}


def scoring_chunk_score(*, run: ScoringRun, first: int, last: int) -> ChunkResult:
    """Score customers with ids in [first, last] and overwrite their current scores."""
    result = ChunkResult()
    with _stage(result, "read"):
        events = events_frame(until=run.as_of, customers=(first, last))
        customers = customers_frame(customers=(first, last))
    with _stage(result, "features"):
        X = build_features(events, run.as_of, customers, norms=run.norms)
    frames = []
    for target, version_id in run.model_versions.items():
        model = LoadedModel(ModelVersion.objects.get(pk=version_id))
        scored = X[model.definition.in_population(X)]
        with _stage(result, f"predict_{target}"):
            probability = model.predict(scored)
        with _stage(result, f"reasons_{target}"):
            reasons = _reasons_for_acted_on(model, scored, probability)
        frames.append(pd.DataFrame({
            "customer_id": scored.index.to_numpy(dtype=np.int64), "target": target, "probability": probability,
            "model_version_id": version_id, "run_id": run.pk, "scored_at": run.as_of,
            "reasons": [orjson.dumps(r).decode() for r in reasons],
        }))
    result.customers = len(X)
    if not frames:
        return result
    rows = pd.concat(frames, ignore_index=True)
    with _stage(result, "write"):
        rows_upsert(table=Score._meta.db_table, rows=rows, conflict=["customer_id", "target"],
                    update=["probability", "model_version_id", "run_id", "scored_at", "reasons"])
        # Customers who left a target's population keep no answer to its question.
        Score.objects.filter(customer_id__gte=first, customer_id__lte=last, target__in=list(run.model_versions)
                             ).exclude(run_id=run.pk).delete()
    if run.keeps_scores:
        with _stage(result, "keep"):
            rows_upsert(table=PastScore._meta.db_table, rows=rows[["run_id", "customer_id", "target", "probability"]],
                        conflict=["run_id", "customer_id", "target"], update=["probability"])
    return result


def champions_predict(*, X: pd.DataFrame) -> dict[str, np.ndarray]:
    """The current champions' probabilities for a features frame, by target (replays and dry runs).

    NaN outside a target's population, where the cycle stores no score either.
    """
    out = {}
    for version in ModelVersion.objects.filter(status=ModelVersion.Status.CHAMPION).exclude(
            kind=ModelVersion.Kind.UPLIFT):
        model = LoadedModel(version)
        inside = model.definition.in_population(X)
        probability = np.full(len(X), np.nan)
        probability[inside] = model.predict(X[inside])
        out[version.target] = probability
    return out


def scoring_chunk_done(*, run_id: int, first: int, result: ChunkResult) -> ScoringRun | None:
    """Record a scored chunk; the run's last chunk closes it. Returns the run when this call closed it.

    The run's row is locked meanwhile, so of two chunks finishing at once exactly one sees none left.
    """
    with transaction.atomic():
        run = ScoringRun.objects.select_for_update().get(pk=run_id)
        ScoringChunk.objects.filter(run=run, first=first, finished_at__isnull=True).update(
            finished_at=timezone.now(), customers=result.customers, stage_seconds=result.seconds)
        if run.status != ScoringRun.Status.RUNNING or run.chunk_rows.filter(finished_at__isnull=True).exists():
            return None
        return _run_finish(run)


def _run_finish(run: ScoringRun) -> ScoringRun:
    """Close the run with its counts and per-stage seconds, and tell the listeners once it is committed."""
    chunks = list(run.chunk_rows.all())
    run.customers = sum(c.customers for c in chunks)
    run.stage_seconds = {}
    for chunk in chunks:
        for stage, seconds in chunk.stage_seconds.items():
            run.stage_seconds[stage] = round(run.stage_seconds.get(stage, 0.0) + seconds, 3)
    run.status, run.finished_at = ScoringRun.Status.SUCCEEDED, timezone.now()
    run.save()
    transaction.on_commit(lambda: scoring_finished.send(sender=ScoringRun, run=run))
    return run


def scoring_chunk_is_done(*, run_id: int, first: int) -> bool:
    """True when the run no longer needs this chunk: it is scored, or the run has ended."""
    return not ScoringChunk.objects.filter(run_id=run_id, first=first, finished_at__isnull=True,
                                           run__status=ScoringRun.Status.RUNNING).exists()


def scoring_chunks_stalled(*, older_than: timedelta = STALLED_AFTER) -> list[ScoringChunk]:
    """Unfinished chunks of running runs sent longer ago than `older_than`, marked as sent again now.

    Their message was lost (a broker restarted without persistence) or their worker died; scoring
    a chunk twice is harmless, so the caller simply sends them again.
    """
    now = timezone.now()
    with transaction.atomic():
        stalled = list(ScoringChunk.objects.select_for_update(skip_locked=True).filter(
            run__status=ScoringRun.Status.RUNNING, finished_at__isnull=True, dispatched_at__lt=now - older_than))
        ScoringChunk.objects.filter(pk__in=[c.pk for c in stalled]).update(dispatched_at=now)
    return stalled


def scoring_cycle_run(*, as_of: datetime | None = None, chunk_customers: int = CHUNK_CUSTOMERS,
                      on_chunk: Callable[[int], None] | None = None) -> ScoringRun:
    """The whole cycle in this process: what `manage.py score` and the embedded default run."""
    run = scoring_run_start(as_of=as_of, chunk_customers=chunk_customers)
    try:
        for chunk in run.chunk_rows.order_by("first"):
            result = scoring_chunk_score(run=run, first=chunk.first, last=chunk.last)
            scoring_chunk_done(run_id=run.pk, first=chunk.first, result=result)
            if on_chunk:
                on_chunk(result.customers)
    except Exception as error:
        scoring_run_fail(run=run, error=error)
        raise
    run.refresh_from_db()
    return run


def scoring_run_fail(*, run: ScoringRun, error: BaseException) -> None:
    ScoringRun.objects.filter(pk=run.pk).update(status=ScoringRun.Status.FAILED, finished_at=timezone.now(),
                                                error=f"{type(error).__name__}: {error}")


def _reasons_for_acted_on(model: LoadedModel, X: pd.DataFrame, probability: np.ndarray) -> list[list]:
    """Reasons for the customers at or above the threshold, whom campaigns and support act on."""
    reasons: list[list] = [[] for _ in range(len(X))]
    if model.version.threshold is None:
        return reasons
    acted_on = np.flatnonzero(probability >= model.version.threshold)
    if len(acted_on):
        for row, found in zip(acted_on, _reasons(model, X.iloc[acted_on]), strict=True):
            reasons[row] = found
    return reasons


def _reasons(model: LoadedModel, X: pd.DataFrame) -> list[list[dict]]:
    if model.booster is not None:
        return exact_reasons(model.booster, X)
    return scorer_reasons(SCORERS[model.version.kind], X, model.definition, model.version.params)


@contextmanager
def _stage(result: ChunkResult, name: str):
    started = time.perf_counter()
    yield
    result.seconds[name] = result.seconds.get(name, 0.0) + time.perf_counter() - started


def score_reasons_explain(*, score: Score) -> list[dict]:
    """Reasons for one score, computed now when the cycle did not store them (below the threshold)."""
    if score.reasons:
        return score.reasons
    model = LoadedModel(score.model_version)
    customer = (score.customer_id, score.customer_id)
    norms = score.run.norms if score.run is not None else shop_norms_at(score.scored_at)
    X = build_features(events_frame(until=score.scored_at, customers=customer), score.scored_at,
                       customers_frame(customers=customer), norms=norms)
    return _reasons(model, X)[0]
