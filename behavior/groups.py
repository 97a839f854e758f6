"""The admin's groups: who may see and change what. Looked up by app label and model name at run time,
so a group also gets the permissions of an app whose tables arrive later (support)."""

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

VIEW = ("view",)
WORK = ("view", "add", "change")
ALL = ("view", "add", "change", "delete")

# Targets say what each score.<target> answers: whoever reads scores may read them.
READ_CUSTOMERS = {"behavior.customer": VIEW, "behavior.score": VIEW, "behavior.event": VIEW, "behavior.product": VIEW,
                  "behavior.target": VIEW}
# Notes stay as written: agents add them, nobody changes them.
SUPPORT_AGENT = {**READ_CUSTOMERS, "support.ticket": WORK, "support.ticketnote": ("view", "add")}

GROUPS: dict[str, dict[str, tuple[str, ...]] | None] = {
    "Campaign managers": {**READ_CUSTOMERS, "campaigns.campaign": ALL, "campaigns.assignment": VIEW,
                          "campaigns.coupon": VIEW, "campaigns.message": VIEW,
                          "campaigns.messagingsettings": ("view", "change")},
    "Support agents": SUPPORT_AGENT,
    "Support leads": {**SUPPORT_AGENT, "support.supportrule": ALL, "support.helpdesksettings": ("view", "change"),
                      "support.outboxmessage": VIEW},
    "Administrators": None,  # every permission: models, schedules, API keys, users
}


def groups_sync() -> None:
    """Create the groups and grant what each lists; permissions given by hand in the admin are kept."""
    for name, grants in GROUPS.items():
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
