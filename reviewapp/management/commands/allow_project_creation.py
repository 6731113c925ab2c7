"""``manage.py allow_project_creation --user NAME [--revoke]``: let a user create projects (or no longer).

Instance admins (superusers) always may; anyone else needs this grant (the Project model's
``reviewapp.add_project`` permission, which a group may also carry).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from reviewapp.services.projects import project_creation_allow


class Command(BaseCommand):
    help = "Let a user create projects, or with --revoke no longer."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="The username.")
        parser.add_argument("--revoke", action="store_true", help="Take the permission away.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"No user named '{options['user']}'.")
        allowed = not options["revoke"]
        changed = project_creation_allow(user=user, allowed=allowed, actor=None)
        state = "may create projects" if allowed else "may no longer create projects"
        self.stdout.write(f"{user.get_username()} {state}{'' if changed else ' (unchanged)'}.")
