"""`manage.py create_client NAME [--json] [--rotate]`: issue API credentials.

The secret key is printed once and never stored in plaintext; keep it safe."""

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from auth_service.errors import FaceAuthError
from auth_service.models import ApiClient
from auth_service.services import clients


class Command(BaseCommand):
    help = "Creates an API client and prints its api_key and secret_key (shown only once)."
    requires_system_checks: list = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="A unique name for the client, e.g. the app's name.")
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help='Print only {"client_id", "api_key", "secret_key"} as JSON on stdout.',
        )
        parser.add_argument(
            "--rotate",
            action="store_true",
            help="If NAME exists, issue it a new api_key and secret_key (the old ones stop "
            "working) instead of failing.",
        )

    def handle(self, *args, name: str, as_json: bool, rotate: bool, **options) -> None:
        existing = ApiClient.objects.filter(name=name.strip()).first()
        try:
            if existing is not None and rotate:
                credentials = clients.client_rotate_secret(client=existing)
            elif existing is not None:
                raise CommandError(
                    f"A client named {name!r} already exists; use --rotate to issue it new keys."
                )
            else:
                credentials = clients.client_create(name=name)
        except FaceAuthError as exc:
            raise CommandError(exc.message) from exc
        if as_json:
            self.stdout.write(json.dumps(credentials.as_dict()))
            return
        verb = "Rotated the keys of" if existing is not None else "Created"
        self.stdout.write(
            f"{verb} API client {credentials.client.name!r} (client_id {credentials.client.client_id})\n"
            f"  api_key:    {credentials.api_key}\n"
            f"  secret_key: {credentials.secret_key}\n"
            "Store the secret key now: it is not shown again."
        )

