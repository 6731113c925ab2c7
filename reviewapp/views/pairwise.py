"""The pairwise page: one request, two responses side by side, judged blind from the keyboard.

Like the review page, submit saves the preference and renders the next pair in the same response
(the reviewer holds one lease at a time); the page, skip and heartbeat are shared (``views.slots``).
The page never shows model names or versions; only the results page, for members who may export, does.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from reviewapp.errors import AlreadySubmitted, Conflict, ItemRemoved, LeaseLost, ValidationFailed
from reviewapp.models import PairwiseSlot, Preference, Project
from reviewapp.permissions import Capability, role_allows
from reviewapp.selectors.pairwise import pairwise_progress, pairwise_slot_get_for_user, pairwise_task_count
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.services.pairwise import PAIR_SLOTS, pairwise_next, pairwise_slot_sides, pairwise_submit
from reviewapp.services.pairwise_results import pairwise_results
from reviewapp.views.http import AuthedHtmxRequest, Notice
from reviewapp.views.slots import QueueKind, own_slot, queue_after_post, queue_project, queue_refused, queue_render

# (value, label, keys): the first key is the letter shown on the button.
CHOICES: list[tuple[str, str, tuple[str, str]]] = [
    (Preference.Choice.A, "A is better", ("a", "1")),
    (Preference.Choice.B, "B is better", ("b", "2")),
    (Preference.Choice.TIE, "Tie", ("t", "3")),
    (Preference.Choice.BOTH_BAD, "Both bad", ("x", "4")),
]


def _shown(
    request: AuthedHtmxRequest,
    project: Project,
    slot: PairwiseSlot | None,
    *,
    choice: str = "",
    reason: str = "",
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
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
    return {
        "request_item": request_item,
        "sides": sides,
        "choices": [{"value": v, "label": label, "keys": keys, "checked": v == choice} for v, label, keys in CHOICES],
        "chosen": choice in Preference.Choice.values,
        "reason": reason,
        "errors": errors or {},
        "progress": pairwise_progress(project=project, user=request.user),
        "has_tasks": slot is not None or pairwise_task_count(project=project) > 0,
        "can_see_results": role_allows(getattr(project, "user_role", None), Capability.EXPORT),
        "can_create_pairs": role_allows(getattr(project, "user_role", None), Capability.CURATE),
    }


QUEUE = QueueKind(
    kind="pairwise",
    title="Compare",
    noun="pair",
    done_by_you="pairs judged by you",
    work="Your choice",
    unsaved="Your choice was not saved.",
    conflict_text={
        LeaseLost: "Your lease on this pair expired and another reviewer has it now.",
        ItemRemoved: "This pair was removed from the project.",
        AlreadySubmitted: "You already judged this pair.",
    },
    slots=PAIR_SLOTS,
    get=pairwise_slot_get_for_user,
    next=pairwise_next,
    shown=_shown,
    skipped=lambda slot: "Skipped that pair.",
    keys="reviewapp/partials/pairwise_slot.html#keys",
)


def _time_on_task(raw: str | None) -> int | None:
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


@login_required
@require_POST
def pairwise_submit_view(request: AuthedHtmxRequest, slug: str, slot_id: int) -> HttpResponse:
    project = queue_project(request, slug)
    choice = request.POST.get("choice", "")
    reason = request.POST.get("reason", "")
    try:
        pairwise_submit(
            slot_id=own_slot(QUEUE, request, project, slot_id).pk,
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
        return queue_render(request, QUEUE, project, current, choice=choice, reason=reason, errors=errors, status=422)
    except Conflict as exc:
        return queue_refused(request, QUEUE, project, exc, unsaved=True)
    return queue_after_post(request, QUEUE, project, notice=Notice("success", "Saved your choice."))


@login_required
@require_GET
def pairwise_results_view(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    """Win rates per pair of model versions, for members who may export (curators, engineers)."""
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.EXPORT)
    context = {
        "project": project,
        "results": pairwise_results(project=project),
        "can_create_pairs": role_allows(getattr(project, "user_role", None), Capability.CURATE),
    }
    return render(request, "reviewapp/pairwise_results.html", context)
