"""Who is on a project (with their review activity), its invitations, and the instance's users."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, Max, Q, QuerySet
from django.http import Http404

from reviewapp.models import AuditEvent, Invitation, Membership, Project


def member_list(*, project: Project) -> QuerySet[Membership]:
    """Members by username, each with ``reviews`` (current, not returned) and ``last_review`` on this project."""
    mine = Q(user__reviews__project=project, user__reviews__returned_at__isnull=True)
    return (
        Membership.objects.filter(project=project)
        .select_related("user")
        .annotate(
            reviews=Count("user__reviews", filter=mine), last_review=Max("user__reviews__submitted_at", filter=mine)
        )
        .order_by("user__username")
    )


def member_get(*, project: Project, username: str) -> Membership:
    membership = (
        Membership.objects.filter(project=project, user__username=username).select_related("user", "project").first()
    )
    if membership is None:
        raise Http404("No such member of this project.")
    return membership


def invitation_list(*, project: Project) -> QuerySet[Invitation]:
    return (
        Invitation.objects.filter(project=project)
        .select_related("created_by", "accepted_by")
        .order_by("-created_at", "-id")
    )


def invitation_get(*, project: Project, pk: int) -> Invitation:
    invitation = Invitation.objects.filter(project=project, pk=pk).select_related("project").first()
    if invitation is None:
        raise Http404("No such invitation in this project.")
    return invitation


@dataclass
class UserRow:
    user: Any
    projects: list[tuple[Project, str]] = field(default_factory=list)


def instance_user_list() -> list[UserRow]:
    """Every user with their projects and roles, in two queries."""
    users = list(get_user_model().objects.order_by("username"))
    rows = {u.pk: UserRow(user=u) for u in users}
    for membership in Membership.objects.select_related("project").order_by("project__name"):
        row = rows.get(membership.user_id)
        if row is not None:
            row.projects.append((membership.project, membership.role))
    return list(rows.values())


def instance_user_get(*, username: str) -> Any:
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise Http404("No such user.")
    return user


def instance_audit_recent(*, limit: int = 30) -> list[AuditEvent]:
    """The latest changes to users themselves (deactivation, instance admin, sign-up by invitation)."""
    return list(AuditEvent.objects.filter(action__startswith="user.").select_related("actor").order_by("-id")[:limit])
