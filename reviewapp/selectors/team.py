"""A project's reviewers and reviewer groups."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import Http404

from reviewapp.models import Project, Role
from reviewapp.models.groups import ReviewerGroup
from reviewapp.permissions import Capability, role_allows


def reviewers_for_project(*, project: Project) -> QuerySet[Any]:
    """Members whose role lets them review, by username."""
    roles = [role for role in Role.values if role_allows(role, Capability.REVIEW)]
    return (
        get_user_model()
        .objects.filter(memberships__project=project, memberships__role__in=roles)
        .order_by("username")
        .distinct()
    )


def reviewers_by_username(*, project: Project, usernames: list[str]) -> tuple[list[Any], list[str]]:
    """The project's reviewers with these usernames, in the given order, and the names not found."""
    found = {u.username: u for u in reviewers_for_project(project=project).filter(username__in=usernames)}
    return [found[n] for n in dict.fromkeys(usernames) if n in found], [n for n in usernames if n not in found]


def reviewer_group_list(*, project: Project) -> QuerySet[ReviewerGroup]:
    return ReviewerGroup.objects.filter(project=project).prefetch_related("members").order_by("name", "id")


def reviewer_group_get(*, project: Project, pk: int) -> ReviewerGroup:
    """A group of ``project`` (whose access the caller checked); 404 for any other."""
    group = ReviewerGroup.objects.filter(project=project, pk=pk).select_related("project").first()
    if group is None:
        raise Http404("No such reviewer group in this project.")
    return group
