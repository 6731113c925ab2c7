"""The OpenAPI schema and its Swagger page, public only when ``API_DOCS_PUBLIC`` is on.

Off (the production default), the schema needs a signed-in user or an API token, and the Swagger
page sends a visitor to the login page. The page is drf-spectacular's "split" view: its start-up
script is a file of its own, so the Content-Security-Policy needs no inline script.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponseBase
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import permissions


class ApiDocsAccess(permissions.BasePermission):
    """Anyone when the operator made the docs public, else any authenticated caller (session or token)."""

    message = "The API schema is not public here; sign in or send an API token."

    def has_permission(self, request: Any, view: Any) -> bool:
        return bool(settings.API_DOCS_PUBLIC or (request.user and request.user.is_authenticated))


class ApiSchemaView(SpectacularAPIView):
    permission_classes = [ApiDocsAccess]


class ApiDocsView(SpectacularSwaggerSplitView):
    permission_classes = [ApiDocsAccess]
    template_name = "reviewapp/swagger_ui.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # A person in a browser: the login page, not a bare 401.
        if not settings.API_DOCS_PUBLIC and not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return super().dispatch(request, *args, **kwargs)
