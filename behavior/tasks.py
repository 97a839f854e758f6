"""Celery tasks: thin wrappers that take plain data and call a service."""

from pathlib import Path

from celery import shared_task

from behavior import importers
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
