"""The instance page, for instance admins: every user, their projects and roles; deactivate,
reactivate, grant and revoke instance admin. Other users get 404 (the page is not theirs to know)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from reviewapp.errors import ServiceError
from reviewapp.selectors.members import instance_audit_recent, instance_user_get, instance_user_list
from reviewapp.services.instance import instance_admin_set, user_set_active
from reviewapp.views.http import AuthedHtmxRequest


def _require_instance_admin(request: AuthedHtmxRequest) -> None:
    if not (request.user.is_superuser and request.user.is_active):
        raise Http404("No such page.")


@login_required
@require_GET
def instance_page(request: AuthedHtmxRequest) -> HttpResponse:
    _require_instance_admin(request)
    return render(request, "reviewapp/instance.html", {"rows": instance_user_list(), "events": instance_audit_recent()})


@login_required
@require_POST
def instance_user_action(request: AuthedHtmxRequest, username: str) -> HttpResponse:
    _require_instance_admin(request)
    user = instance_user_get(username=username)
    action = request.POST.get("action", "")
    try:
        if action in {"deactivate", "reactivate"}:
            user_set_active(user=user, active=action == "reactivate", actor=request.user)
            messages.success(request, f"{username} is {'active' if user.is_active else 'deactivated'}.")
        elif action in {"grant_admin", "revoke_admin"}:
            instance_admin_set(user=user, admin=action == "grant_admin", actor=request.user)
            messages.success(request, f"{username} is {'now' if user.is_superuser else 'no longer'} an instance admin.")
        else:
            messages.error(request, "Unknown action.")
    except ServiceError as exc:
        messages.error(request, exc.message)
    return redirect("instance-page")
