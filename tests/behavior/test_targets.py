"""Targets as data: listed, changed and added from the command line and the admin; a changed question retires
the models and scores that answered the old one."""

import importlib
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from behavior.core.features import default_targets
from behavior.models import Score, Target
from tests.factories import CustomerFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 2, tzinfo=UTC)


def targets(*args) -> str:
    out = StringIO()
    call_command("targets", *map(str, args), stdout=out)
    return out.getvalue()


def test_the_migration_stores_the_default_targets():
    seeded = importlib.import_module("behavior.migrations.0011_targets_as_data").DEFAULT_TARGETS
    assert {t["name"]: t for t in seeded} == {n: d.as_dict() for n, d in default_targets().items()}
    assert {t.name: t.definition() for t in Target.objects.all()} == default_targets()


def test_targets_lists_what_each_counts_whom_it_scores_and_what_serves_it():
    ModelVersionFactory(target="purchase_intent", status="champion", kind="browsing")

    text = targets()

    assert "purchase_intent\n  counts      purchase within 7 days\n  population  customers active in the last 90 days" \
        in text
    assert "served by   #" in text and "recent browsing" in text
    assert ("support_risk\n  counts      support contact, return requested, refund, a review rated 2 or less within "
            "14 days") in text
    assert "customers with an order in flight (not delivered, or delivered in the last 14 days)" in text
    assert "no champion yet" in text


def test_changing_what_a_target_asks_retires_its_models_and_scores():
    champion = ModelVersionFactory(target="support_risk", status="champion")
    candidate = ModelVersionFactory(target="support_risk", status="candidate")
    other = ModelVersionFactory(target="purchase_intent", status="champion")
    customer = CustomerFactory()
    for version in (champion, other):
        Score.objects.create(customer=customer, target=version.target, probability=0.5, model_version=version,
                             scored_at=NOW)

    text = targets("set", "support_risk", "--horizon-days", "21", "--population", "in_flight:30")

    assert f"retired model versions #{champion.pk}, #{candidate.pk} and removed 1 scores" in text
    assert "delivered in the last 30 days" in text and "within 21 days" in text
    champion.refresh_from_db(), other.refresh_from_db()
    assert champion.status == "retired" and other.status == "champion"
    assert list(Score.objects.values_list("target", flat=True)) == ["purchase_intent"]
    # The description alone does not change the question.
    assert "had no models or scores yet" in targets("set", "support_risk", "--description", "complains")


def test_options_left_out_stay_as_they_were():
    targets("set", "purchase_intent", "--horizon-days", "91")
    target = Target.objects.get(name="purchase_intent")
    assert (target.horizon_days, target.population, target.population_days, target.event_types) == (
        91, "active", None, ["purchase"])
    assert target.definition().window == 364  # the active window follows the horizon
    targets("set", "purchase_intent", "--population", "active:120")
    assert Target.objects.get(name="purchase_intent").definition().window == 120
    targets("set", "support_risk", "--max-rating", "none")
    assert Target.objects.get(name="support_risk").max_rating is None


def test_a_new_target_and_a_churn_target_are_defined_from_the_command_line():
    targets("add", "reorder", "--horizon-days", "30", "--events", "purchase", "--population", "buyers")
    targets("add", "lapse", "--churn", "--horizon-days", "91", "--population", "buyers")

    assert Target.objects.get(name="reorder").definition().counts_label == "purchase within 30 days"
    lapse = Target.objects.get(name="lapse").definition()
    assert lapse.churn and lapse.counts_label == "no purchase within 91 days" and lapse.event_types == ()


@pytest.mark.parametrize(("args", "words"), [
    (["set", "nosuch", "--horizon-days", "7"], "no target 'nosuch'; defined: purchase_intent, support_risk"),
    (["set", "purchase_intent", "--population", "everyone"], "unknown population 'everyone'"),
    (["set", "purchase_intent", "--population", "buyers:30"], "buyers takes no days"),
    (["set", "purchase_intent", "--horizon-days", "400"], "horizon_days: Ensure this value is less than or equal"),
    (["set", "purchase_intent", "--events", "purchase,teleport"], "unknown event type(s) teleport"),
    (["add", "purchase_intent", "--horizon-days", "7", "--events", "purchase"], "exists already"),
    (["add", "nothing", "--horizon-days", "7"], "say what counts"),
    (["add", "bad name", "--horizon-days", "7", "--events", "purchase"], "name:"),
    (["add", "reorder", "--events", "purchase"], "--horizon-days"),
])
def test_bad_definitions_are_refused_with_what_is_wrong(args, words):
    before = {t.name: t.definition() for t in Target.objects.all()}
    with pytest.raises(CommandError, match=None) as error:
        targets(*args)
    assert words in str(error.value)
    assert {t.name: t.definition() for t in Target.objects.all()} == before  # nothing stored


def test_the_admin_changes_a_target_and_says_what_it_retired(admin_client):
    champion = ModelVersionFactory(target="purchase_intent", status="champion")
    target = Target.objects.get(name="purchase_intent")
    form = {"description": target.description, "horizon_days": 30, "event_types": '["purchase"]', "max_rating": "",
            "population": "active", "population_days": ""}

    page = admin_client.post(f"/admin/behavior/target/{target.pk}/change/", form, follow=True).content.decode()

    champion.refresh_from_db()
    assert champion.status == "retired" and f"retired model versions #{champion.pk}" in page
    assert Target.objects.get(pk=target.pk).horizon_days == 30
    listing = admin_client.get("/admin/behavior/target/").content.decode()
    assert "purchase within 30 days" in listing and "customers active in the last 120 days" in listing
    assert "none: not scored" in listing
