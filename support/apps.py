from django.apps import AppConfig

from behavior.groups import ALL, READ_CUSTOMERS, VIEW, WORK

# Notes stay as written: agents add them, nobody changes them.
SUPPORT_AGENT = {**READ_CUSTOMERS, "support.ticket": WORK, "support.ticketnote": ("view", "add")}


class SupportConfig(AppConfig):
    """Proactive help tickets for customers heading for a problem, delivered to the shop's helpdesk."""

    name = "support"
    default_auto_field = "django.db.models.BigAutoField"  # its migrations', whatever the project's default
    admin_groups = {"Support agents": SUPPORT_AGENT,
                    "Support leads": {**SUPPORT_AGENT, "support.supportrule": ALL,
                                      "support.helpdesksettings": WORK, "support.outboxmessage": VIEW}}

    def ready(self):
        from django.db.models.signals import pre_delete

        from behavior.models import Customer
        from behavior.signals import scoring_finished
        from support import dashboard  # noqa: F401  its sections of the admin's home page

        scoring_finished.connect(_open_tickets_after_scoring, dispatch_uid="support.open_tickets")
        # Every way of erasing a customer (the API, the admin) deletes the row, inside the deletion's transaction.
        pre_delete.connect(_tell_the_helpdesk_of_an_erasure, sender=Customer, dispatch_uid="support.erasure")


def _open_tickets_after_scoring(sender, run, **kwargs):
    from behavior.broker import hand_over
    from support.tasks import open_support_tickets

    # The signal comes after the run's commit: workers see fresh scores. With the broker down this run is
    # skipped (the run stays succeeded, the other listeners still run) and the next scoring run acts instead.
    hand_over(open_support_tickets.si(run.pk), sweeper="the next scoring run")


def _tell_the_helpdesk_of_an_erasure(sender, instance, **kwargs):
    from django.utils import timezone

    from support.services.outbox import outbox_enqueue_erasure

    outbox_enqueue_erasure(customer=instance, now=timezone.now())
