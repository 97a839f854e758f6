from django.core.management.base import BaseCommand, CommandError

from behavior.models import ApiKey
from behavior.services.api_keys import api_key_create


class Command(BaseCommand):
    help = ("Make an API key and print it once (only its hash is stored); an ingest key's token secret, for the "
            "shop's server to sign customer tokens with, on a second line.")

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--scope", action="append", choices=ApiKey.Scope.values, required=True,
                            help="repeat for several scopes")

    def handle(self, name, scope, **options):
        try:
            key, raw = api_key_create(name=name, scopes=scope)
        except ValueError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(raw)
        if ApiKey.Scope.INGEST in key.scopes:
            self.stdout.write(f"token secret: {key.token_secret}")
