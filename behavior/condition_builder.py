"""The condition builder of the campaign and support-rule pages: a widget over the JSON condition, and the small
admin endpoint that says a condition in words and counts whom it matches as it is edited.

The JSON stays the stored form (the widget's textarea is the form field); the builder, in
`static/behavior/condition_builder.js`, reads and writes it. What the builder offers comes from the same
registry `parse` checks against (`known_fields`, `OPERATORS`), sent to the page as JSON.
"""

from __future__ import annotations

import json
import re

import redis
from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, JSONField
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.urls import path, reverse

from . import cache as shared_cache
from .conditions import OPERATORS, STRING, ConditionError, Field, known_fields, parse
from .models import Customer, Target
from .selectors import condition_count

KNOWN_VALUES = 50  # a string field's values offered as choices: the commonest; others are typed
KNOWN_VALUES_SECONDS = 600

_GROUPS = [  # (group, test on the field's name), first match wins: the picker's sections
    ("Scores", lambda name: name.startswith("score.")),
    ("Customer", lambda name: name.startswith("customer.")),
    ("Orders in flight", lambda name: re.match(r"feature\.(in_flight_|orders_in_flight|orders_open_past_due|"
                                                r"max_days_past_due|days_late|usual_)", name) is not None),
    ("Days since", lambda name: name.startswith("feature.days_since_")),
    ("Activity in a window", lambda name: re.search(r"_\d+d$", name) is not None),
    ("History", lambda name: True),
]


def _group(name: str) -> str:
    return next(group for group, test in _GROUPS if test(name))


def known_values(field: Field) -> list[str]:
    """A string field's commonest stored values (customer attributes): the choices the builder offers.

    Kept in the cache for KNOWN_VALUES_SECONDS: reading them groups every customer (country and device took
    0.16 s together at 100,000 customers, on every campaign page).
    """
    if field.type != STRING or field.sql is None:
        return []
    cache, key = shared_cache.redis_cache(), f"foresight:condition-values:{field.name}"
    try:
        values = cache.get(key) if cache is not None else None
        if values is None:
            values = _known_values(field)
            if cache is not None:
                cache.set(key, values, KNOWN_VALUES_SECONDS)
    except redis.RedisError as error:  # the cache is unreachable: the database answers
        shared_cache.failed(error)
        values = _known_values(field)
    return values


def _known_values(field: Field) -> list[str]:
    rows = (Customer.objects.annotate(value=field.sql).exclude(value=None).values("value")
            .annotate(n=Count("pk")).order_by("-n", "value")[:KNOWN_VALUES])
    return sorted(row["value"] for row in rows)


def builder_registry() -> dict:
    """What the builder offers: every field a condition may use now (words, type, section, known values) and
    every operator (the types it applies to, the kind of value it takes, its words)."""
    targets = {t.name: t for t in Target.objects.all()}
    fields: list[dict] = []
    for name, field in known_fields().items():
        hint = ""
        if field.score:
            target = targets.get(field.score)
            counts = f" of {target.definition().counts_label}" if target is not None else ""
            hint = f"the chance{counts}, from 0 to 1"
        fields.append({"name": name, "type": field.type, "words": field.label, "group": _group(name),
                       "score": bool(field.score), "hint": hint, "values": known_values(field)})
    operators = {name: {"types": sorted(o.types), "value": o.value, "words": o.words}
                 for name, o in OPERATORS.items()}
    order = [group for group, _ in _GROUPS]
    fields.sort(key=lambda f: order.index(f["group"]))  # stable: the registry's order within a section
    return {"fields": fields, "operators": operators}


def _in_words(value) -> str:
    """The condition as the page renders it (its JSON text), in words; "-" when it does not parse. The builder
    says it again after each edit."""
    try:
        return parse(json.loads(value)).describe() if value else "-"
    except (ValueError, TypeError):  # not JSON, or a ConditionError
        return "-"


class ConditionWidget(forms.Textarea):
    """The condition's JSON textarea inside the builder; without JavaScript, the textarea alone."""

    template_name = "behavior/widgets/condition.html"

    def __init__(self, *, count_url: str, attrs=None):
        super().__init__(attrs={"rows": 8, "cols": 90, **(attrs or {})})
        self.count_url = count_url

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["widget"].update(count_url=self.count_url, registry=builder_registry(), words=_in_words(value))
        return context

    class Media:
        js = ["behavior/condition_builder.js"]
        css = {"all": ["behavior/condition_builder.css"]}


class ConditionBuilderAdmin(admin.ModelAdmin):
    """A ModelAdmin whose `condition` field is edited with the builder. `counts_consent`: the count says how many
    of the matching customers have marketing consent (campaigns reach only them)."""

    counts_consent = False

    def _count_url_name(self) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_condition_count"

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "condition" and isinstance(db_field, JSONField):
            kwargs["widget"] = ConditionWidget(count_url=reverse(f"admin:{self._count_url_name()}",
                                                                 current_app=self.admin_site.name))
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_urls(self):
        count = path("condition-count/", self.admin_site.admin_view(self.condition_count_view),
                     name=self._count_url_name())
        return [count, *super().get_urls()]

    def condition_count_view(self, request: HttpRequest) -> HttpResponse:
        """POST {"condition": <tree>} -> the condition in words and how many customers it matches now, or the
        first bad node. A read, but a POST: a condition may be longer than a URL may be."""
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        try:
            tree = json.loads(request.body)["condition"]
        except (ValueError, KeyError, TypeError):
            return JsonResponse({"error": 'expected {"condition": ...}'}, status=400)
        try:
            condition = parse(tree, targets=set(Target.objects.values_list("name", flat=True)))
        except ConditionError as error:
            return JsonResponse({"error": str(error), "path": error.path})
        count = condition_count(condition=condition)
        about = "" if count.sample_every == 1 else "about "
        says = f"{about}{count.matched:,} customers match now"
        if self.counts_consent:
            says += f", {about}{count.with_consent:,} of them with marketing consent (only they are reached)"
        if count.sample_every > 1:
            says += (f"; estimated from one customer in {count.sample_every:,} (the condition reads features built "
                     "from their events)")
        return JsonResponse({"words": condition.describe(), "matched": count.matched,
                             "with_consent": count.with_consent, "sample_every": count.sample_every, "says": says})
