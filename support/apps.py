from django.apps import AppConfig


class SupportConfig(AppConfig):
    """Proactive help tickets for customers heading for a problem, delivered to the shop's helpdesk."""

    name = "support"

    def ready(self):
        from behavior.signals import scoring_finished

        scoring_finished.connect(_open_tickets_after_scoring, dispatch_uid="support.open_tickets")


def _open_tickets_after_scoring(sender, run, **kwargs):
    from support.tasks import open_support_tickets

    open_support_tickets.delay(run.pk)  # the signal comes after the run's commit: workers see fresh scores
