"""The campaigns' section of the admin's home page (behavior.dashboard): each active campaign's reach, the
conversions it added with their intervals, and its spend against its budget."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.html import format_html

from behavior.admin import percent, table
from behavior.charts import Bar, bar_chart
from behavior.dashboard import admin_link, charts, dashboard_section
from campaigns.actions.base import money
from campaigns.selectors import campaigns_active


@dashboard_section("campaigns", title="Active campaigns", permission="campaigns.view_campaign", order=10)
def active_campaigns(request: HttpRequest) -> str:
    from campaigns.admin import _extra_in_words  # the campaign page's words for the same results

    summaries = campaigns_active()
    if not summaries:
        return format_html("<p>No active campaign.</p>")
    rows, extra, spend = [], [], []
    for s in summaries:
        campaign, r = s.campaign, s.results
        reach = admin_link(request, f"{r.treatment.customers:,} treated, {r.control.customers:,} in the control group",
                           "campaigns.assignment", query=f"?campaign__id__exact={campaign.pk}")
        if not campaign.action.spends_budget:
            spent = "-"
        elif s.budget is None:
            spent = f"{money(r.discount_spent)}, no budget set"
        else:
            spent = f"{money(r.discount_spent)} of {money(s.budget)}"
            spend.append(Bar(campaign.name, float(r.discount_spent / s.budget) if s.budget else 0.0))
        rows.append([admin_link(request, campaign.name, "campaigns.campaign", pk=campaign.pk),
                     campaign.action.label, reach, _extra_in_words(r), spent])
        if r.extra_conversions is not None and r.extra_conversions_interval is not None and not r.too_early:
            extra.append(Bar(campaign.name, r.extra_conversions, *r.extra_conversions_interval))
    return format_html("{}{}", table(["campaign", "action", "reach", "conversions it added", "discount spent"], rows),
                       charts(bar_chart(extra, title="Extra conversions (treatment against control, 95% intervals)",
                                        value_format="{:+,.1f}".format),
                              bar_chart(spend, title="Budget spent", value_format=percent)))
