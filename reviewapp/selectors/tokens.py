"""API tokens: a user's own tokens, and the operators' unchecked lookup by prefix."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet
from django.http import Http404

from reviewapp.models import ApiToken

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def api_token_list_for_user(*, user: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).select_related("project").order_by("-created_at")


def api_token_get_for_user(*, user: User, pk: int) -> ApiToken:
    """One of the user's own API tokens; anybody else's is a 404 (their existence is not revealed)."""
    token = ApiToken.objects.select_related("project").filter(pk=pk, user=user).first()
    if token is None:
        raise Http404("No such API token.")
    return token


def api_token_get_by_prefix(*, prefix: str) -> ApiToken | None:
    """Unchecked lookup for operators' management commands (the prefix is the public part of a token)."""
    return ApiToken.objects.select_related("user", "project").filter(prefix=prefix).first()
