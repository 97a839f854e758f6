"""Two real Celery workers on the same work: tickets are not doubled, and the outbox still arrives in order."""

import time
from collections import Counter, defaultdict
from datetime import timedelta

from behavior.models import Contact, ScoringRun
from support.models import OutboxMessage, Ticket
from support.services.proactive import tickets_open_proactively
from support.services.tickets import ticket_set_status
from support.tasks import deliver_outbox, open_support_tickets
from tests.factories import EventFactory
from tests.support.conftest import NOW, late_order, support_rule


def test_two_workers_on_one_run_open_each_ticket_once(workers, risky_customers):
    customers = risky_customers([0.6 + i / 1000 for i in range(300)] + [0.1] * 20)
    for customer in customers[-20:]:
        EventFactory(customer=customer, type="support_contact", occurred_at=NOW - timedelta(hours=1))
    rule = support_rule(condition={"field": "score.support_risk", "op": "gte", "value": 0.6})
    run = ScoringRun.objects.create(as_of=NOW, status=ScoringRun.Status.SUCCEEDED)
    workers.start()
    workers.start()

    results = [open_support_tickets.delay(run.pk) for _ in range(2)]
    outcomes = [r.get(timeout=120) for r in results]

    assert sum(o["from_contacts"] for o in outcomes) == 20
    assert sum(rule_outcome["reached"] for o in outcomes for rule_outcome in o["rules"]) == 300
    proactive = Ticket.objects.filter(rule=rule).values_list("customer_id", flat=True)
    assert len(proactive) == len(set(proactive)) == 300
    assert Ticket.objects.filter(origin="customer").count() == 20
    assert max(Counter(Contact.objects.values_list("customer_id", flat=True)).values()) == 1
    assert Contact.objects.count() == 300


def test_two_workers_deliver_every_change_in_order_to_a_flaky_helpdesk(workers, risky_customers, helpdesk):
    desk = helpdesk(failure_rate=0.3, retry_base_seconds=1)
    for i, customer in enumerate(risky_customers([0.9] * 10)):
        late_order(customer, f"order-{i}", days_late=2)
    support_rule()
    tickets_open_proactively(now=NOW)
    for ticket in Ticket.objects.all():
        ticket_set_status(ticket=ticket, status="pending")
        ticket_set_status(ticket=ticket, status="solved")
    workers.start()
    workers.start()

    deadline = time.monotonic() + 120
    while OutboxMessage.objects.filter(delivered_at__isnull=True).exists():
        assert time.monotonic() < deadline, "the outbox did not drain in 2 minutes"
        deliver_outbox.delay(), deliver_outbox.delay()  # the periodic schedule, sped up
        time.sleep(1)

    by_ticket = defaultdict(list)
    for delivery in desk.received:
        by_ticket[delivery.ticket].append(delivery.sequence)
    assert desk.refused == [] and desk.failures > 0 and len(by_ticket) == 10
    for sequences in by_ticket.values():
        assert sequences == sorted(sequences) and sorted(set(sequences)) == [1, 2, 3]
