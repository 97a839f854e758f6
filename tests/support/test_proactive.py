"""Proactive tickets after a scoring run: who gets one, the reasons in words, once per rule, and the contact budget."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from behavior.models import Contact, ContactPolicy
from campaigns.models import Campaign
from campaigns.services import campaign_create, campaigns_evaluate
from support.models import Priority, SupportRule, Ticket
from support.selectors import rule_preview
from support.services.proactive import tickets_open_from_contacts, tickets_open_proactively
from support.services.tickets import ticket_set_status
from tests.factories import EventFactory
from tests.support.conftest import NOW, delivered_order, late_order, review, support_rule

pytestmark = pytest.mark.sqlite


def test_a_worried_customer_with_a_late_order_gets_a_ticket_with_reasons_in_plain_words(risky_customers):
    alice, on_time, calm = risky_customers([0.72, 0.9, 0.3])
    late_order(alice, "4410", days_late=30)  # older, also late
    late_order(alice, "4412", days_late=4.5)  # the latest order
    delivered_order(alice, "4400", days_ago=20)
    review(alice, "4400", rating=2, days_ago=3)
    delivered_order(on_time, "5000", days_ago=2)
    late_order(calm, "6000", days_late=3)
    rule = support_rule()

    [outcome] = tickets_open_proactively(now=NOW)

    assert (outcome.matched, outcome.reached, outcome.out_of_budget) == (1, 1, 0)
    ticket = Ticket.objects.get()
    assert (ticket.customer, ticket.rule, ticket.origin, ticket.status) == (alice, rule, "proactive", "open")
    assert (ticket.priority, ticket.group, ticket.due_at) == (Priority.HIGH, "deliveries", NOW + timedelta(hours=8))
    assert ticket.facts["order_id"] == "4412" and ticket.facts["days_late"] == 4.5
    assert ticket.facts["review_order_id"] == "4400" and ticket.facts["rating"] == 2
    assert ticket.reasons == [
        f"Order 4412 is 4.5 days past its promised delivery ({(NOW - timedelta(days=4.5)):%Y-%m-%d}) and not "
        "delivered yet",
        f"A bad review: 2 stars for order 4400 on {(NOW - timedelta(days=3)):%Y-%m-%d}",
        "Support risk 0.720, mostly from 1 order past their promised delivery and not delivered and 2 orders with a "
        "delivery delay in the last 90 days",
    ]
    assert ticket.customer_message == f"Your order 4412 is 4.5 days late; we have opened ticket {ticket.pk}."
    assert Contact.objects.get().source == f"support rule {rule.pk}"


def test_a_rerun_opens_nothing_twice_and_the_dedupe_window_holds_after_solving(risky_customers):
    [alice] = risky_customers([0.8])
    late_order(alice, "1", days_late=2)
    rule = support_rule(dedupe_days=14)
    tickets_open_proactively(now=NOW)

    [again] = tickets_open_proactively(now=NOW + timedelta(hours=1))  # the next scoring run

    assert (again.matched, again.already_reached, again.reached) == (1, 1, 0)
    ticket_set_status(ticket=Ticket.objects.get(), status="solved")
    assert tickets_open_proactively(now=NOW + timedelta(days=13))[0].reached == 0  # still late, but recently served
    assert tickets_open_proactively(now=NOW + timedelta(days=15))[0].reached == 1
    assert Ticket.objects.filter(rule=rule).count() == 2 and Contact.objects.count() == 2


def test_the_database_refuses_a_second_open_proactive_ticket_for_a_customer_and_rule(risky_customers):
    [alice] = risky_customers([0.8])
    rule = support_rule()
    values = dict(customer=alice, rule=rule, origin="proactive", group="g", subject="s", opened_at=NOW, due_at=NOW)
    Ticket.objects.create(**values, status="solved")
    Ticket.objects.create(**values, status="pending")
    Ticket.objects.create(**{**values, "origin": "agent"})  # an agent's ticket is not the rule's

    with pytest.raises(IntegrityError):
        Ticket.objects.create(**values)


def test_facts_are_read_set_based_whatever_the_number_of_customers(risky_customers):
    support_rule(condition={"field": "score.support_risk", "op": "gte", "value": 0.6})

    def queries_for(n: int) -> int:
        customers = risky_customers([0.9] * n)
        for i, customer in enumerate(customers):
            late_order(customer, f"order-{n}-{i}", days_late=3)
            review(customer, f"order-{n}-{i}", rating=1, days_ago=1)
        with CaptureQueriesContext(connection) as queries:
            [outcome] = tickets_open_proactively(now=NOW)
        assert outcome.reached == n
        return len(queries)

    queries_for(1)  # the first run also creates the one-row settings
    assert queries_for(3) == queries_for(40)
    assert all(t.facts["days_late"] == 3 and t.facts["rating"] == 1 for t in Ticket.objects.all())


def test_inactive_rules_open_nothing_and_the_preview_counts_what_would_open(risky_customers):
    alice, bob, _ = risky_customers([0.8, 0.7, 0.2])
    late_order(alice, "1", days_late=2)
    late_order(bob, "2", days_late=2)
    ContactPolicy.objects.update_or_create(pk=1, defaults={"max_contacts": 1, "per_days": 7})
    Contact.objects.create(customer=bob, source="campaign 1", contacted_at=NOW - timedelta(days=1))
    rule = support_rule(active=False)

    assert tickets_open_proactively(now=NOW) == []
    preview = rule_preview(rule=rule, now=NOW)
    assert (preview.matched, preview.already_ticketed, preview.out_of_budget, preview.would_open) == (2, 0, 1, 1)


def test_support_contacts_become_customer_tickets_once(risky_customers):
    alice, bob = risky_customers([0.1, None])
    EventFactory(customer=alice, type="support_contact", order_id="77", occurred_at=NOW - timedelta(hours=2),
                 properties={"subject": "Where is my parcel?", "message": "It has been a week."})
    EventFactory(customer=bob, type="support_contact", occurred_at=NOW - timedelta(hours=1))
    EventFactory(customer=bob, type="support_contact", occurred_at=NOW - timedelta(days=30))  # before the lookback
    EventFactory(customer=bob, type="support_contact", occurred_at=NOW + timedelta(hours=1))  # after this run

    assert tickets_open_from_contacts(now=NOW) == 2
    assert tickets_open_from_contacts(now=NOW) == 0

    mine = Ticket.objects.get(customer=alice)
    assert (mine.origin, mine.subject, mine.description) == ("customer", "Where is my parcel?", "It has been a week.")
    assert mine.facts == {"order_id": "77"} and mine.due_at == mine.opened_at + timedelta(hours=24)
    assert Ticket.objects.get(customer=bob).subject == "The customer contacted support"
    assert not Contact.objects.exists()  # the customer reached out: no outreach budget spent


@pytest.mark.parametrize("first", ["support", "campaign"])
def test_a_campaign_and_a_rule_share_a_contact_budget_of_one(risky_customers, first):
    ContactPolicy.objects.update_or_create(pk=1, defaults={"max_contacts": 1, "per_days": 7})
    [alice] = risky_customers([0.9])
    late_order(alice, "1", days_late=2)
    support_rule()
    campaign_create(name="Ten percent", kind="price_offer", status=Campaign.Status.ACTIVE,
                            condition={"field": "customer.marketing_consent", "op": "eq", "value": True},
                            holdout_percent=0, discount_value=10)

    if first == "support":
        [ticketed] = tickets_open_proactively(now=NOW)
        [offered] = campaigns_evaluate(now=NOW)
    else:
        [offered] = campaigns_evaluate(now=NOW)
        [ticketed] = tickets_open_proactively(now=NOW)

    assert (ticketed.reached, offered.reached) == ((1, 0) if first == "support" else (0, 1))
    assert ticketed.out_of_budget + offered.out_of_budget == 1
    assert Contact.objects.filter(customer=alice).count() == 1


def test_between_rules_the_higher_priority_takes_the_last_contact(risky_customers):
    ContactPolicy.objects.update_or_create(pk=1, defaults={"max_contacts": 1, "per_days": 7})
    [alice] = risky_customers([0.9])
    late_order(alice, "1", days_late=2)
    low = support_rule(name="low", priority=Priority.LOW)
    urgent = support_rule(name="urgent", priority=Priority.URGENT)

    outcomes = {o.rule: o for o in tickets_open_proactively(now=NOW)}

    assert Ticket.objects.get().rule == urgent
    assert outcomes[low.pk].out_of_budget == 1


@pytest.mark.parametrize(("condition", "path"), [
    ({"all": [{"field": "score.support_risk", "op": "gte", "value": 0.6},
              {"any": [{"field": "feature.orders_open_past_due", "op": "gte", "value": "one"}]}]},
     "all[1].any[0].value"),
    ({"all": [{"field": "score.support_risk", "op": "gte", "value": 0.6},
              {"field": "score.mood", "op": "gte", "value": 1}]}, "all[1].field"),
    ({"not": {"field": "customer.country", "op": "gte", "value": "DE"}}, "not.op"),
])
def test_a_bad_condition_is_refused_naming_the_node(db, condition, path):
    rule = SupportRule(name="x", subject="x", condition=condition)
    with pytest.raises(ValidationError) as error:
        rule.full_clean()
    assert str(error.value.message_dict["condition"][0]).startswith(f"{path}:")


def test_a_message_may_only_use_known_placeholders(db):
    rule = SupportRule(name="x", subject="x", condition={"field": "score.support_risk", "op": "gte", "value": 0.6},
                       customer_message="Hello {customer.__class__}, ticket {ticket}")
    with pytest.raises(ValidationError) as error:
        rule.full_clean()
    assert "{customer.__class__} is not a placeholder" in error.value.message_dict["customer_message"][0]


def test_without_the_facts_a_template_needs_the_customer_sees_the_fallback(risky_customers):
    risky_customers([0.9])
    support_rule(condition={"field": "score.support_risk", "op": "gte", "value": 0.6})
    tickets_open_proactively(now=NOW)
    ticket = Ticket.objects.get()
    assert ticket.facts == {} and ticket.reasons == [ticket.reasons[0]]
    assert ticket.customer_message == f"We have opened ticket {ticket.pk} to help you; we will be in touch soon."


def test_the_review_a_ticket_names_is_the_worst_bad_one_never_a_kind_one(risky_customers):
    grumpy, pleased = risky_customers([0.8, 0.8])
    for customer, order in ((grumpy, "7100"), (pleased, "7200")):
        late_order(customer, order, days_late=3)
    review(grumpy, "7001", rating=2, days_ago=9)
    review(grumpy, "7002", rating=1, days_ago=6)  # the worst
    review(grumpy, "7003", rating=4, days_ago=2)  # later and kind: not what worries
    review(pleased, "7004", rating=5, days_ago=2)
    support_rule(customer_message="Sorry about your {rating} review of order {review_order_id}.")

    tickets_open_proactively(now=NOW)

    worried = Ticket.objects.get(customer=grumpy)
    assert (worried.facts["rating"], worried.facts["review_order_id"]) == (1, "7002")
    assert worried.customer_message == "Sorry about your 1 star review of order 7002."
    calm = Ticket.objects.get(customer=pleased)
    assert "rating" not in calm.facts and not any("review" in reason for reason in calm.reasons)
    assert "review" not in calm.customer_message  # the rule's message needs a bad review: the fallback instead
