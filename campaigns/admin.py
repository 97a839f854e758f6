from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.forms.models import BaseInlineFormSet
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from behavior.admin import (
    ReadOnlyAdmin,
    StatusButtonsAdmin,
    WebhookDestinationAdmin,
    destination_form,
    next_run_in_words,
    percent,
)
from behavior.charts import Bar, bar_chart, line_chart
from behavior.condition_builder import ConditionBuilderAdmin
from campaigns.actions import registry
from campaigns.actions.base import money
from campaigns.models import Assignment, Campaign, CampaignAudience, Coupon, Message, MessagingSettings
from campaigns.selectors import (
    MIN_GROUP_CUSTOMERS,
    CampaignResults,
    campaign_results,
    campaign_targeting,
)
from campaigns.services import (
    NEXT_STATUSES,
    CampaignError,
    campaign_audience_request,
    campaign_evaluate_now,
    campaign_fingerprint,
    campaign_set_status,
)
from campaigns.tasks import evaluate_campaigns
from campaigns.uplift import ranking_in_words

BUTTONS = {Campaign.Status.ACTIVE: "Activate", Campaign.Status.PAUSED: "Pause", Campaign.Status.ENDED: "End"}


class ActionSettingsFormSet(BaseInlineFormSet):
    """One action's settings of the campaign being edited. A new campaign shows every action's (its kind is not
    chosen yet); only the chosen kind's are checked and saved, at their defaults too."""

    kind = ""

    def _chosen(self) -> bool:
        return self.instance.kind == self.kind

    def _construct_form(self, i, **kwargs):
        form = super()._construct_form(i, **kwargs)
        if self.is_bound and self._chosen():
            form.empty_permitted = False
            form.has_changed = lambda: True
        return form

    def is_valid(self):
        return not self.is_bound or not self._chosen() or super().is_valid()

    def save_existing(self, form, obj, commit=True):
        # Only the fields the page edits: a redemption may have spent some of the budget since it was read.
        obj = form.save(commit=False)
        if commit:
            edited = {f.name for f in obj._meta.concrete_fields if not f.primary_key} & set(form.fields)
            obj.save(update_fields=sorted(edited))
        return obj

    def save(self, commit=True):
        if self._chosen():
            return super().save(commit)
        self.new_objects, self.changed_objects, self.deleted_objects = [], [], []
        return []


def settings_inline(action) -> type[admin.StackedInline]:
    model = action.settings_model
    return type(f"{model.__name__}Inline", (admin.StackedInline,), {
        "model": model, "formset": type(f"{model.__name__}FormSet", (ActionSettingsFormSet,), {"kind": action.kind}),
        "verbose_name": action.label.capitalize(), "verbose_name_plural": action.label.capitalize(),
        "extra": 1, "max_num": 1, "can_delete": False, "classes": ["action-settings", f"kind-{action.kind}"],
        "readonly_fields": [f.name for f in model._meta.concrete_fields if not f.editable]})


@admin.register(Campaign)
class CampaignAdmin(ConditionBuilderAdmin, StatusButtonsAdmin):
    counts_consent = True  # the builder's count: only customers with marketing consent are reached
    list_display = ["name", "kind", "status", "priority", "slot", "holdout_percent", "starts_at", "ends_at"]
    list_filter = ["kind", "status"]
    search_fields = ["name"]
    readonly_fields = ["status", "next_evaluation", "audience_now", "uplift_model", "assignments", "results"]
    actions = ["activate", "pause", "end", "evaluate_now"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "status", "next_evaluation", "priority", "slot"]}),
        ("Audience", {"fields": ["condition", "audience_now"]}),
        ("Schedule and caps", {"fields": ["starts_at", "ends_at", "period_days", "max_assignments",
                                          "holdout_percent", "attribution_days", "skip_likely_buyers_above"]}),
        ("Targeting by uplift", {"fields": ["uplift_top_percent", "uplift_top_count", "uplift_model"]}),
        ("Results", {"fields": ["assignments", "results"]}),
    ]
    # Each action's own settings, below: the chosen kind's (a new campaign's page switches them with the kind).
    inlines = [settings_inline(action) for action in registry().values() if action.settings_model is not None]

    class Media:
        js = ["campaigns/action_settings.js"]
        css = {"all": ["campaigns/action_settings.css"]}

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "kind"] if obj is not None else self.readonly_fields  # its settings' model

    def get_inline_instances(self, request, obj=None):
        return [inline for inline in super().get_inline_instances(request, obj)
                if obj is None or inline.formset.kind == obj.kind]

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        settings = form.instance.settings
        if settings is not None and settings._state.adding:  # no form of them was sent: the defaults
            settings.save()
        campaign_audience_request(campaign=form.instance)  # its figures, for the condition and settings saved

    @admin.display(description="Next evaluation")
    def next_evaluation(self, campaign):
        if campaign.status != Campaign.Status.ACTIVE:
            return f"None while it is {campaign.status}: only live campaigns are evaluated."
        start = ("" if campaign.starts_at is None or campaign.starts_at <= timezone.now()
                 else f"Not before its start at {timezone.localtime(campaign.starts_at):%Y-%m-%d %H:%M %Z}. ")
        return f"{start}{next_run_in_words(evaluate_campaigns.name)}; and after each scoring run."

    @admin.display(description="Audience now")
    def audience_now(self, campaign):
        """The figures the last evaluation or background computation kept (CampaignAudience), and how old they are:
        computing them reads every customer's events, seconds to minutes on a big shop, never on this page."""
        if campaign.pk is None:
            return "Save (it stays a draft) to see who the campaign would reach."
        stored = CampaignAudience.objects.filter(campaign=campaign).first()
        fingerprint = campaign_fingerprint(campaign)
        computing = ""
        if stored is not None and stored.requested_at is not None and stored.requested_fingerprint == fingerprint:
            computing = (f"Being computed in the background since {_at(stored.requested_at)}: {stored.progress}. "
                         "Reload the page to see it.")
        if stored is None or stored.as_of is None:
            return computing or "Not computed yet: it is computed in the background once the page has been saved."
        figures = _figures_in_words(campaign, stored)
        when = _as_of_in_words(stored)
        if stored.fingerprint != fingerprint:
            return f"{computing} Before the campaign's last change, {when}: {figures}".strip()
        return f"{figures}; {when}." + (f" {computing}" if computing else "")

    @admin.display(description="Uplift model")
    def uplift_model(self, campaign):
        if campaign.pk is None or not campaign.targets_by_uplift:
            return ("Off. Give a share or a count to keep to the customers the action persuades most, once the "
                    "campaign has learnt whom from its own treatment and control groups.")
        targeting = campaign_targeting(campaign)
        if targeting.model is None:
            return f"The campaign picks its audience {targeting.says}."
        return qini_summary(targeting.model.metrics)

    @admin.display(description="Assignments")
    def assignments(self, campaign):
        if campaign.pk is None:
            return "-"
        link = reverse("admin:campaigns_assignment_changelist") + f"?campaign__id__exact={campaign.pk}"
        counts = dict(campaign.assignments.values_list("group").annotate(n=Count("pk")).order_by())
        if not counts and campaign.status == Campaign.Status.ACTIVE:  # activated since the last evaluation
            return f"None assigned yet: {self._assigned_when(campaign)}"
        return format_html('{} treated, {} in the control group: <a href="{}">see each customer</a>',
                           f"{counts.get('treatment', 0):,}", f"{counts.get('control', 0):,}", link)

    @admin.display(description="Results")
    def results(self, campaign):
        if campaign.pk is None:
            return "-"
        r = campaign_results(campaign=campaign)
        conversion = bar_chart([_rate_bar(name, g) for name, g in (("treatment", r.treatment), ("control", r.control))
                                if g.customers], title="Converted within the attribution window", value_format=percent)
        uplift = bar_chart([Bar("uplift (95% interval)", r.uplift, *r.uplift_interval)]
                           if r.uplift is not None and r.uplift_interval is not None and not r.too_early else [],
                           title="Uplift: treatment minus control", value_format="{:+.1%}".format)
        action = campaign.action
        did = action.what_it_did(campaign, r)
        summary = format_html("{}{}. A customer converted who {} within {} days of being assigned.",
                              f"{did}; " if did else "", _extra_in_words(r), action.converted,
                              campaign.attribution_days)
        return format_html('<p>{}</p><div style="display:flex;gap:2em;flex-wrap:wrap">{}{}{}</div>', summary,
                           conversion, uplift, format_html_join("", "{}", ((c,) for c in action.charts(campaign))))

    def next_statuses(self, campaign):
        return [(status.value, BUTTONS[status]) for status in NEXT_STATUSES[campaign.status]]

    def _set_status(self, request, queryset, status):
        for campaign in queryset:
            try:
                campaign_set_status(campaign=campaign, status=status)
            except (CampaignError, ValidationError) as error:
                self.message_user(request, f"{campaign}: {error}", messages.ERROR)
            else:
                # Activating assigns no one by itself: the message says when the campaign is next evaluated.
                then = f"; {self._assigned_when(campaign)}" if status == Campaign.Status.ACTIVE else ""
                self.message_user(request, f"{campaign}: {status}{then}", messages.SUCCESS)

    def _assigned_when(self, campaign) -> str:
        return (f"the campaign assigns its customers when it is next evaluated: {self.next_evaluation(campaign)} "
                "Evaluate now does it at once.")

    @admin.action(description="Activate")
    def activate(self, request, queryset):
        self._set_status(request, queryset, Campaign.Status.ACTIVE)

    @admin.action(description="Pause")
    def pause(self, request, queryset):
        self._set_status(request, queryset, Campaign.Status.PAUSED)

    @admin.action(description="End")
    def end(self, request, queryset):
        self._set_status(request, queryset, Campaign.Status.ENDED)

    @admin.action(description="Evaluate now", permissions=["change"])
    def evaluate_now(self, request, queryset):
        for campaign in queryset:
            try:
                o = campaign_evaluate_now(campaign=campaign)
            except CampaignError as error:
                self.message_user(request, f"{campaign}: {error}", messages.ERROR)
            else:
                self.message_user(request, (
                    f"{campaign}: {o.matched:,} matched, {o.already_reached:,} of them assigned earlier this period; "
                    f"{o.control:,} held out as control, {o.reached:,} reached, {o.out_of_budget:,} out of contact "
                    f"budget, {o.over_cap:,} over the cap"), messages.SUCCESS)

    def get_urls(self):
        evaluate = path("<path:object_id>/evaluate/", self.admin_site.admin_view(self.evaluate_view),
                        name="campaigns_campaign_evaluate")
        return [evaluate, *super().get_urls()]

    def evaluate_view(self, request, object_id):
        """The campaign page's "Evaluate now" button: the action, for this campaign."""
        campaign = self.get_object(request, object_id)
        if request.method != "POST" or campaign is None or not self.has_change_permission(request, campaign):
            raise PermissionDenied
        self.evaluate_now(request, [campaign])
        return redirect("admin:campaigns_campaign_change", campaign.pk)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk is not None and request.method == "GET":
            campaign_audience_request(campaign=obj)  # when its figures are not for it as it is stored
        if obj is not None and obj.status == Campaign.Status.ACTIVE and self.has_change_permission(request, obj):
            context["action_buttons"] = [(reverse("admin:campaigns_campaign_evaluate", args=[obj.pk]), "Evaluate now")]
        return super().render_change_form(request, context, add, change, form_url, obj)


def _at(moment) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M %Z} ({timesince(moment)} ago)"


def _as_of_in_words(stored: CampaignAudience) -> str:
    """Where the figures come from and how old they are."""
    if stored.source == CampaignAudience.Source.EVALUATION and stored.run_id is not None:
        return f"as of the scoring run at {_at(stored.as_of)} and the evaluation that followed it"
    if stored.source == CampaignAudience.Source.EVALUATION:
        return f"as of the evaluation at {_at(stored.as_of)}"
    return f"as computed in the background at {_at(stored.as_of)}"


def _figures_in_words(campaign: Campaign, p: CampaignAudience) -> str:
    if p.error:
        return f"none: {p.error}. Fix the condition to see the audience"
    cost = "" if p.expected_cost is None else f"; expected cost {money(p.expected_cost)}"
    picked = ""
    if campaign.targets_by_uplift:
        picked = f"; picked {p.targeting}" + (f", {p.kept:,} kept" if p.expected_uplift is not None else "")
    extra = "" if p.expected_uplift is None else f" ({p.expected_uplift:+,.1f} because of it)"
    return (f"{p.audience:,} customers match with consent{picked}: {p.holdout:,} held out, {p.treated:,} "
            f"treated; {p.expected_redemptions:,.0f} expected to buy{extra}{cost}")


def _extra_in_words(r: CampaignResults) -> str:
    """Conversions the campaign added and what each cost, with their 95% intervals."""
    if r.extra_conversions is None or r.extra_conversions_interval is None:
        return "extra conversions: none to measure without a control group"
    if r.too_early:
        return (f"extra conversions: too early to tell with {r.treatment.customers:,} treated and "
                f"{r.control.customers:,} in the control group (it takes {MIN_GROUP_CUSTOMERS:,} in each to tell)")
    low, high = r.extra_conversions_interval
    words = f"{r.extra_conversions:+,.1f} extra conversions [{low:+,.1f}, {high:+,.1f}]"
    if r.cost_per_extra_conversion is None or r.cost_interval is None:
        return words  # none added, or an action whose cost is not a budget spent
    cheapest, dearest = r.cost_interval
    return (f"{words}, {money(r.cost_per_extra_conversion)} per extra conversion "
            f"[{money(cheapest)}, {'no upper bound' if dearest is None else money(dearest)}]")


def qini_summary(m: dict) -> str:
    """An uplift model's validation: its Qini curve beside the response model's and a random ranking's, in words
    and as a chart (customers it did not learn from)."""
    n = m["validation_assignments"]
    curves = {name: [(x / n, y) for x, y in m[f"{prefix}qini_curve"]]
              for name, prefix in (("uplift model", ""), ("response model", "response_"))}
    curves["random"] = [(0.0, 0.0), curves["uplift model"][-1]]
    chart = line_chart(curves, title=f"Extra conversions by share targeted ({n:,} customers it did not learn from)",
                       x_format="{:.0%}".format, y_format="{:+,.0f}".format, width=520)
    return format_html("<p>Uplift model: {}. Response model (likeliest buyers first): {}.</p>{}",
                       ranking_in_words(m), ranking_in_words(m, "response_"), chart)


def _rate_bar(name, group) -> Bar:
    """A group's conversion rate with its 95% Wilson score interval (never zero wide at 0 or at every customer)."""
    return Bar(f"{name} ({group.converted:,} of {group.customers:,})", group.rate, *group.rate_interval)


# Assignments and coupons are records evaluation and redemption keep (results and placements read them):
# read here, never changed by hand.
@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyAdmin):
    list_display = ["assigned_at", "campaign", "customer", "group", "offer", "impressions", "expires_at"]
    list_filter = ["group", "campaign"]
    list_select_related = ["campaign", "customer", "coupon"]
    raw_id_fields = ["customer", "run"]
    search_fields = ["=customer__external_id"]
    show_full_result_count = False

    @admin.display(description="Coupon")
    def offer(self, assignment):
        coupon = getattr(assignment, "coupon", None)
        return "-" if coupon is None else coupon.code


@admin.register(Coupon)
class CouponAdmin(ReadOnlyAdmin):
    list_display = ["code", "customer", "assignment__campaign", "expires_at", "redeemed_at", "discount"]
    list_select_related = ["customer", "assignment__campaign"]
    raw_id_fields = ["assignment", "customer"]
    search_fields = ["=code", "=customer__external_id"]
    show_full_result_count = False

    @admin.display(description="Discount", ordering="discount_amount")
    def discount(self, coupon):
        return "-" if coupon.discount_amount is None else money(coupon.discount_amount)


@admin.register(MessagingSettings)
class MessagingSettingsAdmin(WebhookDestinationAdmin):
    form = destination_form(MessagingSettings)


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ["pk", "assignment__campaign", "assignment__customer", "attempts", "next_attempt_at",
                    "delivered_at", "last_error"]
    list_filter = [("delivered_at", admin.EmptyFieldListFilter), "assignment__campaign"]
    list_select_related = ["assignment__campaign", "assignment__customer"]
    search_fields = ["=assignment__customer__external_id", "=idempotency_key"]
    show_full_result_count = False
