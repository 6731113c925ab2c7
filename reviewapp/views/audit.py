"""The audit log page: every state change of a project, newest first, for curators."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from reviewapp.permissions import Capability
from reviewapp.selectors.audit import audit_actions, audit_event_list
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.views.http import AuthedHtmxRequest

PAGE_SIZE = 50


@login_required
@require_GET
def audit_page(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE)
    actions = audit_actions(project=project)
    action = request.GET.get("action", "")
    if action not in actions:
        action = ""
    events = audit_event_list(project=project, action=action or None)
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"project": project, "page": page, "actions": actions, "action": action}
    return render(request, "reviewapp/audit.html", context)
