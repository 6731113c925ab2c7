from __future__ import annotations

from django.apps import AppConfig


class SsoConfig(AppConfig):
    # Its own app (and migrations) inside reviewapp, so its two tables evolve apart from the review core.
    name = "reviewapp.sso"
    label = "sso"
    verbose_name = "Reviewdesk single sign-on"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # A malformed OIDC_ROLE_MAP stops the start, instead of failing at someone's sign-in.
        from reviewapp.sso import config

        config.role_map()
