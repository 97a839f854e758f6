from django import forms
from django.contrib import admin, messages

from behavior.models import ApiKey, Contact, ContactPolicy, Customer, Event, ModelVersion, Product, Score, ScoringRun
from behavior.services.api_keys import api_key_create
from behavior.services.registry import RegistryError, model_version_rollback
from behavior.training import ModelArtifactError


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["external_id", "marketing_consent", "created_at"]
    list_filter = ["marketing_consent"]
    search_fields = ["external_id"]


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
    search_fields = ["customer__external_id", "order_id"]
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

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        key, raw = api_key_create(name=obj.name, scopes=obj.scopes)
        obj.pk, obj.prefix, obj.key_hash = key.pk, key.prefix, key.key_hash
        self.message_user(request, f"Copy this key now, it is not shown again: {raw}", messages.WARNING)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["pk", "target", "kind", "status", "roc_auc", "pr_auc", "validated_at", "promoted_at"]
    list_filter = ["target", "status", "kind"]
    readonly_fields = [f.name for f in ModelVersion._meta.fields]
    actions = ["roll_back"]

    @admin.display(description="ROC-AUC")
    def roc_auc(self, version):
        return _metric(version, "roc_auc")

    @admin.display(description="PR-AUC")
    def pr_auc(self, version):
        return _metric(version, "pr_auc")

    @admin.action(description="Roll back the selected models' targets to their previous champion")
    def roll_back(self, request, queryset):
        for target in sorted(set(queryset.values_list("target", flat=True))):
            try:
                restored = model_version_rollback(target=target)
            except (RegistryError, ModelArtifactError) as error:
                self.message_user(request, f"{target}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"{target}: version {restored.pk} is champion again", messages.SUCCESS)


def _metric(version: ModelVersion, name: str) -> str:
    value = (version.metrics or {}).get(name)
    return "-" if value is None else f"{value:.3f}"


@admin.register(ScoringRun)
class ScoringRunAdmin(admin.ModelAdmin):
    list_display = ["pk", "status", "as_of", "started_at", "finished_at", "customers", "chunks"]
    list_filter = ["status"]
    readonly_fields = [f.name for f in ScoringRun._meta.fields]


@admin.register(Score)
class ScoreAdmin(admin.ModelAdmin):
    list_display = ["customer", "target", "probability", "model_version", "scored_at"]
    list_filter = ["target"]
    list_select_related = ["customer", "model_version"]
    raw_id_fields = ["customer", "model_version", "run"]
    search_fields = ["customer__external_id"]
    show_full_result_count = False


@admin.register(ContactPolicy)
class ContactPolicyAdmin(admin.ModelAdmin):
    list_display = ["__str__", "max_contacts", "per_days"]

    def has_add_permission(self, request):
        return not ContactPolicy.objects.exists()  # one budget for the whole shop


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["contacted_at", "customer", "source"]
    list_select_related = ["customer"]
    raw_id_fields = ["customer"]
    search_fields = ["customer__external_id", "source"]
    show_full_result_count = False
