"""Celery tasks of the campaigns: thin wrappers over campaigns.services."""

from dataclasses import asdict

from celery import shared_task
from django.db import InterfaceError, OperationalError

from behavior.models import ScoringRun
from campaigns.services import campaigns_evaluate


# Safe to run twice: assignments are unique per campaign, customer and period, and each campaign
# is evaluated under its row lock, so a redelivered or duplicated task assigns nothing again.
@shared_task(acks_late=True, autoretry_for=(OperationalError, InterfaceError), retry_backoff=True, max_retries=5)
def evaluate_campaigns(run_id: int) -> list[dict]:
    run = ScoringRun.objects.get(pk=run_id)
    return [asdict(outcome) for outcome in campaigns_evaluate(run=run)]
