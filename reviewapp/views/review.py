"""The review queue page: one leased item at a time, answered from the keyboard.

Why submit returns the next item: a reviewer holds one lease at a time (``queue_next``), so the
next item cannot be leased, or shown, before this one is submitted without either holding two
leases or showing an item someone else may take meanwhile. Instead the submit request saves the
review, leases the next slot and renders it in the same response: the reviewer waits for one
round trip (a few tens of milliseconds on a LAN), with no second request and no page load.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from reviewapp.blind import project_model_identity_visible
from reviewapp.errors import AlreadySubmitted, Conflict, ItemRemoved, LeaseLost, ValidationFailed
from reviewapp.forms import ReviewAnswersForm
from reviewapp.models import Assignment, Flag, Project
from reviewapp.permissions import Capability
from reviewapp.selectors.items import flaggable_item_get_for_user
from reviewapp.selectors.projects import project_get_for_user, questions_for_project
from reviewapp.selectors.queue import assignment_get_for_user, queue_progress
from reviewapp.services.flags import flag_create
from reviewapp.services.queue import assignment_renew, assignment_skip, queue_next
from reviewapp.services.reviews import review_submit
from reviewapp.views.http import AuthedHtmxRequest, Notice, partial

TEMPLATE = "reviewapp/review.html"
HEARTBEAT_MAX_SECONDS = 60
MESSAGE_LEVELS = {"success": messages.SUCCESS, "info": messages.INFO, "warning": messages.WARNING}

CONFLICT_TEXT: dict[type[Conflict], str] = {
    LeaseLost: "Your lease expired and another reviewer has this item now.",
    ItemRemoved: "This item was removed from the project.",
    AlreadySubmitted: "You already submitted this item.",
}


def _conflict_notice(exc: Conflict, *, unsaved: bool) -> Notice:
    text = CONFLICT_TEXT.get(type(exc), exc.message)
    if isinstance(exc, AlreadySubmitted):
        return Notice(
            "warning", f"{text} You can change your answers from My reviews.", reverse("review-list"), "My reviews"
        )
    if unsaved:
        text += " Your answers were not saved."
    return Notice("warning", f"{text} Here is the next item.")


def _own_assignment(request: AuthedHtmxRequest, project: Project, assignment_id: int) -> Assignment | None:
    """The posted lease, or None when its item is gone (the services then say ItemRemoved)."""
    try:
        assignment = assignment_get_for_user(user=request.user, pk=assignment_id)
    except Http404:
        return None
    if assignment.project_id != project.pk:
        raise Http404("No such item in this project.")
    return assignment


def _heartbeat_seconds(project: Project) -> int:
    # Renew well before the lease runs out, even on projects with short leases.
    return max(10, min(HEARTBEAT_MAX_SECONDS, project.lease_seconds // 3))


def _render_panel(
    request: AuthedHtmxRequest,
    project: Project,
    assignment: Assignment | None,
    *,
    form: ReviewAnswersForm | None = None,
    notice: Notice | None = None,
    status: int = 200,
) -> HttpResponse:
    if assignment is not None and form is None:
        form = ReviewAnswersForm(questions=questions_for_project(project=project), item=assignment.item)
    context: dict[str, Any] = {
        "project": project,
        "assignment": assignment,
        "item": assignment.item if assignment is not None else None,
        "form": form,
        "progress": queue_progress(project=project, user=request.user),
        "notice": notice,
        "heartbeat_seconds": _heartbeat_seconds(project),
        "flag_kinds": Flag.Kind.choices,
        "show_model": project_model_identity_visible(project),
    }
    return render(request, partial(TEMPLATE, request, "review-panel"), context, status=status)


def _next_item(
    request: AuthedHtmxRequest, project: Project, *, notice: Notice | None, status: int = 200
) -> HttpResponse:
    """After a POST: the next item in the same response (htmx), or a redirect to it (plain form)."""
    if not request.htmx:
        if notice is not None:
            messages.add_message(request, MESSAGE_LEVELS[notice.level], notice.text)
        return redirect("review-page", slug=project.slug)
    return _render_panel(request, project, queue_next(project=project, user=request.user), notice=notice, status=status)


@login_required
@require_GET
def review_page(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    """The reviewer's current lease, or the next free item; 'All done' when none is left."""
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.REVIEW)
    return _render_panel(request, project, queue_next(project=project, user=request.user))


@login_required
@require_POST
def review_submit_view(request: AuthedHtmxRequest, slug: str, assignment_id: int) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.REVIEW)
    assignment = _own_assignment(request, project, assignment_id)
    if assignment is None:
        return _next_item(
            request, project, notice=_conflict_notice(ItemRemoved(CONFLICT_TEXT[ItemRemoved]), unsaved=True), status=409
        )
    form = ReviewAnswersForm(questions=questions_for_project(project=project), item=assignment.item, data=request.POST)
    try:
        review = review_submit(
            assignment_id=assignment.pk,
            user=request.user,
            answers=form.answers,
            comment=form.comment,
            time_on_task_ms=form.time_on_task_ms,
        )
    except ValidationFailed as exc:
        form.add_errors(exc.errors)
        return _render_panel(request, project, assignment, form=form, notice=Notice("error", exc.message), status=422)
    except Conflict as exc:
        return _next_item(request, project, notice=_conflict_notice(exc, unsaved=True), status=409)
    text = f"Saved your review of “{_short(assignment.item.request_text)}”."
    return _next_item(
        request, project, notice=Notice("success", text, reverse("review-detail", args=[review.pk]), "Edit")
    )


@login_required
@require_POST
def review_skip_view(request: AuthedHtmxRequest, slug: str, assignment_id: int) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.REVIEW)
    assignment = _own_assignment(request, project, assignment_id)
    try:
        if assignment is None:
            raise ItemRemoved(CONFLICT_TEXT[ItemRemoved])
        assignment_skip(assignment=assignment, user=request.user, reason=request.POST.get("reason", ""))
    except Conflict as exc:
        return _next_item(request, project, notice=_conflict_notice(exc, unsaved=False), status=409)
    return _next_item(request, project, notice=Notice("info", f"Skipped “{_short(assignment.item.request_text)}”."))


@login_required
@require_POST
def review_renew_view(request: AuthedHtmxRequest, slug: str, assignment_id: int) -> HttpResponse:
    """The heartbeat: keep the lease while the reviewer works; say so, and stop, once it is lost."""
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.REVIEW)
    assignment = _own_assignment(request, project, assignment_id)
    try:
        if assignment is None:
            raise ItemRemoved(CONFLICT_TEXT[ItemRemoved])
        assignment_renew(assignment=assignment, user=request.user)
    except Conflict as exc:
        text = f"{CONFLICT_TEXT.get(type(exc), exc.message)} Your answers can no longer be saved."
        html = render_to_string(f"{TEMPLATE}#lease-lost", {"text": text, "project": project}, request=request)
        return HttpResponseStopPolling(html)
    return HttpResponse(status=204)


@login_required
@require_POST
def review_flag_view(request: AuthedHtmxRequest, slug: str, assignment_id: int) -> HttpResponse:
    """Flag the item of the reviewer's lease. Answers typed so far stay on the page: htmx swaps only
    the flag status line; without JavaScript the page reloads on the same lease."""
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.REVIEW)
    assignment = _own_assignment(request, project, assignment_id)
    if assignment is None:
        raise Http404("This item was removed from the project.")
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


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
