from datetime import timedelta

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from behavior.admin import (
    ReadOnlyAdmin,
    StatusButtonsAdmin,
    WebhookDestinationAdmin,
    destination_form,
    next_run_in_words,
)
from behavior.condition_builder import ConditionBuilderAdmin
from behavior.conditions import ConditionError
from behavior.core.words import duration_in_words
from support.models import HelpdeskSettings, OutboxMessage, SupportRule, Ticket, TicketNote
from support.selectors import overdue, rule_preview
from support.services.proactive import tickets_open_proactively
from support.services.tickets import TRANSITIONS, TicketError, ticket_note_add, ticket_set_status
from support.tasks import open_support_tickets


@admin.register(SupportRule)
class SupportRuleAdmin(ConditionBuilderAdmin):
    list_display = ["name", "active", "priority", "group", "sla_hours", "dedupe_days"]
    list_filter = ["active", "priority", "group"]
    search_fields = ["name", "subject"]
    readonly_fields = ["would_open_now", "next_run"]
    fields = ["name", "active", "next_run", "condition", "would_open_now", "priority", "group", "sla_hours",
              "dedupe_days", "subject", "customer_message"]
    actions = ["open_tickets_now"]

    @admin.display(description="Opens its tickets next")
    def next_run(self, rule):
        if rule.pk is None or not rule.active:
            return "Only active rules open tickets."
        return f"{next_run_in_words(open_support_tickets.name)}; and after each scoring run."

    @admin.action(description="Open tickets now", permissions=["change"])
    def open_tickets_now(self, request, queryset):
        for rule in queryset:
            outcomes = tickets_open_proactively(only=rule.pk)
            if not outcomes:
                self.message_user(request, f"{rule}: inactive, so it opens no tickets", messages.ERROR)
                continue
            o = outcomes[0]
            self.message_user(request, (
                f"{rule}: {o.matched:,} matched, {o.already_reached:,} of them with a ticket of this rule already; "
                f"{o.reached:,} tickets opened, {o.out_of_budget:,} out of contact budget"),
                messages.SUCCESS)

    @admin.display(description="Tickets it would open now")
    def would_open_now(self, rule):
        if rule.pk is None:
            return "Save to see how many tickets it would open."
        try:
            p = rule_preview(rule=rule)
        except ConditionError as error:
            return f"The condition is not valid: {error}"
        return (f"{p.would_open:,} tickets: {p.matched:,} customers match, {p.already_ticketed:,} of them have a "
                f"ticket of this rule already, {p.out_of_budget:,} have no contact budget left")


class OverdueFilter(admin.SimpleListFilter):
    title = "overdue"
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", "overdue"), ("no", "on time")]

    def queryset(self, request, queryset):
        late = overdue(timezone.now())
        if self.value() == "yes":
            return queryset.filter(late)
        if self.value() == "no":
            return queryset.exclude(late)
        return queryset


class TicketNoteInline(admin.TabularInline):
    """Internal notes: added here, kept as written (a note is a record of what an agent knew and did)."""

    model = TicketNote
    fields = ["text", "author", "created_at"]
    readonly_fields = ["author", "created_at"]
    extra = 1
    can_delete = False
    verbose_name = "internal note"
    verbose_name_plural = "internal notes (never shown to the customer; sent to the helpdesk)"

    def has_change_permission(self, request, obj=None):
        return False


STATUS_WORDS = {Ticket.Status.OPEN: "Reopen", Ticket.Status.PENDING: "Mark pending (waiting on the customer)",
                Ticket.Status.SOLVED: "Solve", Ticket.Status.CLOSED: "Close"}


@admin.register(Ticket)
class TicketAdmin(StatusButtonsAdmin):
    list_display = ["subject", "customer", "origin", "status", "priority", "group", "due"]  # fits 1,366 px
    list_filter = ["group", "priority", "status", OverdueFilter, "origin", "rule"]
    list_select_related = ["customer"]
    search_fields = ["customer__external_id", "subject", "external_reference"]
    ordering = ["-priority", "due_at"]
    raw_id_fields = ["customer", "run"]
    readonly_fields = ["customer", "rule", "origin", "status", "priority", "reasons_in_words", "facts",
                       "storefront_message", "source_event", "run", "opened_at", "due_at", "escalated_at",
                       "acknowledged_at", "external_reference"]
    fields = ["subject", "customer", "origin", "rule", "status", "priority", "group", "reasons_in_words", "facts",
              "storefront_message", "description", "opened_at", "due_at", "escalated_at", "acknowledged_at",
              "external_reference", "source_event", "run"]
    actions = ["mark_pending", "solve", "close", "reopen"]
    inlines = [TicketNoteInline]
    show_full_result_count = False

    def save_formset(self, request, form, formset, change):
        if formset.model is not TicketNote:
            return super().save_formset(request, form, formset, change)
        for note in formset.save(commit=False):  # only new notes: the inline changes none
            ticket_note_add(ticket=form.instance, text=note.text, author=request.user)
        return None

    def has_add_permission(self, request):
        return False  # tickets come from rules, customers and the helpdesk; their changes go through services

    def next_statuses(self, ticket):
        """The buttons of a ticket's page, in the order of its life; ticket_set_status has the last word."""
        return [(status, STATUS_WORDS[status]) for status in Ticket.Status
                if status in TRANSITIONS[Ticket.Status(ticket.status)]]

    @admin.display(description="due", ordering="due_at")
    def due(self, ticket):
        """Overdue in words and the admin's error red ("overdue 3 hours", "overdue 6.0 days" for 5.99), else
        "in 2 hours": not a tick, and rounded as every duration is (behavior.core.words)."""
        if ticket.status not in Ticket.UNRESOLVED:
            return "-"
        now = timezone.now()
        left = duration_in_words((ticket.due_at - now) / timedelta(days=1))
        if ticket.due_at < now:
            return format_html('<strong class="ticket-overdue" style="color: var(--error-fg)">overdue {}</strong>',
                               left)
        return f"in {left}"

    def changelist_view(self, request, extra_context=None):
        # Support contacts arrive as events and become tickets only when the schedule next opens tickets: the
        # queue says when, so a contact the shop just sent is not taken for lost.
        note = (f"Support contacts sent as events become tickets when they are next opened: "
                f"{next_run_in_words(open_support_tickets.name)}; and after each scoring run. Those sent through "
                "the API (POST /api/v1/customers/{id}/tickets) are tickets at once.")
        return super().changelist_view(request, extra_context={"contacts_note": note, **(extra_context or {})})

    @admin.display(description="shown in the storefront")
    def storefront_message(self, ticket):
        return ticket.customer_message if ticket.origin == Ticket.Origin.PROACTIVE else "-"

    @admin.display(description="reasons")
    def reasons_in_words(self, ticket):
        return "; ".join(ticket.reasons) or "-"

    def _set_status(self, request, queryset, status):
        moved, refused = 0, []
        for ticket in queryset:
            try:
                ticket_set_status(ticket=ticket, status=status)
                moved += 1
            except TicketError as error:
                refused.append(f"ticket {ticket.pk}: {error}")
        if moved:
            self.message_user(request, f"{moved} ticket(s) now {status}.", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not changed: " + "; ".join(refused), messages.WARNING)

    @admin.action(description="Mark pending (waiting on the customer)")
    def mark_pending(self, request, queryset):
        self._set_status(request, queryset, Ticket.Status.PENDING)

    @admin.action(description="Solve")
    def solve(self, request, queryset):
        self._set_status(request, queryset, Ticket.Status.SOLVED)

    @admin.action(description="Close")
    def close(self, request, queryset):
        self._set_status(request, queryset, Ticket.Status.CLOSED)

    @admin.action(description="Reopen")
    def reopen(self, request, queryset):
        self._set_status(request, queryset, Ticket.Status.OPEN)


@admin.register(HelpdeskSettings)
class HelpdeskSettingsAdmin(WebhookDestinationAdmin):
    form = destination_form(HelpdeskSettings)


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    list_display = ["pk", "ticket", "sequence", "kind", "created_at", "attempts", "next_attempt_at", "delivered_at",
                    "last_error"]
    list_filter = ["kind", ("delivered_at", admin.EmptyFieldListFilter)]
    search_fields = ["=ticket__pk", "=idempotency_key"]
    show_full_result_count = False
