from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


class BehaviorConfig(AppConfig):
    name = "behavior"
    verbose_name = "Behaviour"

    def ready(self):
        post_migrate.connect(_sync_groups, dispatch_uid="behavior.groups")


def _sync_groups(sender, **kwargs):
    # After the last app's post_migrate, when every app's permissions exist (auth makes them app by app).
    # Also runs after a test database flush, which empties the groups.
    if sender.label != list(apps.get_app_configs())[-1].label:
        return
    from behavior.groups import groups_sync

    groups_sync()
