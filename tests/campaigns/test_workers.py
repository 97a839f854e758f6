"""Two real Celery workers evaluating the same scoring run at once: caps and budgets hold, nothing is doubled."""

from collections import Counter

from behavior.models import Contact, ContactPolicy, ScoringRun
from campaigns.models import Assignment, Coupon
from campaigns.tasks import evaluate_campaigns
from tests.campaigns.conftest import NOW, offer


def test_two_workers_on_one_run_respect_caps_and_the_contact_budget(workers, scored_customers):
    ContactPolicy.objects.update_or_create(pk=1, defaults={"max_contacts": 1, "per_days": 7})
    scored_customers([0.5 + i / 1000 for i in range(300)])
    capped = offer(name="capped", priority=2, max_assignments=120, holdout_percent=10)
    second = offer(name="second", priority=1)
    run = ScoringRun.objects.create(as_of=NOW, status=ScoringRun.Status.SUCCEEDED)
    workers.start()
    workers.start()

    results = [evaluate_campaigns.delay(run.pk) for _ in range(2)]
    outcomes = [r.get(timeout=120) for r in results]

    assert sum(o["reached"] for out in outcomes for o in out if o["rule"] == capped.pk) == 120
    assignments = Assignment.objects.values_list("campaign", "customer", "period")
    assert len(assignments) == len(set(assignments))  # nobody assigned twice by one campaign in a period
    assert Coupon.objects.filter(assignment__campaign=capped).count() == 120
    per_customer = Counter(Contact.objects.values_list("customer_id", flat=True))
    assert max(per_customer.values()) == 1  # the budget of one contact held across both campaigns and workers
    treated = Assignment.objects.filter(group="treatment")
    assert treated.count() == len(per_customer) == Contact.objects.count()
    # Everyone the capped campaign did not treat (its control group included) was left for the second.
    assert second.assignments.filter(group="treatment").count() == 300 - 120
