"""My projects: the user's projects with review progress."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from reviewapp.selectors.projects import project_list_for_user
from reviewapp.views.http import AuthedHtmxRequest


@login_required
@require_GET
def project_list(request: AuthedHtmxRequest) -> HttpResponse:
    archived = request.GET.get("archived") == "1"
    rows = project_list_for_user(user=request.user, include_archived=archived)
    context = {"rows": rows, "show_archived": archived}  # "New project": the navigation's nav.create_project
    return render(request, "reviewapp/project_list.html", context)
