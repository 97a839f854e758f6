"""Celery tasks: thin wrappers that take plain data and call a service."""

from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from celery import Task, group, shared_task
from django.db import InterfaceError, OperationalError, transaction

from behavior.broker import dispatch, hand_over
from behavior.core import importers
from behavior.models import ScoringRun
from behavior.services import learning, outcomes, scoring
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


# --- The scoring cycle: beat -> score_customers -> one task per chunk; the last chunk closes the run ---------


@shared_task
def score_customers(as_of: str | None = None, chunk_customers: int = scoring.CHUNK_CUSTOMERS) -> int:
    """Open a run and send its chunks to the workers."""
    run = scoring.scoring_run_start(as_of=datetime.fromisoformat(as_of) if as_of else None,
                                    chunk_customers=chunk_customers)
    chunks = [score_chunk.s(run.pk, first, last) for first, last in run.chunk_rows.values_list("first", "last")]
    # The chunks are stored: any the broker does not take now are stalled, and sent again later.
    transaction.on_commit(lambda: hand_over(group(chunks), sweeper="resend_stalled_chunks"))
    return run.pk


class ScoringChunkTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        """A chunk failed for good (retries spent): the run says so instead of staying 'running'."""
        scoring.scoring_run_fail(run=ScoringRun.objects.get(pk=args[0]), error=exc)


# A chunk overwrites its customers' current scores, so a redelivery after a worker died
# (acks_late), a resend of a stalled chunk, or a retry after a dropped database connection
# writes the same rows again.
@shared_task(base=ScoringChunkTask, acks_late=True, reject_on_worker_lost=True,
             autoretry_for=(OperationalError, InterfaceError), retry_backoff=5, retry_backoff_max=300, max_retries=5)
def score_chunk(run_id: int, first: int, last: int) -> dict:
    if scoring.scoring_chunk_is_done(run_id=run_id, first=first):
        return {"skipped": "already scored, or the run has ended"}
    result = scoring.scoring_chunk_score(run=ScoringRun.objects.get(pk=run_id), first=first, last=last)
    scoring.scoring_chunk_done(run_id=run_id, first=first, result=result)
    return asdict(result)


@shared_task
def resend_stalled_chunks() -> int:
    """Send again the chunks whose message or worker was lost (beat runs this every few minutes)."""
    stalled = scoring.scoring_chunks_stalled()
    for chunk in stalled:
        dispatch(score_chunk.si(chunk.run_id, chunk.first, chunk.last))
    return len(stalled)


@shared_task
def check_score_outcomes() -> dict:
    """Daily: how the kept scores of past runs turned out, once their horizon has passed."""
    report = outcomes.scoring_runs_check_outcomes()
    return {"checked": report.checked, "forgotten_scores": report.forgotten_scores}


@shared_task(acks_late=True)
def train_models(as_of: str | None = None) -> list[dict]:
    """Train both targets; each candidate is promoted only if it beats its champion."""
    outcomes = learning.models_train(as_of=datetime.fromisoformat(as_of) if as_of else None)
    return [{"target": o.target, "version": o.version_id, "kind": o.kind, "promoted": o.promoted} for o in outcomes]
