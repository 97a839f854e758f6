import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from behavior.groups import groups_sync

DEMO_USERS = {  # login -> group
    "campaigns": "Campaign managers",
    "agent": "Support agents",
    "lead": "Support leads",
    "admin": "Administrators",
}


class Command(BaseCommand):
    help = "Make one admin login per group (campaign manager, support agent, support lead, administrator)."

    def handle(self, **options):
        password = os.environ.get("FORESIGHT_DEMO_PASSWORD")
        if not password:
            if connection.vendor != "sqlite":
                raise CommandError("set FORESIGHT_DEMO_PASSWORD: a made-up password is for the SQLite demo only")
            password = secrets.token_urlsafe(9)  # the local demo: made up now, and printed below
        groups_sync()
        User = get_user_model()
        for username, group_name in DEMO_USERS.items():
            user, _ = User.objects.get_or_create(username=username)
            user.is_staff, user.is_superuser = True, False  # what they may do comes from their group alone
            user.set_password(password)
            user.save()
            user.groups.set([Group.objects.get(name=group_name)])
            self.stdout.write(f"  {group_name:<18}  login {username:<9}  password {password}")
