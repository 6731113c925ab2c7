"""My reviews: the reviewer's submitted reviews, and editing one (its history is kept)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from reviewapp.blind import model_identity_visible, project_model_identity_visible
from reviewapp.errors import Conflict, ValidationFailed
from reviewapp.forms import ReviewAnswersForm
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user, questions_for_project
from reviewapp.selectors.reviews import review_get_for_user, review_list_for_reviewer
from reviewapp.services.reviews import review_edit
from reviewapp.views.http import AuthedHtmxRequest, Notice, partial

PAGE_SIZE = 25


@login_required
@require_GET
def review_list(request: AuthedHtmxRequest) -> HttpResponse:
    project = None
    if slug := request.GET.get("project"):
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.VIEW)
    reviews = review_list_for_reviewer(user=request.user, project=project)
    page = Paginator(reviews, PAGE_SIZE).get_page(request.GET.get("page"))
    for review in page.object_list:  # blind review: per project, from the role the selector annotated
        review.show_model = model_identity_visible(project=review.project, role=review.viewer_role)
    return render(request, "reviewapp/review_list.html", {"page": page, "project": project})


@login_required
@require_http_methods(["GET", "POST"])
def review_detail(request: AuthedHtmxRequest, pk: int) -> HttpResponse:
    """Show one of the user's reviews with its item, and save edits to it."""
    review = review_get_for_user(user=request.user, pk=pk, for_write=True)
    questions = questions_for_project(project=review.project)
    notice = None
    status = 200
    if request.method == "POST":
        form = ReviewAnswersForm(questions=questions, item=review.item, data=request.POST)
        try:
            review = review_edit(review=review, user=request.user, answers=form.answers, comment=form.comment)
        except ValidationFailed as exc:
            form.add_errors(exc.errors)
            notice, status = Notice("error", exc.message), 422
        except Conflict as exc:  # sent back for re-review meanwhile: say so, keep what was typed
            notice, status = Notice("warning", f"{exc.message} Your changes were not saved."), 409
        else:
            if not request.htmx:
                messages.success(request, "Your changes were saved.")
                return redirect("review-detail", pk=review.pk)
            notice = Notice("success", "Your changes were saved.")
            form = ReviewAnswersForm(
                questions=questions, item=review.item, answers=review.answers, comment=review.comment
            )
    else:
        form = ReviewAnswersForm(questions=questions, item=review.item, answers=review.answers, comment=review.comment)
    context = {
        "review": review,
        "item": review.item,
        "project": review.project,
        "form": form,
        "revisions": review.revisions.select_related("edited_by"),
        "notice": notice,
        "show_model": project_model_identity_visible(review.project),
    }
    return render(
        request, partial("reviewapp/review_detail.html", request, "review-edit-panel"), context, status=status
    )
