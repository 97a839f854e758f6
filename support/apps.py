from django.apps import AppConfig


class SupportConfig(AppConfig):
    """Proactive help tickets for customers heading for a problem."""

    name = "support"
