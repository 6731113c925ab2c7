"""What the navigation offers: only the pages the user's roles can open."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from reviewapp.permissions import Capability, may_create_projects, role_allows
from reviewapp.selectors.projects import user_roles


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def compute() -> dict[str, bool]:
        roles = user_roles(user=user)
        return {
            "evaluations": any(role_allows(role, Capability.EVALUATE) for role in roles),
            "create_project": may_create_projects(user),
        }

    # Lazy, once per request: a page that never shows the navigation makes no query.
    cache: dict[str, dict[str, bool]] = {}

    class Nav:
        def __getattr__(self, name: str) -> bool:
            if "v" not in cache:
                cache["v"] = compute()
            return cache["v"].get(name, False)

    return {"nav": Nav()}
