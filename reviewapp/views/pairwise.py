"""The pairwise page: one request, two responses side by side, judged blind from the keyboard.

Like the review page, submit saves the preference and renders the next pair in the same response
(the reviewer holds one lease at a time). The page never shows model names or versions; only the
results page, for members who may export, does.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from reviewapp.errors import AlreadySubmitted, Conflict, ItemRemoved, LeaseLost, ValidationFailed
from reviewapp.models import PairwiseSlot, Preference, Project
from reviewapp.permissions import Capability, role_allows
from reviewapp.selectors.pairwise import pairwise_progress, pairwise_slot_get_for_user, pairwise_task_count
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.services.pairwise import (
    pairwise_next,
    pairwise_renew,
    pairwise_skip,
    pairwise_slot_sides,
    pairwise_submit,
)
from reviewapp.services.pairwise_results import pairwise_results
from reviewapp.views.http import AuthedHtmxRequest, Notice, partial

TEMPLATE = "reviewapp/pairwise.html"
HEARTBEAT_MAX_SECONDS = 60
MESSAGE_LEVELS = {"success": messages.SUCCESS, "info": messages.INFO, "warning": messages.WARNING}

# (value, label, keys): the first key is the letter shown on the button.
CHOICES: list[tuple[str, str, tuple[str, str]]] = [
    (Preference.Choice.A, "A is better", ("a", "1")),
    (Preference.Choice.B, "B is better", ("b", "2")),
    (Preference.Choice.TIE, "Tie", ("t", "3")),
    (Preference.Choice.BOTH_BAD, "Both bad", ("x", "4")),
]
CONFLICT_TEXT: dict[type[Conflict], str] = {
    LeaseLost: "Your lease on this pair expired and another reviewer has it now.",
    ItemRemoved: "This pair was removed from the project.",
    AlreadySubmitted: "You already judged this pair.",
}


def _conflict_notice(exc: Conflict, *, unsaved: bool) -> Notice:
    # A lease is lost in two ways (taken by another reviewer, or an earlier lease's form): say which.
    text = exc.message if isinstance(exc, LeaseLost) else CONFLICT_TEXT.get(type(exc), exc.message)
    if unsaved and not isinstance(exc, AlreadySubmitted):
        text += " Your choice was not saved."
    return Notice("warning", f"{text} Here is the next pair.")


def _own_slot(request: AuthedHtmxRequest, project: Project, slot_id: int) -> PairwiseSlot | None:
    """The posted lease, or None when its pair is gone (the services then say ItemRemoved)."""
    try:
        slot = pairwise_slot_get_for_user(user=request.user, pk=slot_id)
    except Http404:
        return None
    if slot.project_id != project.pk:
        raise Http404("No such pair in this project.")
    return slot


def _heartbeat_seconds(project: Project) -> int:
    # Renew well before the lease runs out, even on projects with short leases.
    return max(10, min(HEARTBEAT_MAX_SECONDS, project.lease_seconds // 3))


def _render_panel(
    request: AuthedHtmxRequest,
    project: Project,
    slot: PairwiseSlot | None,
    *,
    choice: str = "",
    reason: str = "",
    errors: dict[str, str] | None = None,
    notice: Notice | None = None,
    status: int = 200,
) -> HttpResponse:
    sides: list[dict[str, Any]] = []
    request_item = None
    if slot is not None:
        left, right = pairwise_slot_sides(slot)
        # Always A's copy of the request: the two may differ in whitespace, which must not hint at the sides.
        request_item = slot.task.item_a
        sides = [
            {"letter": "A", "where": "left", "item": left},
            {"letter": "B", "where": "right", "item": right},
        ]
    context: dict[str, Any] = {
        "project": project,
        "slot": slot,
        "request_item": request_item,
        "sides": sides,
        "choices": [{"value": v, "label": label, "keys": keys, "checked": v == choice} for v, label, keys in CHOICES],
        "chosen": choice in Preference.Choice.values,
        "reason": reason,
        "errors": errors or {},
        "progress": pairwise_progress(project=project, user=request.user),
        "has_tasks": slot is not None or pairwise_task_count(project=project) > 0,
        "can_see_results": role_allows(getattr(project, "user_role", None), Capability.EXPORT),
        "notice": notice,
        "heartbeat_seconds": _heartbeat_seconds(project),
    }
    return render(request, partial(TEMPLATE, request, "pairwise-panel"), context, status=status)


def _next_pair(
    request: AuthedHtmxRequest, project: Project, *, notice: Notice | None, status: int = 200
) -> HttpResponse:
    """After a POST: the next pair in the same response (htmx), or a redirect to it (plain form)."""
    if not request.htmx:
        if notice is not None:
            messages.add_message(request, MESSAGE_LEVELS[notice.level], notice.text)
        return redirect("pairwise-page", slug=project.slug)
    return _render_panel(
        request, project, pairwise_next(project=project, user=request.user), notice=notice, status=status
    )


def _time_on_task(raw: str | None) -> int | None:
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


@login_required
@require_GET
def pairwise_page(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    """The reviewer's current pair, or the next free one; 'All done' when none is left."""
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.REVIEW)
    return _render_panel(request, project, pairwise_next(project=project, user=request.user))


@login_required
@require_POST
def pairwise_submit_view(request: AuthedHtmxRequest, slug: str, slot_id: int) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.REVIEW)
    slot = _own_slot(request, project, slot_id)
    choice = request.POST.get("choice", "")
    reason = request.POST.get("reason", "")
    try:
        if slot is None:
            raise ItemRemoved(CONFLICT_TEXT[ItemRemoved])
        pairwise_submit(
            slot_id=slot.pk,
            user=request.user,
            lease_token=request.POST.get("token", ""),
            choice=choice,
            reason=reason,
            time_on_task_ms=_time_on_task(request.POST.get("time_on_task_ms")),
            project=project,
        )
    except ValidationFailed as exc:
        errors = {e["field"]: e["message"] for e in exc.errors}
        # The lease was checked before the input, so it is still this reviewer's: show it again, renewed.
        current = pairwise_next(project=project, user=request.user)
        return _render_panel(
            request, project, current, choice=choice, reason=reason, errors=errors, notice=None, status=422
        )
    except Conflict as exc:
        return _next_pair(request, project, notice=_conflict_notice(exc, unsaved=True), status=409)
    return _next_pair(request, project, notice=Notice("success", "Saved your choice."))


@login_required
@require_POST
def pairwise_skip_view(request: AuthedHtmxRequest, slug: str, slot_id: int) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.REVIEW)
    slot = _own_slot(request, project, slot_id)
    try:
        if slot is None:
            raise ItemRemoved(CONFLICT_TEXT[ItemRemoved])
        pairwise_skip(slot=slot, user=request.user, reason=request.POST.get("reason", ""))
    except Conflict as exc:
        return _next_pair(request, project, notice=_conflict_notice(exc, unsaved=False), status=409)
    return _next_pair(request, project, notice=Notice("info", "Skipped that pair."))


@login_required
@require_POST
def pairwise_renew_view(request: AuthedHtmxRequest, slug: str, slot_id: int) -> HttpResponse:
    """The heartbeat: keep the lease while the reviewer works; say so, and stop, once it is lost."""
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.REVIEW)
    slot = _own_slot(request, project, slot_id)
    try:
        if slot is None:
            raise ItemRemoved(CONFLICT_TEXT[ItemRemoved])
        pairwise_renew(slot=slot, user=request.user)
    except Conflict as exc:
        text = f"{CONFLICT_TEXT.get(type(exc), exc.message)} Your choice can no longer be saved."
        html = render_to_string(f"{TEMPLATE}#lease-lost", {"text": text, "project": project}, request=request)
        return HttpResponseStopPolling(html)
    return HttpResponse(status=204)


@login_required
@require_GET
def pairwise_results_view(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    """Win rates per pair of model versions, for members who may export (curators, engineers)."""
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.EXPORT)
    return render(
        request, "reviewapp/pairwise_results.html", {"project": project, "results": pairwise_results(project=project)}
    )
