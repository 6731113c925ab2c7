"""``python manage.py load_demo``: the "Support assistant" demo project, its items and demo logins."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from reviewapp.demo.loader import demo_load
from reviewapp.demo.project import DEMO_USERS


class Command(BaseCommand):
    help = (
        "Load the demo project 'Support assistant' (slug support-assistant): help-centre corpus, RAG outputs "
        "of two model versions, a label schema and four demo users. Safe to run again; it only adds what is "
        "missing. Runs only with DEBUG or REVIEWDESK_TESTING on, unless --force is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even with DEBUG off. The demo users have weak passwords (reviewer/reviewer, ...).",
        )

    def handle(self, *args: Any, force: bool = False, **options: Any) -> None:
        if not (settings.DEBUG or getattr(settings, "TESTING", False) or force):
            # Otherwise a stray `load_demo` on a production box would create admin/admin.
            raise CommandError(
                "load_demo creates users with weak passwords (admin/admin, reviewer/reviewer, ...), so it runs "
                "only with DEBUG=true or REVIEWDESK_TESTING=true. Pass --force to load it anyway."
            )
        result = demo_load()
        project = result.project
        if result.changed:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo project '{project.name}' ({project.slug}): "
                    f"{'created' if result.project_created else 'completed'}; "
                    f"{len(result.questions_created)} questions, {len(result.users_created)} users, "
                    f"{len(result.memberships_set)} memberships, {result.items_created} items and "
                    f"{result.reviews_created} reviews added."
                )
            )
        else:
            self.stdout.write(f"Demo project '{project.name}' ({project.slug}) is already loaded; nothing changed.")
        for username in result.password_mismatch:
            self.stderr.write(
                self.style.WARNING(f"User '{username}' existed already with another password; it was left as is.")
            )
        self.stdout.write("\nDemo logins (username / password, role on the project):")
        for user in DEMO_USERS:
            extra = ", Django admin" if user.superuser else ""
            self.stdout.write(f"  {user.username:<9} / {user.password:<9} {user.role}{extra}")
