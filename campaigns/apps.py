from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    """Personalized ads and price offers, chosen by rules over behaviour scores."""

    name = "campaigns"

    def ready(self):
        from behavior.signals import scoring_finished

        scoring_finished.connect(_evaluate_after_scoring, dispatch_uid="campaigns.evaluate")


def _evaluate_after_scoring(sender, run, **kwargs):
    from campaigns.tasks import evaluate_campaigns

    evaluate_campaigns.delay(run.pk)  # the signal comes after the run's commit: workers see fresh scores
