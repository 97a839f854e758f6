from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


class BehaviorConfig(AppConfig):
    name = "behavior"
    default_auto_field = "django.db.models.BigAutoField"  # its migrations', whatever the project's default
    verbose_name = "Behaviour"

    def ready(self):
        post_migrate.connect(_sync_groups, dispatch_uid="behavior.groups")
        _admin_home_set()
        _celery_app_ensure()


def _admin_home_set():
    """The admin's home shows the dashboard (behavior.dashboard) above the app list, unless the project gave its
    admin site a home page of its own."""
    from django.contrib import admin

    if admin.site.index_template is None:
        admin.site.index_template = "admin/foresight/index.html"


def _celery_app_ensure():
    """Foresight's tasks run on the project's Celery app. A project without one gets one that reads the
    project's CELERY_ settings, rather than Celery's unconfigured fallback, which would send every task to an AMQP
    broker on localhost; with tasks in process and no broker named, nothing leaves the process."""
    from celery import Celery, _state

    from behavior.conf import foresight_settings

    # Celery keeps no public record of whether a project made an app: these two are what it consults.
    if _state._tls.current_app is None and _state.default_app is None:
        app = Celery("foresight")
        app.config_from_object("django.conf:settings", namespace="CELERY")
        in_process = foresight_settings.TASKS_IN_PROCESS or app.conf.task_always_eager
        if in_process and not app.conf.broker_url:
            app.conf.broker_url = "memory://"  # in process, nothing leaves it (beat still takes a producer)
        app.autodiscover_tasks()
        app.set_default()  # for every thread, not only this one


def _sync_groups(sender, **kwargs):
    # After the last app's post_migrate, when every app's permissions exist (auth makes them app by app);
    # an app without models gets none. Also runs after a test database flush, which empties the groups.
    if sender.label != [config for config in apps.get_app_configs() if config.models_module][-1].label:
        return
    from behavior.groups import groups_sync

    groups_sync()
