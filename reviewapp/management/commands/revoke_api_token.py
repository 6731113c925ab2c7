from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from reviewapp.selectors.tokens import api_token_get_by_prefix
from reviewapp.services.tokens import api_token_revoke


class Command(BaseCommand):
    help = "Revoke an API token by its prefix (the part after rd_; the whole token works too)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prefix", help="The token's prefix, e.g. 3f9a1c2b7d4e, or rd_3f9a1c2b7d4e_...")

    def handle(self, *args: Any, **options: Any) -> None:
        raw: str = options["prefix"].strip()
        # Accept what the user has at hand: the prefix, "rd_<prefix>", or the whole token.
        prefix = raw.removeprefix("rd_").split("_", 1)[0]
        token = api_token_get_by_prefix(prefix=prefix)
        if token is None:
            raise CommandError(f"No API token with prefix '{prefix}'.")
        if token.revoked_at is not None:
            self.stdout.write(f"Token '{token.name}' ({token.prefix}) of {token.user} was already revoked.")
            return
        api_token_revoke(token=token, user=None)
        self.stdout.write(f"Revoked token '{token.name}' ({token.prefix}) of {token.user}.")
