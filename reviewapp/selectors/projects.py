"""Projects: the permission-checked project getter every face starts from, and a user's project list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, OuterRef, Subquery
from django.http import Http404

from reviewapp.models import ApiToken, Membership, Project, ProjectSync, Question, Review, Role
from reviewapp.models.pairwise import PairwiseTask
from reviewapp.permissions import SCOPE_FOR_CAPABILITY, Capability, refusal_reason, role_allows, token_may_read
from reviewapp.usertypes import is_signed_in

if TYPE_CHECKING:
    from reviewapp.usertypes import AnyUser


def role_for(*, user: AnyUser, project: Project) -> str | None:
    if not is_signed_in(user):
        return None
    if getattr(user, "is_superuser", False):
        return Role.ADMIN
    return Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()


def check_token(*, token: ApiToken | None, project: Project, capability: Capability) -> None:
    """An API token must carry the scope for ``capability`` and, when pinned, name this project."""
    if token is None:
        return
    if token.project_id is not None and token.project_id != project.pk:
        raise Http404("No such project.")
    scope = SCOPE_FOR_CAPABILITY.get(capability)
    if scope is None or (scope and scope not in token.scopes):
        raise PermissionDenied(f"This API token lacks the '{scope or capability}' scope.")
    if not scope and not token_may_read(token.scopes):
        raise PermissionDenied(f"This API token's scopes ({', '.join(token.scopes)}) read nothing.")


def project_get_for_user(
    *, user: AnyUser, slug: str, capability: Capability = Capability.VIEW, token: ApiToken | None = None
) -> Project:
    """The project, if ``user`` is a member allowed ``capability``.

    Non-members get 404 (they must not learn the project exists); members without the
    capability get 403.
    """
    if not is_signed_in(user):
        raise Http404("No such project.")
    # One round trip for the project and the caller's role: this runs on every request.
    projects = Project.objects.filter(slug=slug)
    if not getattr(user, "is_superuser", False):
        member_role = Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
        projects = projects.annotate(member_role=Subquery(member_role))
    project = projects.first()
    role = None
    if project is not None:
        role = Role.ADMIN if getattr(user, "is_superuser", False) else project.member_role  # type: ignore[attr-defined]
    if project is None or role is None:
        raise Http404("No such project.")
    check_token(token=token, project=project, capability=capability)
    if not role_allows(role, capability):
        raise PermissionDenied(refusal_reason(role=role, project_name=project.name, capability=capability))
    project.user_role = role  # type: ignore[attr-defined]  # for templates: what the user may do
    return project


def project_get_by_pk(*, pk: int) -> Project | None:
    """Unchecked lookup for background tasks, which act for the system, not for a user."""
    return Project.objects.filter(pk=pk).first()


def project_get_by_slug(*, slug: str) -> Project | None:
    """Unchecked lookup for operators' management commands; everything user-facing uses project_get_for_user."""
    return Project.objects.filter(slug=slug).first()


def questions_for_project(*, project: Project) -> list[Question]:
    return list(Question.objects.filter(project=project).order_by("order", "id"))


@dataclass(frozen=True)
class ProjectProgress:
    project: Project
    role: str
    items: int
    slots: int
    reviews: int
    my_reviews: int
    has_pairwise: bool = False  # the project has pairwise comparison tasks

    @property
    def percent(self) -> int:
        return round(100 * min(self.reviews, self.slots) / self.slots) if self.slots else 0


def project_list_for_user(*, user: AnyUser, include_archived: bool = False) -> list[ProjectProgress]:
    """The user's projects with review progress, in a fixed number of queries; archived ones only
    when asked for."""
    if not is_signed_in(user):
        return []
    projects = (
        Project.objects.all()
        if getattr(user, "is_superuser", False)
        else Project.objects.filter(memberships__user=user)
    )
    if not include_archived:
        projects = projects.filter(archived_at__isnull=True)
    roles = dict(Membership.objects.filter(user=user).values_list("project_id", "role"))
    rows = projects.annotate(
        n_items=Count("items", distinct=True),
        # A subquery, not a join: joining tasks as well as items would multiply the rows counted.
        has_pairwise=Exists(PairwiseTask.objects.filter(project=OuterRef("pk"))),
    ).order_by("name")
    reviews = dict(
        Review.objects.filter(project__in=[p.pk for p in rows])
        .values("project_id")
        .annotate(n=Count("id"))
        .values_list("project_id", "n")
    )
    mine = dict(
        Review.objects.filter(reviewer=user).values("project_id").annotate(n=Count("id")).values_list("project_id", "n")
    )
    return [
        ProjectProgress(
            project=p,
            role=roles.get(p.pk, Role.ADMIN),
            items=p.n_items,
            slots=p.n_items * p.reviews_per_item,
            reviews=reviews.get(p.pk, 0),
            my_reviews=mine.get(p.pk, 0),
            has_pairwise=p.has_pairwise,
        )
        for p in rows
    ]


def project_sync_latest(*, project: Project) -> ProjectSync | None:
    """The project's newest sync (the settings page shows its progress)."""
    return ProjectSync.objects.filter(project=project).first()


def project_sync_get(*, project: Project, pk: int) -> ProjectSync:
    sync = ProjectSync.objects.filter(project=project, pk=pk).first()
    if sync is None:
        raise Http404("No such sync.")
    return sync


def user_roles(*, user: AnyUser) -> frozenset[str]:
    """Every role the user holds on some project (admin for instance admins): what the navigation offers."""
    if not is_signed_in(user):
        return frozenset()
    if getattr(user, "is_superuser", False):
        return frozenset({Role.ADMIN})
    return frozenset(
        Membership.objects.filter(user=user, project__archived_at__isnull=True).values_list("role", flat=True)
    )
