"""The "End users' feedback" block of an item, loaded into the pages curators see the item on
(the adjudication page), so reviewapp's templates show pipelines' data without importing it."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path
from django.views.decorators.http import require_GET

from pipelines.sources.feedback import feedback_summary_for_items
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.views.http import AuthedHtmxRequest


@login_required
@require_GET
def item_feedback(request: AuthedHtmxRequest, slug: str, item_id: int) -> HttpResponse:
    # Curators, engineers and admins: reviewers judge the answer without the end users' verdict.
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.EXPORT)
    if not project.items.filter(pk=item_id).exists():
        raise Http404("No such item.")
    summary = feedback_summary_for_items([item_id]).get(item_id)
    return render(
        request, "pipelines/partials/item_feedback.html", {"project": project, "item_id": item_id, "summary": summary}
    )


urlpatterns: list[URLPattern] = [
    path("projects/<slug:slug>/items/<int:item_id>/feedback/", item_feedback, name="item-feedback"),
]
