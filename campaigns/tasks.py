"""Celery tasks of the campaigns: thin wrappers over campaigns.services."""

from dataclasses import asdict
from datetime import datetime
from typing import Any

import pandas as pd
from celery import chord, shared_task
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from behavior.broker import dispatch
from behavior.conf import foresight_settings
from behavior.models import ScoringRun
from behavior.selectors import customer_id_ranges
from campaigns.actions.message import messages_deliver
from campaigns.placements_cache import impressions_flush
from campaigns.services import (
    AUDIENCE_COLUMNS,
    REQUEST_LOST_AFTER,
    campaign_audience_compute,
    campaigns_audiences,
    campaigns_evaluate,
)
from campaigns.uplift import uplift_learn_all

REQUEST_LOST_SECONDS = int(REQUEST_LOST_AFTER.total_seconds())  # by then the page has asked again
RETRY: dict[str, Any] = dict(acks_late=True, autoretry_for=(OperationalError, InterfaceError), retry_backoff=True,
                             max_retries=5)


# Safe to run twice: assignments are unique per campaign, customer and period, and each campaign
# is evaluated under its row lock, so a redelivered or duplicated task assigns nothing again.
@shared_task(**RETRY)
def evaluate_campaigns(run_id: int | None = None) -> list[dict] | None:
    """Evaluate the campaigns after a run (at its time), or on their own schedule without one (now, with the scores
    stored, if any): in this task for a small shop, else audiences range by range first, all at the same moment."""
    run = ScoringRun.objects.get(pk=run_id) if run_id is not None else None
    now = run.as_of if run else timezone.now()
    ranges = customer_id_ranges(foresight_settings.AUDIENCE_CHUNK_CUSTOMERS)
    if len(ranges) <= 1:
        return [asdict(outcome) for outcome in campaigns_evaluate(run=run, now=now)]
    at = now.isoformat()
    audiences = [campaign_audiences.s(run_id, first, last, at) for first, last in ranges]
    dispatch(chord(audiences, assign_campaigns.s(run_id, at)))
    return None


def _moment(run_id: int | None, at: str | None) -> datetime:
    if at is None:  # a run's task queued before evaluate_campaigns gave `at` (during an upgrade): the run's time
        assert run_id is not None
        return ScoringRun.objects.get(pk=run_id).as_of
    return datetime.fromisoformat(at)


@shared_task(**RETRY)
def campaign_audiences(run_id: int | None, first: int, last: int, at: str | None = None) -> dict[str, list]:
    """Each live campaign's audience among customers first..last: [ids, purchase intents, predicted uplifts]
    (None: unscored, not targeted by uplift)."""
    audiences = campaigns_audiences(now=_moment(run_id, at), customers=(first, last))
    return {str(pk): [a.index.tolist(), *(_json_floats(a[column]) for column in AUDIENCE_COLUMNS)]
            for pk, a in audiences.items()}


def _json_floats(values: pd.Series) -> list[float | None]:
    return values.astype(object).where(values.notna(), None).tolist()


@shared_task(**RETRY)
def assign_campaigns(parts: list[dict[str, list]], run_id: int | None, at: str | None = None) -> list[dict]:
    """Assign from the audiences of every range, campaign by campaign in priority order."""
    audiences: dict[int, list[pd.DataFrame]] = {}
    for part in parts:
        for pk, (ids, *columns) in part.items():
            frame = pd.DataFrame(dict(zip(AUDIENCE_COLUMNS, columns, strict=True)), index=pd.Index(ids, dtype="int64"),
                                 dtype="float64")
            audiences.setdefault(int(pk), []).append(frame)
    merged = {pk: pd.concat(frames).sort_index() for pk, frames in audiences.items()}
    run = ScoringRun.objects.get(pk=run_id) if run_id is not None else None
    return [asdict(outcome) for outcome in campaigns_evaluate(run=run, now=_moment(run_id, at), audiences=merged)]


# Safe to run twice: the figures kept are the latest computed (campaign_audience_store).
@shared_task(**RETRY, expires=REQUEST_LOST_SECONDS)
def compute_campaign_audience(campaign_id: int) -> int | None:
    """A campaign's audience figures for its page, asked for by the page or its save (campaign_audience_request)."""
    row = campaign_audience_compute(campaign_id=campaign_id)
    return None if row is None else row.audience


@shared_task(**RETRY)
def flush_impressions() -> int:
    """Every minute: the impressions that kept placements answers counted in Redis, added to their assignments."""
    return impressions_flush()


@shared_task(autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, max_retries=3)
def deliver_messages() -> dict:
    """Send message campaigns' due messages (after each evaluation's commit, and every minute)."""
    return asdict(messages_deliver())


@shared_task(**RETRY)
def learn_uplift() -> dict[int, str]:
    """Weekly: each campaign that targets by uplift learns again from its history (champion only if better)."""
    return uplift_learn_all()
