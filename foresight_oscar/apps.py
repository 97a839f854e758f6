from django.apps import AppConfig


class ForesightOscarConfig(AppConfig):
    name = "foresight_oscar"
    verbose_name = "Foresight for django-oscar"

    def ready(self):
        from foresight_oscar import offers, receivers  # noqa: F401  (connect their receivers)
