"""API tokens: a user's own tokens, and the operators' unchecked lookup by prefix."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet
from django.http import Http404

from reviewapp.models import ApiToken

if TYPE_CHECKING:
    from reviewapp.selectors.projects import AnyUser


def api_token_list_for_user(*, user: AnyUser) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).select_related("project").order_by("-created_at")


def api_token_get_for_user(*, user: AnyUser, pk: int) -> ApiToken:
    """One of the user's own API tokens; anybody else's is a 404 (their existence is not revealed)."""
    token = ApiToken.objects.select_related("project").filter(pk=pk, user_id=getattr(user, "pk", None)).first()
    if token is None:
        raise Http404("No such API token.")
    return token


def api_token_get_by_prefix(*, prefix: str) -> ApiToken | None:
    """Unchecked lookup for operators' management commands (the prefix is the public part of a token)."""
    return ApiToken.objects.select_related("user", "project").filter(prefix=prefix).first()
