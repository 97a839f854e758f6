"""The admin's groups: who may see and change what.

Each app grants its own models to the groups that work with them (its AppConfig's `admin_groups`:
group name -> {"app_label.model": actions}), and this gathers them: the base app names no upper app's
models. Permissions are looked up by app label and model name at run time, so a group also gets those of
an app whose tables arrive later.
"""

from django.apps import apps
from django.db.models import Q

VIEW = ("view",)
WORK = ("view", "add", "change")
ALL = ("view", "add", "change", "delete")
ADMINISTRATORS = "Administrators"  # every permission: models, schedules, API keys, users

# What a group that works with customers reads of them. Targets say what each score.<target> answers:
# whoever reads scores may read them.
READ_CUSTOMERS = {"behavior.customer": VIEW, "behavior.score": VIEW, "behavior.event": VIEW, "behavior.product": VIEW,
                  "behavior.target": VIEW}


def groups() -> dict[str, dict[str, tuple[str, ...]] | None]:
    """Each group and what it is granted ("app_label.model" -> actions; None: everything), from every app."""
    gathered: dict[str, dict[str, tuple[str, ...]] | None] = {}
    for config in apps.get_app_configs():
        for name, grants in getattr(config, "admin_groups", {}).items():
            gathered[name] = {**(gathered.get(name) or {}), **grants}
    return {**gathered, ADMINISTRATORS: None}


def groups_sync() -> None:
    """Create the groups and grant what each lists; permissions given by hand in the admin are kept."""
    from django.contrib.auth.models import Group, Permission  # apps import this module's grants before auth loads

    for name, grants in groups().items():
        group, _ = Group.objects.get_or_create(name=name)
        if grants is None:
            group.permissions.add(*Permission.objects.all())
            continue
        wanted = Q(pk__in=[])
        for label, actions in grants.items():
            app_label, model = label.split(".")
            wanted |= Q(content_type__app_label=app_label, content_type__model=model,
                        codename__in=[f"{action}_{model}" for action in actions])
        group.permissions.add(*Permission.objects.filter(wanted))
