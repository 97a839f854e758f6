from django.apps import AppConfig


class ForesightDemoConfig(AppConfig):
    """A simulated shop and the demo's campaigns, rules and logins: for trying Foresight and testing it,
    never needed to run it (add "foresight_demo" to INSTALLED_APPS for its commands)."""

    name = "foresight_demo"
    verbose_name = "Foresight demo"
