from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    """Personalized ads and price offers, chosen by rules over behaviour scores."""

    name = "campaigns"
