"""My projects: the user's projects with review progress."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from reviewapp.project_notices import project_notices
from reviewapp.selectors.projects import project_list_for_user
from reviewapp.views.http import AuthedHtmxRequest


@login_required
@require_GET
def project_list(request: AuthedHtmxRequest) -> HttpResponse:
    archived = request.GET.get("archived") == "1"
    rows = project_list_for_user(user=request.user, include_archived=archived)
    notices = project_notices(user=request.user, projects=[(row.project, str(row.role)) for row in rows])
    context = {  # "New project": the navigation's nav.create_project
        "rows": [(row, notices.get(row.project.pk, [])) for row in rows],
        "show_archived": archived,
    }
    return render(request, "reviewapp/project_list.html", context)
