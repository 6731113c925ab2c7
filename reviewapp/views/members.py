"""The project admins' people page: members (role, activity), invitations and reviewer groups.

Everything needs MANAGE. Each form posts to its own endpoint and redirects back with a message
(post/redirect/get), except a new invitation, whose link is shown once in the creating response.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from reviewapp.errors import ServiceError, ValidationFailed
from reviewapp.models import Project, Role
from reviewapp.permissions import Capability
from reviewapp.selectors.members import invitation_get, invitation_list, member_get, member_list
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.selectors.team import (
    reviewer_group_get,
    reviewer_group_list,
    reviewers_by_username,
    reviewers_for_project,
)
from reviewapp.services.assignments import reviewer_group_create, reviewer_group_delete, reviewer_group_update
from reviewapp.services.invitations import MAX_DAYS, invitation_create, invitation_path, invitation_revoke
from reviewapp.services.members import member_add, member_remove, member_role_change
from reviewapp.views.http import AuthedHtmxRequest

TEMPLATE = "reviewapp/members.html"


def _project(request: AuthedHtmxRequest, slug: str) -> Project:
    return project_get_for_user(user=request.user, slug=slug, capability=Capability.MANAGE)


def _say(request: AuthedHtmxRequest, exc: ServiceError) -> None:
    errors = getattr(exc, "errors", None)
    if errors:
        for error in errors:
            messages.error(request, error["message"])
    else:
        messages.error(request, exc.message)


def _back(project: Project) -> HttpResponse:
    return redirect("members-page", slug=project.slug)


def _page(request: AuthedHtmxRequest, project: Project, status: int = 200, **extra: Any) -> HttpResponse:
    context = {
        "project": project,
        "members": member_list(project=project),
        "roles": Role.choices,
        "invitations": invitation_list(project=project)[:50],
        "groups": reviewer_group_list(project=project),
        "reviewers": list(reviewers_for_project(project=project).values_list("username", flat=True)),
        "max_days": MAX_DAYS,
        "mail_enabled": settings.EMAIL_ENABLED,
        **extra,
    }
    return render(request, TEMPLATE, context, status=status)


@login_required
@require_GET
def members_page(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    return _page(request, _project(request, slug))


@login_required
@require_POST
def member_add_view(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = _project(request, slug)
    data = {"username": request.POST.get("username", ""), "role": request.POST.get("role", "")}
    try:
        membership = member_add(project=project, data=data, actor=request.user)
    except ServiceError as exc:
        _say(request, exc)
    else:
        messages.success(request, f"{membership.user.username} is now {membership.role} on {project.name}.")
    return _back(project)


@login_required
@require_POST
def member_role_view(request: AuthedHtmxRequest, slug: str, username: str) -> HttpResponse:
    project = _project(request, slug)
    membership = member_get(project=project, username=username)
    try:
        member_role_change(membership=membership, data={"role": request.POST.get("role", "")}, actor=request.user)
    except ServiceError as exc:
        _say(request, exc)
    else:
        messages.success(request, f"{username} is now {membership.role}.")
    return _back(project)


@login_required
@require_POST
def member_remove_view(request: AuthedHtmxRequest, slug: str, username: str) -> HttpResponse:
    project = _project(request, slug)
    membership = member_get(project=project, username=username)
    try:
        member_remove(membership=membership, actor=request.user)
    except ServiceError as exc:
        _say(request, exc)
    else:
        messages.success(request, f"{username} was removed from {project.name}; their reviews stay.")
    return _back(project)


@never_cache  # the response carries the invitation link, shown once
@login_required
@require_POST
def invitation_create_view(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = _project(request, slug)
    data: dict[str, Any] = {"role": request.POST.get("role", ""), "email": request.POST.get("email", "").strip()}
    days = request.POST.get("days", "").strip()
    data["days"] = int(days) if days.isdigit() else days or 7
    try:
        invitation, raw = invitation_create(
            project=project, data=data, actor=request.user, base_url=request.build_absolute_uri("/")
        )
    except ValidationFailed as exc:
        _say(request, exc)
        return _back(project)
    link = request.build_absolute_uri(invitation_path(raw))
    return _page(request, project, status=201, created=invitation, link=link)


@login_required
@require_POST
def invitation_revoke_view(request: AuthedHtmxRequest, slug: str, pk: int) -> HttpResponse:
    project = _project(request, slug)
    invitation = invitation_revoke(invitation=invitation_get(project=project, pk=pk), actor=request.user)
    messages.success(request, f"The {invitation.role} invitation ({invitation.prefix}…) is {invitation.status}.")
    return _back(project)


def _group_members(project: Project, request: AuthedHtmxRequest) -> list[Any]:
    members, _ = reviewers_by_username(project=project, usernames=request.POST.getlist("members"))
    return members


@login_required
@require_POST
def group_create_view(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = _project(request, slug)
    try:
        group = reviewer_group_create(
            project=project,
            name=request.POST.get("name", ""),
            members=_group_members(project, request),
            actor=request.user,
        )
    except ServiceError as exc:
        _say(request, exc)
    else:
        messages.success(request, f"Group “{group.name}” created.")
    return _back(project)


@login_required
@require_POST
def group_update_view(request: AuthedHtmxRequest, slug: str, pk: int) -> HttpResponse:
    project = _project(request, slug)
    group = reviewer_group_get(project=project, pk=pk)
    try:
        reviewer_group_update(
            group=group,
            actor=request.user,
            name=request.POST.get("name") or None,
            members=_group_members(project, request),
        )
    except ServiceError as exc:
        _say(request, exc)
    else:
        messages.success(request, f"Group “{group.name}” saved.")
    return _back(project)


@login_required
@require_POST
def group_delete_view(request: AuthedHtmxRequest, slug: str, pk: int) -> HttpResponse:
    project = _project(request, slug)
    group = reviewer_group_get(project=project, pk=pk)
    reviewer_group_delete(group=group, actor=request.user)
    messages.success(request, f"Group “{group.name}” deleted; its open slots are assigned to nobody.")
    return _back(project)
