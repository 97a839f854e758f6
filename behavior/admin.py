from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import display_for_field, display_for_value, label_for_field, lookup_field
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Count, F, OuterRef, Subquery, Value
from django.db.models.functions import Floor, Least
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from behavior.cache import CacheUnreachable
from behavior.charts import Bar, bar_chart, line_chart
from behavior.core.features import TargetDefinition
from behavior.core.reasons import reasons_sentence
from behavior.core.scorers import SCORERS
from behavior.core.training import ModelArtifactError
from behavior.core.words import duration_in_words, probability_in_words
from behavior.models import (
    ApiKey,
    Contact,
    ContactPolicy,
    Customer,
    Event,
    ModelVersion,
    Product,
    Score,
    ScoringRun,
    Target,
    WebhookDestination,
)
from behavior.selectors import schedule_next_run
from behavior.services.api_keys import api_key_create, api_key_token_secret_rotate
from behavior.services.customers import customer_erase
from behavior.services.registry import RegistryError, model_version_promote, model_version_rollback
from behavior.services.targets import DEFINING_FIELDS, TargetError, target_change

TIMELINE_EVENTS = 50
RELATED_ROWS = 20


def table(headers, rows) -> str:
    """An HTML table; every cell is escaped unless it is already safe (format_html output)."""
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join("", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((c,) for c in row)),)
                                                 for row in rows))
    return format_html('<table class="foresight-table"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
                       head, body)


class StatusButtonsAdmin(admin.ModelAdmin):
    """A ModelAdmin with buttons on an object's page for the statuses it can move to next.

    `next_statuses(obj)` gives (status, words) pairs; `_set_status(request, objects, status)` moves them through
    the app's service, which has the last word, and says what happened.
    """

    change_form_template = "admin/status_change_form.html"

    def next_statuses(self, obj) -> list[tuple[str, str]]:
        raise NotImplementedError

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_status"
        status = path("<path:object_id>/status/", self.admin_site.admin_view(self.status_view), name=name)
        return [status, *super().get_urls()]

    def status_view(self, request, object_id):
        obj = self.get_object(request, object_id)
        status = request.POST.get("status")
        # Any status of the model: a page left open may offer one no longer allowed, and the service says why.
        statuses = {value for value, _ in self.opts.get_field("status").choices}
        if (request.method != "POST" or obj is None or status not in statuses
                or not self.has_change_permission(request, obj)):
            raise PermissionDenied
        self._set_status(request, [obj], status)
        return redirect(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", obj.pk)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and self.has_change_permission(request, obj):
            context["status_buttons"] = self.next_statuses(obj)
            context["status_url"] = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_status",
                                            args=[obj.pk])
        return super().render_change_form(request, context, add, change, form_url, obj)


def percent(value: float) -> str:
    return f"{value:.1%}"


def next_run_in_words(task: str) -> str:
    """When a task is next due by its schedule, a sentence for an admin page; overdue asks whether beat runs."""
    due = schedule_next_run(task=task)
    if due is None:
        return "No schedule runs it: it is off in Periodic tasks"
    now = timezone.now()
    at = f"{timezone.localtime(due.at):%Y-%m-%d %H:%M %Z}"
    if due.at < now - timedelta(minutes=5):  # beat writes down a run's time every 3 minutes (its sync)
        return (f"Due since {at} by the schedule {due.schedule!r}: are the schedules running (manage.py "
                "run_schedules, or celery beat)?")
    return f"At {at}, in {duration_in_words((due.at - now) / timedelta(days=1))} (the schedule {due.schedule!r})"


def _score_column(target: str):
    """A sortable list column with the customer's current score for one target (annotated by get_queryset)."""
    @admin.display(description=target.replace("_", " "), ordering=f"score_{target}")
    def column(customer):
        return probability_in_words(getattr(customer, f"score_{target}", None))

    return column


def _unless_cache_unreachable(request, view):
    """The view's answer; when it could not reach the storefront's cache (nothing done), the same page again,
    saying so."""
    try:
        return view()
    except CacheUnreachable as error:
        messages.error(request, str(error))
        return redirect(request.get_full_path())


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["external_id", "marketing_consent", "created_at"]
    list_filter = ["marketing_consent"]
    # Exact match on the unique index: a substring search would scan millions of customers.
    search_fields = ["=external_id"]
    search_help_text = "The shop's customer id, exactly as the shop sends it."
    readonly_fields = ["created_at", "updated_at", "scores", "timeline"]
    fieldsets = [
        (None, {"fields": ["external_id", "marketing_consent", "attributes", "created_at", "updated_at"]}),
        ("Scores and reasons", {"fields": ["scores"]}),
        (f"Latest {TIMELINE_EVENTS} events", {"fields": ["timeline"]}),
    ]

    # Deleting here is an erasure like the API's: under the customer's lock, so no event arriving meanwhile stays.
    def delete_model(self, request, obj):
        customer_erase(customer=obj)

    def delete_queryset(self, request, queryset):
        for customer in queryset:
            customer_erase(customer=customer)

    def get_deleted_objects(self, objs, request):
        # An erasure deletes every row that points at the customer, those that other pages show read-only too
        # (assignments, coupons): the right to erase the customer is the one that counts.
        deleted, counts, _, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    # An erasure refused (the storefront's cache unreachable) is said on the page it was asked from.
    def delete_view(self, request, object_id, extra_context=None):
        return _unless_cache_unreachable(request, lambda: super(CustomerAdmin, self).delete_view(
            request, object_id, extra_context))

    def response_action(self, request, queryset):
        return _unless_cache_unreachable(request, lambda: super(CustomerAdmin, self).response_action(
            request, queryset))

    def _targets(self) -> list[str]:
        return list(Target.objects.values_list("name", flat=True))

    def get_list_display(self, request):
        return ["external_id", *map(_score_column, self._targets()), "marketing_consent", "created_at"]

    def get_queryset(self, request):
        scores = Score.objects.filter(customer=OuterRef("pk"))
        return super().get_queryset(request).annotate(**{
            f"score_{t}": Subquery(scores.filter(target=t).values("probability")[:1]) for t in self._targets()})

    @admin.display(description="Scores")
    def scores(self, customer):
        rows = Score.objects.filter(customer=customer).select_related("model_version").order_by("target")
        return table(["target", "probability", "why", "model", "scored at"], [
            [s.target.replace("_", " "), probability_in_words(s.probability), reasons_sentence(s.reasons) or "-",
             str(s.model_version), f"{s.scored_at:%Y-%m-%d %H:%M}"] for s in rows])

    @admin.display(description="Timeline")
    def timeline(self, customer):
        events = (Event.objects.filter(customer=customer).select_related("product")
                  .order_by("-occurred_at")[:TIMELINE_EVENTS])
        return table(["when", "what", "product", "category", "price", "order", "rating"], [
            [f"{e.occurred_at:%Y-%m-%d %H:%M:%S}", e.get_type_display(), e.product or "", e.category,
             e.price or "", e.order_id, e.rating or ""] for e in events])

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ["external_id", "marketing_consent", "attributes"]})]
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        # The shop's id, as its events and API calls name the customer: set once, never renamed here.
        return [*self.readonly_fields, "external_id"] if obj is not None else self.readonly_fields

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["related_sections"] = self.related_sections(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def related_sections(self, request, customer) -> list[str]:
        """The latest rows of every admin model that points at the customer and that this user may see:
        campaign assignments and coupons, support tickets (once support has its admin), contacts."""
        sections = []
        for model, field in Customer.data_models():
            # Rows of the customer's own (a ticket's notes are on the ticket's page).
            if model in (Event, Score) or "__" in field or not self.admin_site.is_registered(model):
                continue
            model_admin = self.admin_site.get_model_admin(model)
            if model_admin.has_view_permission(request):
                sections.append(_related_section(request, model_admin, field, customer))
        return sections


def _related_section(request, model_admin, field_name: str, customer: Customer):
    model = model_admin.model
    columns = [n for n in model_admin.get_list_display(request) if n not in (field_name, "action_checkbox")]
    queryset = model_admin.get_queryset(request).filter(**{field_name: customer}).order_by("-pk")
    if isinstance(model_admin.list_select_related, list | tuple):
        queryset = queryset.select_related(*model_admin.list_select_related)
    info = model._meta.app_label, model._meta.model_name
    rows = []
    for obj in queryset[:RELATED_ROWS]:
        cells = [_cell(name, obj, model_admin) for name in columns]
        link = reverse("admin:{}_{}_change".format(*info), args=[obj.pk])
        rows.append([format_html('<a href="{}">{}</a>', link, cells[0]), *cells[1:]])
    everything = reverse("admin:{}_{}_changelist".format(*info)) + f"?{field_name}__id__exact={customer.pk}"
    return format_html('<h3>{} <a href="{}">(all)</a></h3>{}', model._meta.verbose_name_plural.capitalize(),
                       everything, table([label_for_field(n, model, model_admin) for n in columns], rows)
                       if rows else "none")


def _cell(name, obj, model_admin):
    field, attr, value = lookup_field(name, obj, model_admin)
    if field is None:
        return display_for_value(value, "-", boolean=getattr(attr, "boolean", False))
    return display_for_field(value, field, "-")


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["external_id", "name", "category", "brand", "price", "active"]
    list_filter = ["active"]
    search_fields = ["external_id", "name", "category"]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["occurred_at", "type", "customer", "product", "order_id", "rating"]
    list_filter = ["type"]
    list_select_related = ["customer", "product"]
    raw_id_fields = ["customer", "product"]
    search_fields = ["=customer__external_id", "=order_id"]
    show_full_result_count = False  # counting millions of events on each page view is slow


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=ApiKey.Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ["name", "scopes", "active"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ["name", "prefix", "scopes", "active", "created_at", "last_used_at"]
    list_filter = ["active"]
    fields = ["name", "scopes", "active", "prefix", "created_at", "last_used_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]

    actions = ["token_secret_rotate"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        key, raw = api_key_create(name=obj.name, scopes=obj.scopes)
        obj.pk, obj.prefix, obj.key_hash, obj.token_secret = key.pk, key.prefix, key.key_hash, key.token_secret
        self.message_user(request, f"Copy this key now, it is not shown again: {raw}", messages.WARNING)
        self.message_user(request, f"Its token secret, for the shop's server to sign customer tokens with (not shown "
                                   f"again either): {key.token_secret}", messages.WARNING)

    @admin.action(description="Make a new token secret (old customer tokens stop working)")
    def token_secret_rotate(self, request, queryset):
        for key in queryset:
            secret = api_key_token_secret_rotate(key=key)
            self.message_user(request, f"New token secret for {key}, not shown again: {secret}", messages.WARNING)


METRICS_SHOWN = [  # name in the stored metrics, words, format
    ("roc_auc", "ROC-AUC (chance a positive customer ranks above a negative one)", "{:.3f}"),
    ("pr_auc", "PR-AUC (quality of the top of the list)", "{:.3f}"),
    ("base_rate", "base rate (share of positives)", "{:.2%}"),
    ("top_precision", "precision in the top 10% (what a campaign acts on)", "{:.1%}"),
    ("top_lift", "lift in the top 10% (against the base rate)", "{:.2f}x"),
    ("threshold", "operating threshold", "{:.3f}"),
    ("precision", "precision at the threshold", "{:.1%}"),
    ("recall", "recall at the threshold", "{:.1%}"),
    ("f1", "F1 at the threshold", "{:.3f}"),
    ("brier", "Brier score (lower is better)", "{:.4f}"),
    ("n", "validation rows (customers of the population at each cutoff)", "{:,}"),
    ("positives", "positives among them", "{:,}"),
]


@admin.register(Target)
class TargetAdmin(admin.ModelAdmin):
    list_display = ["name", "horizon_days", "counts", "population_shown", "champion", "updated_at"]
    fields = ["name", "description", "horizon_days", "event_types", "max_rating", "churn", "population",
              "population_days", "updated_at"]
    readonly_fields = ["updated_at"]

    def get_readonly_fields(self, request, obj=None):
        # The name is how conditions and stored scores refer to the target: fixed once made.
        return [*self.readonly_fields, "name"] if obj else self.readonly_fields

    @admin.display(description="counts")
    def counts(self, target):
        return target.definition().counts_label

    @admin.display(description="population")
    def population_shown(self, target):
        return target.definition().population_label

    @admin.display(description="champion")
    def champion(self, target):
        version = ModelVersion.objects.filter(target=target.name, status=ModelVersion.Status.CHAMPION).first()
        return "none: not scored" if version is None else f"#{version.pk} {version.get_kind_display()}"

    def save_model(self, request, obj, form, change):
        if not change:
            return super().save_model(request, obj, form, change)
        try:
            result = target_change(target=obj, description=obj.description,
                                   **{f: getattr(obj, f) for f in DEFINING_FIELDS})
        except TargetError as error:
            self.message_user(request, str(error), messages.ERROR)
        else:
            self.message_user(request, str(result), messages.WARNING if result.retired_versions else messages.INFO)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["pk", "target", "kind", "status", "roc_auc", "top_lift", "validated_at", "promoted_at"]
    list_filter = ["target", "status", "kind"]
    readonly_fields = [*(f.name for f in ModelVersion._meta.fields if f.name != "metrics"), "chosen", "quality",
                       "candidates", "charts", "promised", "delivered", "operating_threshold"]
    fieldsets = [
        (None, {"fields": ["target", "kind", "status", "operating_threshold", "created_at", "promoted_at"]}),
        ("Promised and delivered", {"fields": ["promised", "delivered"]}),
        ("Why this scorer", {"fields": ["chosen", "candidates"]}),
        ("Validation", {"fields": ["quality", "charts"]}),
        ("Training", {"fields": ["definition", "trained_from", "validated_at", "feature_names", "params", "artifact",
                                 "sha256"], "classes": ["collapse"]}),
    ]
    actions = ["promote", "roll_back"]

    @admin.display(description="Operating threshold")
    def operating_threshold(self, version):
        return probability_in_words(version.threshold)

    @admin.display(description="ROC-AUC (population)")
    def roc_auc(self, version):
        return _metric(version.metrics, "roc_auc")

    @admin.display(description="top-10% lift")
    def top_lift(self, version):
        return _metric(version.metrics, "top_lift", "{:.2f}x")

    @admin.display(description="Chosen because")
    def chosen(self, version):
        metrics = version.metrics or {}
        return format_html("<p>{}</p><p>Judged on {}.</p>", metrics.get("chosen_because") or "-",
                           metrics.get("population") or "the validation rows")

    @admin.display(description="Every candidate on the same validation rows")
    def candidates(self, version):
        rows = [[c["label"], _ranks_by(c["kind"]), _interval(c), _metric(c, "pr_auc"),
                 _metric(c, "top_precision", "{:.1%}"), _metric(c, "top_lift", "{:.2f}x")]
                for c in (version.metrics or {}).get("candidates", [])]
        if not rows:
            return "No candidates stored (a version from before candidates were compared)."
        return table(["scorer", "ranks by", "ROC-AUC [95%]", "PR-AUC", "top-10% precision", "top-10% lift"], rows)

    @admin.display(description="Metrics on the validation cutoffs (the target's population)")
    def quality(self, version):
        metrics = version.metrics or {}
        everyone = metrics.get("all_customers") or {}
        rows = [[words, _metric(metrics, name, fmt), _metric(everyone, name, fmt)]
                for name, words, fmt in METRICS_SHOWN if name in metrics]
        if metrics.get("roc_auc_interval") and None not in metrics["roc_auc_interval"]:
            rows.insert(1, ["ROC-AUC 95% interval", _interval(metrics), ""])
        return table(["metric", "the population (what it is judged on)", "all active customers (for scale)"],
                     rows) if rows else "No metrics stored."

    @admin.display(description="Charts")
    def charts(self, version):
        return metric_charts(version.metrics or {})

    @admin.action(description="Promote the selected version to champion of its target")
    def promote(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to promote.", messages.ERROR)
            return
        try:
            version = model_version_promote(version=queryset.get())
        except (RegistryError, ModelArtifactError) as error:
            self.message_user(request, str(error), messages.ERROR)
        else:
            self.message_user(request, f"{version.target}: version {version.pk} is champion", messages.SUCCESS)

    @admin.action(description="Roll back the selected models' targets to their previous champion")
    def roll_back(self, request, queryset):
        for target in sorted(set(queryset.values_list("target", flat=True))):
            try:
                restored = model_version_rollback(target=target)
            except (RegistryError, ModelArtifactError) as error:
                self.message_user(request, f"{target}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"{target}: version {restored.pk} is champion again", messages.SUCCESS)


def metric_charts(metrics: dict) -> str:
    """The ROC curve and the calibration of stored metrics (a model's validation, a run's outcome), side by side."""
    roc = metrics.get("roc_curve")
    roc_chart = line_chart({"scores": [tuple(p) for p in roc]}, title="ROC curve: true against false "
                           "positive rate", x_format=percent, y_format=percent, x_range=(0, 1), y_range=(0, 1),
                           diagonal="chance") if roc else format_html(
        "<p>No ROC curve stored (metrics from before curves were kept).</p>")
    bins = [b for b in metrics.get("calibration") or [] if b.get("count")]
    calibration = line_chart(
        {"observed": [(b["mean_predicted"], b["observed_rate"]) for b in bins]},
        title="Calibration: observed rate against predicted probability", x_format=percent, y_format=percent,
        x_range=(0, max((b["upper"] for b in bins), default=1)), y_range=(0, max(
            (max(b["upper"], b["observed_rate"]) for b in bins), default=1)), diagonal="perfect")
    return format_html('<div style="display:flex;gap:2em;flex-wrap:wrap">{}{}</div>', roc_chart, calibration)


def _ranks_by(kind: str) -> str:
    return SCORERS[kind].how if kind in SCORERS else "gradient-boosted trees over every feature"


def _interval(metrics: dict) -> str:
    low, high = metrics.get("roc_auc_interval") or (None, None)
    if low is None or high is None:
        return _metric(metrics, "roc_auc")
    return f"{_metric(metrics, 'roc_auc')} [{low:.3f}, {high:.3f}]"


def _metric(metrics: dict | None, name: str, fmt: str = "{:.3f}") -> str:
    value = (metrics or {}).get(name)
    return "-" if value is None else fmt.format(value)


def score_distribution(scores) -> str:
    """One bar chart per target: how many current scores fall in each tenth of probability (one query)."""
    rows = (scores.annotate(tenth=Least(Floor(F("probability") * 10.0), Value(9.0))).values("target", "tenth")
            .annotate(n=Count("pk")).order_by())
    counts: dict[str, dict[int, int]] = {}
    for row in rows:
        counts.setdefault(row["target"], {})[int(row["tenth"])] = row["n"]
    charts = [bar_chart([Bar(f"{t / 10:.1f} to {(t + 1) / 10:.1f}", by_tenth.get(t, 0)) for t in range(10)],
                        title=f"{target.replace('_', ' ')}: customers by score", value_format="{:,.0f}".format)
              for target, by_tenth in sorted(counts.items())]
    return format_html('<div style="display:flex;gap:2em;flex-wrap:wrap">{}</div>',
                       format_html_join("", "{}", ((c,) for c in charts))) if charts else "No scores yet."


CHARTED_RUN_FIELDS = ["stage_seconds", "outcomes"]  # shown as charts on a run's page, not as JSON to edit


@admin.register(ScoringRun)
class ScoringRunAdmin(admin.ModelAdmin):
    list_display = ["pk", "status", "as_of", "started_at", "seconds", "customers", "chunks"]
    list_filter = ["status"]
    exclude = CHARTED_RUN_FIELDS
    readonly_fields = [*(f.name for f in ScoringRun._meta.fields if f.name not in CHARTED_RUN_FIELDS),
                       "seconds", "stages", "distribution", "turned_out"]

    @admin.display(description="Seconds")
    def seconds(self, run):
        return "-" if run.finished_at is None else f"{(run.finished_at - run.started_at).total_seconds():,.1f}"

    @admin.display(description="Time by stage (all chunks)")
    def stages(self, run):
        bars = [Bar(stage.replace("_", " "), s) for stage, s in sorted((run.stage_seconds or {}).items(),
                                                                       key=lambda item: -item[1])]
        return bar_chart(bars, title="Seconds by stage", value_format="{:,.2f} s".format)

    @admin.display(description="Scores this run wrote (still current)")
    def distribution(self, run):
        return score_distribution(Score.objects.filter(run=run))

    @admin.display(description="How its scores turned out")
    def turned_out(self, run):
        if not run.keeps_scores and not run.outcomes:
            return "Not kept: the first run of each day keeps its scores, to check them once the horizon has passed."
        parts = []
        definitions = {v.target: v.definition for v in ModelVersion.objects.filter(pk__in=run.model_versions.values())}
        for name in run.model_versions:
            label, outcome = name.replace("_", " "), run.outcomes.get(name)
            if outcome is None and name in definitions:
                horizon = TargetDefinition.from_dict(definitions[name]).horizon
                parts.append(format_html("<p><b>{}</b>: checked by the daily check after {:%Y-%m-%d %H:%M}, when its "
                                         "{}-day horizon has passed.</p>", label, run.as_of + horizon, horizon.days))
                continue
            if outcome is None:
                continue
            rows = [["customers scored" if key == "n" else words, _metric(outcome, key, fmt)]
                    for key, words, fmt in METRICS_SHOWN if key in outcome]
            parts.append(format_html("<h3>{}: what customers did within {} days</h3>{}{}", label,
                                     outcome.get("horizon_days"), table(["metric", "kept scores"], rows),
                                     metric_charts(outcome)))
        return format_html_join("", "{}", ((p,) for p in parts))


@admin.register(Score)
class ScoreAdmin(admin.ModelAdmin):
    list_display = ["customer", "target", "probability_shown", "model_version", "scored_at"]
    list_filter = ["target"]
    list_select_related = ["customer", "model_version"]
    raw_id_fields = ["customer", "model_version", "run"]
    # A score is what its model said: its probability and reasons are read here, as every page says them.
    fields = ["customer", "target", "probability_shown", "why", "model_version", "run", "scored_at"]
    readonly_fields = ["probability_shown", "why"]
    search_fields = ["=customer__external_id"]
    show_full_result_count = False

    @admin.display(description="probability", ordering="probability")
    def probability_shown(self, score):
        return probability_in_words(score.probability)

    @admin.display(description="why")
    def why(self, score):
        return reasons_sentence(score.reasons) or "-"

    def changelist_view(self, request, extra_context=None):
        extra = {"distribution": score_distribution(Score.objects.all()), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)


class SingletonAdmin(admin.ModelAdmin):
    """Settings of one row (behavior.models.Singleton): added once, by whoever may add it."""

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not self.model._default_manager.exists()

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # A refused form has already written what was typed into obj: the heading, the title and the breadcrumbs
        # name what is saved (the form's fields keep what was typed, to correct it).
        saved = None if obj is None else self.model._default_manager.filter(pk=obj.pk).first()
        if saved is not None:
            context.update(subtitle=str(saved), original=saved)
        return super().render_change_form(request, context, add, change, form_url, obj)


@admin.register(ContactPolicy)
class ContactPolicyAdmin(SingletonAdmin):
    list_display = ["__str__", "max_contacts", "per_days"]  # one budget for the whole shop


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["contacted_at", "customer", "source"]
    list_select_related = ["customer"]
    raw_id_fields = ["customer"]
    search_fields = ["=customer__external_id", "source"]
    show_full_result_count = False


# A receiver URL typed without a scheme is taken as https (Django 6's default; 5.x warns until told).
HTTPS_BY_DEFAULT: dict[type[models.Field], dict[str, str]] = {models.URLField: {"assume_scheme": "https"}}


def destination_form(destination: type[WebhookDestination]) -> type[forms.ModelForm]:
    """The settings form of a webhook destination: the secret can be written but never read back, and an
    empty field keeps the stored one."""

    class DestinationForm(forms.ModelForm):
        secret = forms.CharField(
            required=False, max_length=255, widget=forms.PasswordInput(render_value=False),
            help_text=destination._meta.get_field("secret").help_text
            + " Not shown once saved: type a new one to replace it, or leave the field empty to keep it.",
        )

        class Meta:
            model = destination
            fields = ["enabled", "url", "secret", "retry_base_seconds"]
            formfield_callback = staticmethod(
                lambda field, **kwargs: field.formfield(**{**HTTPS_BY_DEFAULT.get(type(field), {}), **kwargs}))

        def clean_secret(self) -> str:
            return self.cleaned_data["secret"] or self.instance.secret

    return DestinationForm


class WebhookDestinationAdmin(SingletonAdmin):
    """One row of settings: made once, never deleted."""

    formfield_overrides = HTTPS_BY_DEFAULT
    list_display = ["__str__", "enabled", "url", "retry_base_seconds"]

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """A log kept by the code (a queue of webhooks): read here, never written."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
