from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    """Personalized ads and price offers, chosen by rules over behaviour scores."""

    name = "campaigns"

    def ready(self):
        from behavior.signals import scoring_finished

        scoring_finished.connect(_evaluate_after_scoring, dispatch_uid="campaigns.evaluate")


def _evaluate_after_scoring(sender, run, **kwargs):
    from behavior.broker import hand_over
    from campaigns.tasks import evaluate_campaigns

    # The signal comes after the run's commit: workers see fresh scores. With the broker down this run is
    # skipped (the run stays succeeded, the other listeners still run) and the next scoring run acts instead.
    hand_over(evaluate_campaigns.si(run.pk), sweeper="the next scoring run")
