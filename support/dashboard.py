"""The support queue's section of the admin's home page (behavior.dashboard): tickets by status, and the
unresolved ones by their SLA."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from behavior.admin import table
from behavior.charts import Bar, bar_chart
from behavior.dashboard import admin_link, charts, dashboard_section
from support.models import Ticket
from support.selectors import DUE_SOON, ticket_queue


@dashboard_section("support", title="Support queue", permission="support.view_ticket", order=20)
def support_queue(request: HttpRequest) -> str:
    queue = ticket_queue(now=timezone.now())
    soon = f"due within {DUE_SOON.total_seconds() / 3600:g} hours"
    rows, bars = [], []
    for row in queue:
        status = Ticket.Status(row.status)
        link = f"?status__exact={status.value}"
        cells = [admin_link(request, status.label, "support.ticket", query=link),
                 admin_link(request, f"{row.tickets:,}", "support.ticket", query=link)]
        if status in Ticket.UNRESOLVED:
            later = row.tickets - row.overdue - row.due_soon
            cells += [admin_link(request, f"{row.overdue:,}", "support.ticket", query=f"{link}&overdue=yes"),
                      f"{row.due_soon:,}", f"{later:,}"]
            bars += [Bar(f"{status.value}: overdue", row.overdue), Bar(f"{status.value}: {soon}", row.due_soon),
                     Bar(f"{status.value}: later", later)]
        else:
            cells += ["-", "-", "-"]
        rows.append(cells)
    return format_html("{}{}", table(["status", "tickets", "overdue", soon, "due later"], rows),
                       charts(bar_chart(bars, title="Unresolved tickets by their SLA", value_format="{:,.0f}".format)))
