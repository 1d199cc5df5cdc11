"""`manage.py gallery_index [NAME ...]`: rebuild the pgvector gallery index from the templates.

The pgvector tables are a derived index of FaceTemplate: each client's is created on its
first search or change. Rebuild after restoring a database backup, or to reclaim an index
that missed changes while PostgreSQL with pgvector was unreachable."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from auth_service.models import ApiClient
from auth_service.services import galleries


class Command(BaseCommand):
    help = "Rebuilds the pgvector gallery tables of the named clients (all clients by default)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("names", nargs="*", help="Client names (default: every client).")

    def handle(self, *args, names: list[str], **options) -> None:
        if settings.FACEAUTH_GALLERY_BACKEND != "pgvector":
            raise CommandError(
                "FACEAUTH_GALLERY_BACKEND is not pgvector: the in-memory gallery has no index to rebuild."
            )
        found = ApiClient.objects.filter(name__in=names) if names else ApiClient.objects.all()
        missing = set(names) - {client.name for client in found}
        if missing:
            raise CommandError(f"No client named {', '.join(sorted(missing))}.")
        backend = galleries.backend()
        for client in found:
            count = backend.rebuild(client.client_id)
            self.stdout.write(f"{client.name}: {count} templates indexed")
