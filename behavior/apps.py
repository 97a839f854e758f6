from django.apps import AppConfig


class BehaviorConfig(AppConfig):
    name = "behavior"
    verbose_name = "Behaviour"
