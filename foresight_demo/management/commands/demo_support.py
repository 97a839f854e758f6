from django.core.management.base import BaseCommand, CommandError

from behavior.models import ScoringRun
from support.models import Priority, SupportRule, Ticket
from support.selectors import help_messages, rule_preview
from support.services.proactive import tickets_open_from_contacts, tickets_open_proactively

DEMO_RULE = dict(
    name="Demo: worried customers with a late order", priority=Priority.HIGH, group="deliveries", sla_hours=8,
    dedupe_days=14, subject="Late order",
    condition={"all": [{"field": "score.support_risk", "op": "gte", "value": 0.3},
                       {"field": "feature.orders_open_past_due", "op": "gte", "value": 1}]},
)


class Command(BaseCommand):
    help = "Create a demo support rule, open tickets on the latest scoring run and show a few with their reasons."

    def add_arguments(self, parser):
        parser.add_argument("--show", type=int, default=3, help="tickets to show")

    def handle(self, show, **options):
        run = ScoringRun.objects.filter(status=ScoringRun.Status.SUCCEEDED).order_by("-finished_at").first()
        if run is None:
            raise CommandError("no finished scoring run: run `manage.py demo` (or `train` and `score`) first")
        heading = self.style.MIGRATE_HEADING
        rule, _ = SupportRule.objects.get_or_create(name=DEMO_RULE["name"], defaults={**DEMO_RULE, "active": True})
        preview = rule_preview(rule=rule, now=run.as_of)
        self.stdout.write(heading("\nProactive support on the scored customers"))
        self.stdout.write(f"  {rule.name}: {preview.matched:,} customers match, {preview.already_ticketed:,} have a "
                          f"ticket already, {preview.out_of_budget:,} have no contact budget left")
        for outcome in tickets_open_proactively(run=run):
            name = SupportRule.objects.get(pk=outcome.rule).name
            self.stdout.write(f"  {name}: {outcome.reached:,} tickets opened, {outcome.out_of_budget:,} skipped "
                              "(contact budget spent)")
        tickets_open_from_contacts(now=run.as_of)  # already done after the scoring run, unless tasks ran elsewhere
        started = Ticket.objects.filter(origin=Ticket.Origin.CUSTOMER, status__in=Ticket.UNRESOLVED).count()
        self.stdout.write(f"  {started:,} open tickets in the same queue from customers who contacted support")
        tickets = (Ticket.objects.filter(rule=rule, run=run).select_related("customer", "rule")
                   .order_by("-facts__days_late", "pk")[:show])
        for ticket in tickets:
            self.stdout.write(heading(f"\nTicket {ticket.pk} for {ticket.customer.external_id} "
                                      f"({Priority(ticket.priority).name.lower()}, {ticket.group}, "
                                      f"due {ticket.due_at:%Y-%m-%d %H:%M})"))
            for reason in ticket.reasons:
                self.stdout.write(f"  - {reason}")
        if tickets:
            customer = tickets[0].customer
            self.stdout.write(heading(f"\nWhat the storefront shows {customer.external_id} "
                                      f"(GET /api/v1/customers/{customer.external_id}/help)"))
            for ticket in help_messages(customer=customer):
                self.stdout.write(f"  {ticket.customer_message}")
