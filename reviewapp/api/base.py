from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.views import APIView

from reviewapp.api.schema import AutoSchema

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from reviewapp.models import ApiToken


class ApiRequest(Request):
    """What an API view receives: every view needs a signed-in user, and a Bearer token authenticates
    as its ``ApiToken`` (a session leaves ``auth`` None)."""

    user: User
    auth: ApiToken | None


class BaseApi(APIView):
    """Every API view: authenticated (Bearer token or session), with our schema naming."""

    schema = AutoSchema()


class SessionOnly(permissions.BasePermission):
    """A signed-in person, not an API token: a leaked token must not be able to mint more."""

    message = "API tokens cannot manage tokens; sign in to the web UI (or use the create_api_token command)."

    def has_permission(self, request: Any, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and request.auth is None)
