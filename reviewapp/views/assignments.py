"""The curators' queue page: queue settings, assignment by filter, reviewer groups, flags, gold accuracy.

Each form posts to its own endpoint and redirects back (post/redirect/get); an invalid form
re-renders the page with its errors and status 422. Everything needs CURATE.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from reviewapp.errors import ValidationFailed
from reviewapp.forms import BulkAssignForm, QueueSettingsForm, ReviewerGroupForm
from reviewapp.models import Project
from reviewapp.permissions import Capability, role_allows
from reviewapp.selectors.gold import gold_accuracy_for_reviewers
from reviewapp.selectors.items import flag_list
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.selectors.queue import open_slot_counts
from reviewapp.selectors.team import (
    reviewer_group_get,
    reviewer_group_list,
    reviewers_by_username,
    reviewers_for_project,
)
from reviewapp.services.assignments import (
    assignments_bulk_assign,
    project_queue_settings_set,
    reviewer_group_create,
)
from reviewapp.views.http import AuthedHtmxRequest

TEMPLATE = "reviewapp/assignments.html"
RECENT_FLAGS = 20


def _forms(project: Project, data: Any = None, which: str = "") -> dict[str, Any]:
    """The page's three forms; only the one named ``which`` is bound to ``data``."""
    usernames = list(reviewers_for_project(project=project).values_list("username", flat=True))
    groups = reviewer_group_list(project=project)
    initial = {
        "queue_mode": project.queue_mode,
        "gold_rate": project.gold_rate,
        "lease_seconds": project.lease_seconds,
        "show_model_to_reviewers": project.show_model_to_reviewers,
        "sibling_spacing": project.sibling_spacing,
    }
    can_manage = role_allows(project.user_role, Capability.MANAGE)  # type: ignore[attr-defined]
    return {
        "assign_form": BulkAssignForm(
            data if which == "assign" else None, reviewers=usernames, groups=[(g.pk, g.name) for g in groups]
        ),
        "settings_form": QueueSettingsForm(
            data if which == "settings" else None, initial=initial, can_manage=can_manage
        ),
        "group_form": ReviewerGroupForm(data if which == "group" else None, reviewers=usernames),
        "groups": groups,
    }


def _page(request: AuthedHtmxRequest, project: Project, forms: dict[str, Any], status: int = 200) -> HttpResponse:
    context = {
        "project": project,
        **forms,
        "open_slots": open_slot_counts(project=project),
        "flags": flag_list(project=project)[:RECENT_FLAGS],
        "accuracy": gold_accuracy_for_reviewers(project=project),
    }
    return render(request, TEMPLATE, context, status=status)


@login_required
@require_GET
def assignments_page(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE)
    return _page(request, project, _forms(project))


@login_required
@require_POST
def assignments_assign(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE)
    forms = _forms(project, request.POST, "assign")
    form = forms["assign_form"]
    if form.is_valid():
        data = form.cleaned_data
        reviewers, _ = reviewers_by_username(project=project, usernames=data["reviewers"])
        group = reviewer_group_get(project=project, pk=data["group"]) if data["group"] is not None else None
        action = data["action"]
        try:
            result = assignments_bulk_assign(
                project=project,
                query=form.item_query(),
                actor=request.user,
                reviewers=reviewers if action == "assign" else (),
                group=group if action == "assign" else None,
                priority=data["priority"],
                assign=action != "priority",
            )
        except ValidationFailed as exc:
            for error in exc.errors:
                form.add_error(None, error["message"])
        else:
            messages.success(
                request,
                f"{result.items} items matched: {result.slots_to_reviewers} slots to reviewers, "
                f"{result.slots_to_group} to the group, {result.slots_unassigned} unassigned; "
                f"priority set on {result.priority_set}.",
            )
            return redirect("assignments-page", slug=project.slug)
    return _page(request, project, forms, status=422)


@login_required
@require_POST
def assignments_settings(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE)
    forms = _forms(project, request.POST, "settings")
    form = forms["settings_form"]
    if form.is_valid():
        try:
            project_queue_settings_set(project=project, actor=request.user, **form.settings())
        except ValidationFailed as exc:
            for error in exc.errors:
                form.add_error(error["field"] if error["field"] in form.fields else None, error["message"])
        else:
            messages.success(request, "Queue settings saved.")
            return redirect("assignments-page", slug=project.slug)
    return _page(request, project, forms, status=422)


@login_required
@require_POST
def groups_create(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE)
    forms = _forms(project, request.POST, "group")
    form = forms["group_form"]
    if form.is_valid():
        members, _ = reviewers_by_username(project=project, usernames=form.cleaned_data["members"])
        try:
            group = reviewer_group_create(
                project=project, name=form.cleaned_data["name"], members=members, actor=request.user
            )
        except ValidationFailed as exc:
            for error in exc.errors:
                form.add_error(error["field"] if error["field"] in form.fields else None, error["message"])
        else:
            messages.success(request, f"Group “{group.name}” created.")
            return redirect("assignments-page", slug=project.slug)
    return _page(request, project, forms, status=422)
