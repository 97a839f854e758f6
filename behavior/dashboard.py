"""The admin's home page: a dashboard above the app list.

Each app adds its sections (`dashboard_section`), each shown only to users with the permission it names: a
campaign manager reads the campaigns and the scores they rest on, a support lead the ticket queue and the same
scores, an administrator everything. A section reads what runs and services stored (model versions' metrics,
scoring runs, assignments, coupons, tickets), never the customers' events in bulk: it is drawn on a request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from behavior.admin import table
from behavior.charts import Bar, bar_chart
from behavior.selectors import scorers_serving, scoring_runs_latest

RUNS_CHARTED = 10


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    permission: str  # "app_label.codename" a user needs to see it
    order: int  # lower first
    render: Callable[[HttpRequest], str]


SECTIONS: dict[str, Section] = {}


def dashboard_section(name: str, *, title: str, permission: str, order: int):
    """Register a function of the request that draws a section of the admin's home page (escaped HTML)."""

    def register(render: Callable[[HttpRequest], str]) -> Callable[[HttpRequest], str]:
        SECTIONS[name] = Section(name, title, permission, order, render)
        return render

    return register


def dashboard(request: HttpRequest) -> SafeString:
    """The sections this user may see, in their order."""
    shown = sorted((s for s in SECTIONS.values() if request.user.has_perm(s.permission)), key=lambda s: s.order)
    return format_html_join("", '<div class="module foresight-dashboard" id="dashboard-{}"><h2>{}</h2>'
                                '<div class="foresight-dashboard-body">{}</div></div>',
                            ((s.name, s.title, s.render(request)) for s in shown))


def admin_link(request: HttpRequest, text: str, model: str, *, pk: int | None = None, query: str = "") -> str:
    """A link to an admin page of `model` ("app_label.model_name"), or the bare text for a user who may not
    view it."""
    app_label, name = model.split(".")
    if not request.user.has_perm(f"{app_label}.view_{name}"):
        return text
    if pk is None:
        return format_html('<a href="{}{}">{}</a>', reverse(f"admin:{app_label}_{name}_changelist"), query, text)
    return format_html('<a href="{}">{}</a>', reverse(f"admin:{app_label}_{name}_change", args=[pk]), text)


def charts(*charted: str) -> SafeString:
    return format_html('<div class="foresight-charts">{}</div>', format_html_join("", "{}", ((c,) for c in charted)))


def when(moment: datetime) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M %Z}"


def _roc_auc_bar(label: str, figures: dict) -> Bar | None:
    low, high = figures.get("roc_auc_interval") or (None, None)
    if figures.get("roc_auc") is None:
        return None
    return Bar(label, figures["roc_auc"], *((low, high) if low is not None and high is not None else ()))


@dashboard_section("scorers", title="Scores: what serves each target, what it promised and what it delivered",
                   permission="behavior.view_target", order=30)
def scorers(request: HttpRequest) -> str:
    rows, bars = [], []
    for target, version in scorers_serving():
        name = target.name.replace("_", " ")
        if version is None:
            rows.append([name, "nothing: not scored", "-", "-"])
            continue
        rows.append([name, admin_link(request, f"#{version.pk} {version.get_kind_display()}", "behavior.modelversion",
                                      pk=version.pk), version.promised, version.delivered])
        metrics = version.metrics or {}
        bars += [bar for bar in (_roc_auc_bar(f"{name}: promised", metrics),
                                 _roc_auc_bar(f"{name}: delivered", metrics.get("delivered") or {})) if bar]
    chart = bar_chart(bars, title="ROC-AUC promised on validation, delivered on customers scored (95% intervals)",
                      value_format="{:.3f}".format)
    return format_html("{}{}", table(["target", "serving scorer", "promised", "delivered"], rows), charts(chart))


def _seconds(run) -> float | None:
    return None if run.finished_at is None else (run.finished_at - run.started_at).total_seconds()


@dashboard_section("scoring", title="Scoring runs", permission="behavior.view_score", order=40)
def scoring(request: HttpRequest) -> str:
    runs = scoring_runs_latest(limit=RUNS_CHARTED)
    if not runs:
        return format_html("<p>No scoring run yet: {}.</p>", "the schedules run one every hour (manage.py "
                           "run_schedules, or celery beat)")
    latest = runs[0]
    run = admin_link(request, f"Run {latest.pk}", "behavior.scoringrun", pk=latest.pk)
    if latest.status == latest.Status.RUNNING:
        said = format_html("{} is running since {}: {} customers scored so far.", run, when(latest.started_at),
                           f"{latest.customers:,}")
    else:
        said = format_html("{} {} at {}: {} customers scored as of {}, in {} ({} chunks).", run, latest.status,
                           when(latest.finished_at or latest.started_at), f"{latest.customers:,}", when(latest.as_of),
                           f"{_seconds(latest):,.1f} s", f"{latest.chunks:,}")
    if latest.status == latest.Status.FAILED:
        said = format_html("{} {}", said, latest.error.splitlines()[0] if latest.error else "")
    finished = [r for r in reversed(runs) if r.finished_at is not None]
    chart = bar_chart([Bar(f"{r.pk}: {timezone.localtime(r.as_of):%m-%d %H:%M}"
                           + ("" if r.status == r.Status.SUCCEEDED else f" ({r.status})"), _seconds(r) or 0.0)
                       for r in finished], title=f"Seconds per run (the latest {len(finished)}, oldest first)",
                      value_format="{:,.1f} s".format)
    return format_html("<p>{}</p>{}", said, charts(chart))
