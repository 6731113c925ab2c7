"""Accepting an invitation link: a signed-in user joins; a visitor makes an account and joins.

The page is open to anyone holding the link (the token is the credential); it never caches, and
it names only the project and the role.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from reviewapp.errors import NotAllowed, ServiceError, ValidationFailed
from reviewapp.services.invitations import invitation_accept, invitation_accept_new_account, invitation_find
from reviewapp.sso import config as sso_config

TEMPLATE = "reviewapp/invitation_accept.html"


def _render(request: HttpRequest, context: dict, status: int = 200) -> HttpResponse:
    # The URL holds the secret; the site's Referrer-Policy (same-origin) keeps it from other sites.
    return render(request, TEMPLATE, context, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
def invitation_accept_view(request: HttpRequest, token: str) -> HttpResponse:
    invitation = invitation_find(raw=token)
    if invitation is None or invitation.status != "pending":
        reason = (
            "This invitation link is not valid." if invitation is None else f"This invitation was {invitation.status}."
        )
        return _render(request, {"unusable": reason}, status=404 if invitation is None else 410)
    errors: list[str] = []
    status = 200
    username = ""
    if request.method == "POST":
        try:
            if request.user.is_authenticated:
                membership = invitation_accept(raw=token, user=request.user)
            else:
                username = request.POST.get("username", "").strip()
                data = {"username": username, "password": request.POST.get("password", "")}
                membership = invitation_accept_new_account(raw=token, data=data)
                login(request, membership.user, backend="reviewapp.sso.backend.LocalPasswordBackend")
        except ValidationFailed as exc:
            errors = [e["message"] for e in exc.errors] or [exc.message]
        except NotAllowed as exc:
            errors, status = [exc.message], 403
        except ServiceError as exc:
            return _render(request, {"unusable": exc.message}, status=410)
        else:
            project = membership.project
            messages.success(request, f"Welcome to {project.name}: you are {membership.role}.")
            return redirect("review-page", slug=project.slug)
    context = {
        "invitation": invitation,
        "errors": errors,
        "username": username,
        "local_passwords": sso_config.local_passwords(),
        "sso_enabled": sso_config.sso_enabled(),
        "sso_provider_name": sso_config.provider_name(),
    }
    return _render(request, context, status=422 if errors and status == 200 else status)
