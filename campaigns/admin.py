from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.html import format_html

from campaigns.models import Assignment, Campaign, Coupon
from campaigns.selectors import campaign_preview, campaign_results
from campaigns.services import CampaignError, campaign_set_status


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "status", "priority", "slot", "holdout_percent", "starts_at", "ends_at"]
    list_filter = ["kind", "status"]
    search_fields = ["name"]
    readonly_fields = ["status", "discount_spent", "audience_now", "results"]
    actions = ["activate", "pause", "end"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "status", "priority", "condition", "audience_now"]}),
        ("Schedule and caps", {"fields": ["starts_at", "ends_at", "period_days", "max_assignments",
                                          "holdout_percent", "attribution_days", "skip_likely_buyers_above"]}),
        ("Ad", {"fields": ["slot", "headline", "strategy", "products_per_ad"]}),
        ("Price offer", {"fields": ["discount_kind", "discount_value", "scope", "scope_value", "min_order",
                                    "valid_days", "budget", "discount_spent"]}),
        ("Results", {"fields": ["results"]}),
    ]

    @admin.display(description="Audience now")
    def audience_now(self, campaign):
        if campaign.pk is None:
            return "Save to see the audience."
        p = campaign_preview(campaign=campaign)
        cost = "" if p.expected_cost is None else f"; expected cost {p.expected_cost}"
        return (f"{p.audience:,} customers match with consent: {p.holdout:,} held out, {p.treated:,} treated; "
                f"{p.expected_redemptions:,.0f} expected to buy{cost}")

    @admin.display(description="Results")
    def results(self, campaign):
        if campaign.pk is None:
            return "-"
        r = campaign_results(campaign=campaign)

        def rate(g):
            return "-" if g.rate is None else f"{g.rate:.1%} of {g.customers:,}"

        uplift = "-" if r.uplift is None else (
            f"{r.uplift:+.1%} (95% interval {r.uplift_interval[0]:+.1%} to {r.uplift_interval[1]:+.1%})")
        return format_html(
            "treatment converted {}<br>control converted {}<br>uplift {}<br>{} redemptions, {} discount spent, "
            "cost per extra conversion {}",
            rate(r.treatment), rate(r.control), uplift, r.redemptions, r.discount_spent,
            r.cost_per_extra_conversion or "-",
        )

    def _set_status(self, request, queryset, status):
        for campaign in queryset:
            try:
                campaign_set_status(campaign=campaign, status=status)
            except (CampaignError, ValidationError) as error:
                self.message_user(request, f"{campaign}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"{campaign}: {status}", messages.SUCCESS)

    @admin.action(description="Activate")
    def activate(self, request, queryset):
        self._set_status(request, queryset, Campaign.Status.ACTIVE)

    @admin.action(description="Pause")
    def pause(self, request, queryset):
        self._set_status(request, queryset, Campaign.Status.PAUSED)

    @admin.action(description="End")
    def end(self, request, queryset):
        self._set_status(request, queryset, Campaign.Status.ENDED)


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["assigned_at", "campaign", "customer", "group", "impressions", "expires_at"]
    list_filter = ["group", "campaign"]
    list_select_related = ["campaign", "customer"]
    raw_id_fields = ["customer", "run"]
    search_fields = ["customer__external_id"]
    show_full_result_count = False


@admin.register(Coupon)
class CouponAdmin(admin.ModelAdmin):
    list_display = ["code", "customer", "expires_at", "redeemed_at", "discount_amount"]
    list_select_related = ["customer"]
    raw_id_fields = ["assignment", "customer"]
    search_fields = ["code", "customer__external_id"]
    show_full_result_count = False
