"""The review queue page: one leased item at a time, answered from the keyboard.

Why submit returns the next item: a reviewer holds one lease at a time (``queue_next``), so the
next item cannot be leased, or shown, before this one is submitted without either holding two
leases or showing an item someone else may take meanwhile. Instead the submit request saves the
review, leases the next slot and renders it in the same response: the reviewer waits for one
round trip (a few tens of milliseconds on a LAN), with no second request and no page load.
The page, skip and heartbeat are shared with pairwise review (``views.slots``); here are what the
page shows of an item, the submit and the flag.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from reviewapp.blind import project_model_identity_visible
from reviewapp.errors import AlreadySubmitted, Conflict, ItemRemoved, LeaseLost, ValidationFailed
from reviewapp.forms import ReviewAnswersForm
from reviewapp.models import Assignment, Flag, Project
from reviewapp.selectors.items import flaggable_item_get_for_user
from reviewapp.selectors.projects import questions_for_project
from reviewapp.selectors.queue import assignment_get_for_user, queue_progress
from reviewapp.services.flags import flag_create
from reviewapp.services.queue import REVIEW_SLOTS, queue_next
from reviewapp.services.reviews import review_submit
from reviewapp.views.http import AuthedHtmxRequest, Notice
from reviewapp.views.slots import (
    TEMPLATE,
    QueueKind,
    own_slot,
    queue_after_post,
    queue_project,
    queue_refused,
    queue_render,
)


def _shown(
    request: AuthedHtmxRequest,
    project: Project,
    assignment: Assignment | None,
    *,
    form: ReviewAnswersForm | None = None,
) -> dict[str, Any]:
    if assignment is not None and form is None:
        form = ReviewAnswersForm(questions=questions_for_project(project=project), item=assignment.item)
    return {
        "item": assignment.item if assignment is not None else None,
        "form": form,
        "progress": queue_progress(project=project, user=request.user),
        "flag_kinds": Flag.Kind.choices,
        "show_model": project_model_identity_visible(project),
    }


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


QUEUE = QueueKind(
    kind="review",
    title="Review",
    noun="item",
    done_by_you="reviewed by you",
    work="Your answers",
    unsaved="Your answers were not saved.",
    conflict_text={
        LeaseLost: "Your lease expired and another reviewer has this item now.",
        ItemRemoved: "This item was removed from the project.",
        AlreadySubmitted: "You already submitted this item.",
    },
    slots=REVIEW_SLOTS,
    get=assignment_get_for_user,
    next=queue_next,
    shown=_shown,
    skipped=lambda assignment: f"Skipped “{_short(assignment.item.request_text)}”.",
    submitted_hint=("You can change your answers from My reviews.", "review-list", "My reviews"),
)


@login_required
@require_POST
def review_submit_view(request: AuthedHtmxRequest, slug: str, slot_id: int) -> HttpResponse:
    project = queue_project(request, slug)
    try:
        assignment = own_slot(QUEUE, request, project, slot_id)
        questions = questions_for_project(project=project)
        form = ReviewAnswersForm(questions=questions, item=assignment.item, data=request.POST)
        review = review_submit(
            assignment_id=assignment.pk,
            user=request.user,
            answers=form.answers,
            comment=form.comment,
            time_on_task_ms=form.time_on_task_ms,
            lease_token=request.POST.get("token"),
        )
    except ValidationFailed as exc:
        form.add_errors(exc.errors)
        return queue_render(
            request, QUEUE, project, assignment, form=form, notice=Notice("error", exc.message), status=422
        )
    except Conflict as exc:
        return queue_refused(request, QUEUE, project, exc, unsaved=True)
    text = f"Saved your review of “{_short(assignment.item.request_text)}”."
    notice = Notice("success", text, reverse("review-detail", args=[review.pk]), "Edit")
    return queue_after_post(request, QUEUE, project, notice=notice)


@login_required
@require_POST
def review_flag_view(request: AuthedHtmxRequest, slug: str, slot_id: int) -> HttpResponse:
    """Flag the item of the reviewer's lease. Answers typed so far stay on the page: htmx swaps only
    the flag status line; without JavaScript the page reloads on the same lease."""
    project = queue_project(request, slug)
    try:
        assignment = own_slot(QUEUE, request, project, slot_id)
    except ItemRemoved:
        raise Http404("This item was removed from the project.") from None
    item = flaggable_item_get_for_user(user=request.user, project=project, pk=assignment.item_id)
    try:
        flag, _ = flag_create(
            item=item, user=request.user, kind=request.POST.get("kind", ""), note=request.POST.get("note", "")
        )
    except ValidationFailed as exc:
        text = " ".join(e["message"] for e in exc.errors) or exc.message
        notice, status = Notice("error", f"Not flagged: {text}"), 422
    else:
        notice = Notice("success", f"Flagged “{flag.get_kind_display()}” for curators. Carry on with the review.")
        status = 201
    if not request.htmx:
        messages.add_message(request, messages.SUCCESS if status == 201 else messages.ERROR, notice.text)
        return redirect("review-page", slug=project.slug)
    return render(request, f"{TEMPLATE}#flag-result", {"notice": notice}, status=status)
