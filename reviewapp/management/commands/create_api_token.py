"""``manage.py create_api_token --user NAME --scopes ingest,review``: print a new token, and only it, on stdout.

Scripts capture it with ``TOKEN=$(python manage.py create_api_token ...)``; everything else goes to stderr.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.http import Http404

from reviewapp.errors import ValidationFailed
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.services.tokens import SCOPES, api_token_create


class Command(BaseCommand):
    help = "Create an API token for a user and print it (it is shown only once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="The username the token acts as.")
        parser.add_argument("--scopes", required=True, help=f"Comma-separated, from: {', '.join(SCOPES)}.")
        parser.add_argument("--project", help="Pin the token to this project's slug (the user must be a member).")
        parser.add_argument("--name", default="cli", help="A label to recognise the token by (default: cli).")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"No user named '{options['user']}'.")
        project = None
        if options["project"]:
            try:
                project = project_get_for_user(user=user, slug=options["project"], capability=Capability.VIEW)
            except Http404:
                raise CommandError(f"'{user}' is not a member of a project '{options['project']}'.") from None
        scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        try:
            token, raw = api_token_create(user=user, name=options["name"], scopes=scopes, project=project)
        except ValidationFailed as exc:
            raise CommandError("; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)) from None
        pinned = f" on project {project.slug}" if project else ""
        self.stderr.write(
            f"Created token '{token.name}' ({token.prefix}) for {user} with scopes {', '.join(token.scopes)}"
            f"{pinned}. Store it now: it is not shown again."
        )
        self.stdout.write(raw)
