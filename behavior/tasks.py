"""Celery tasks: thin wrappers that take plain data and call a service."""

from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from celery import chord, shared_task
from django.db import InterfaceError, OperationalError, transaction

from behavior import importers
from behavior.models import ScoringRun
from behavior.services import learning, scoring
from behavior.services.imports import ImportAborted, events_import


# Safe to acknowledge late and run again: the import is one transaction and event ids come
# from the file's rows, so a rerun after a crash stores each event once.
@shared_task(acks_late=True)
def import_events_file(path: str, format: str, source_options: dict, *, strict: bool = False) -> dict:
    source = importers.open_source(Path(path), format, **source_options)
    try:
        report = events_import(source=source, strict=strict)
    except ImportAborted as aborted:
        report = aborted.report
    return {
        "source": report.source,
        "rows_read": report.rows_read,
        "new": report.new.total(),
        "already_present": report.present.total(),
        "bad_rows": report.bad_rows,
        "written": report.written,
    }


# --- The scoring cycle: beat -> score_customers -> a chord of chunks -> finish_scoring_run ---------


@shared_task
def score_customers(as_of: str | None = None, chunk_customers: int = scoring.CHUNK_CUSTOMERS) -> int:
    """Open a run and fan its chunks out to the workers; the chord's callback closes it."""
    run, chunks = scoring.scoring_run_start(as_of=datetime.fromisoformat(as_of) if as_of else None,
                                            chunk_customers=chunk_customers)
    header = [score_chunk.s(run.pk, first, last) for first, last in chunks]
    callback = finish_scoring_run.s(run.pk).on_error(fail_scoring_run.s(run.pk))
    transaction.on_commit(lambda: chord(header)(callback))
    return run.pk


# A chunk overwrites its customers' current scores, so a redelivery after a worker died
# (acks_late) or a retry after a dropped database connection writes the same rows again.
@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=(OperationalError, InterfaceError),
             retry_backoff=5, retry_backoff_max=300, max_retries=5)
def score_chunk(run_id: int, first: int, last: int) -> dict:
    result = scoring.scoring_chunk_score(run=ScoringRun.objects.get(pk=run_id), first=first, last=last)
    return asdict(result)


@shared_task
def finish_scoring_run(results: list[dict], run_id: int) -> dict:
    run = scoring.scoring_run_finish(run=ScoringRun.objects.get(pk=run_id),
                                     results=[scoring.ChunkResult(**r) for r in results])
    return {"run": run.pk, "customers": run.customers, "stage_seconds": run.stage_seconds}


@shared_task
def fail_scoring_run(request, exc, traceback, run_id: int) -> None:
    """A chunk failed for good (retries spent): the run says so instead of staying 'running'."""
    scoring.scoring_run_fail(run=ScoringRun.objects.get(pk=run_id), error=exc)


@shared_task(acks_late=True)
def train_models(as_of: str | None = None) -> list[dict]:
    """Train both targets; each candidate is promoted only if it beats its champion."""
    outcomes = learning.models_train(as_of=datetime.fromisoformat(as_of) if as_of else None)
    return [{"target": o.target, "version": o.version_id, "kind": o.kind, "promoted": o.promoted} for o in outcomes]
