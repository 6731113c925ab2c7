"""Reads. Every entity is fetched through one permission-checked getter (``*_get_for_user``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from reviewapp.models import ApiToken, Assignment, Item, Membership, Project, Question, Review, Role, Skip
from reviewapp.permissions import SCOPE_FOR_CAPABILITY, Capability, role_allows

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    AnyUser = AbstractBaseUser | AnonymousUser


def role_for(*, user: AnyUser, project: Project) -> str | None:
    if not user.is_authenticated:
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


def project_get_for_user(
    *, user: AnyUser, slug: str, capability: Capability = Capability.VIEW, token: ApiToken | None = None
) -> Project:
    """The project, if ``user`` is a member allowed ``capability``.

    Non-members get 404 (they must not learn the project exists); members without the
    capability get 403.
    """
    project = Project.objects.filter(slug=slug).first()
    role = role_for(user=user, project=project) if project is not None else None
    if project is None or role is None:
        raise Http404("No such project.")
    check_token(token=token, project=project, capability=capability)
    if not role_allows(role, capability):
        raise PermissionDenied(f"Your role ({role}) on this project does not allow '{capability}'.")
    project.user_role = role  # type: ignore[attr-defined]  # for templates: what the user may do
    return project


def assignment_get_for_user(*, user: AnyUser, pk: int, token: ApiToken | None = None) -> Assignment:
    """A lease the user may act on (their own, in a project where they may review)."""
    assignment = Assignment.objects.select_related("item", "project").filter(pk=pk).first()
    if assignment is None:
        raise Http404("This item is no longer in the queue (it may have been removed).")
    project_get_for_user(user=user, slug=assignment.project.slug, capability=Capability.REVIEW, token=token)
    return assignment


def review_get_for_user(*, user: AnyUser, pk: int, for_write: bool = False, token: ApiToken | None = None) -> Review:
    """A review: its author may read and edit it; curators and admins may read any."""
    review = Review.objects.select_related("item", "project", "reviewer").filter(pk=pk).first()
    if review is None:
        raise Http404("No such review.")
    if review.reviewer_id == getattr(user, "pk", None):
        project_get_for_user(user=user, slug=review.project.slug, capability=Capability.REVIEW, token=token)
        return review
    if for_write:
        project_get_for_user(user=user, slug=review.project.slug, capability=Capability.VIEW, token=token)
        raise PermissionDenied("Only the reviewer who wrote a review may edit it.")
    project_get_for_user(user=user, slug=review.project.slug, capability=Capability.EXPORT, token=token)
    return review


def item_get_for_user(*, user: AnyUser, project: Project, pk: int) -> Item:
    item = Item.objects.filter(project=project, pk=pk).first()
    if item is None:
        raise Http404("No such item in this project (it may have been removed).")
    return item


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

    @property
    def percent(self) -> int:
        return round(100 * min(self.reviews, self.slots) / self.slots) if self.slots else 0


def project_list_for_user(*, user: AnyUser) -> list[ProjectProgress]:
    """The user's projects with review progress, in a fixed number of queries."""
    if not user.is_authenticated:
        return []
    projects = (
        Project.objects.all()
        if getattr(user, "is_superuser", False)
        else Project.objects.filter(memberships__user=user)
    )
    roles = dict(Membership.objects.filter(user=user).values_list("project_id", "role"))
    rows = projects.annotate(
        n_items=Count("items", distinct=True),
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
        )
        for p in rows
    ]


@dataclass(frozen=True)
class QueueProgress:
    done: int  # reviews this user submitted in the project
    left: int  # items still open to this user

    @property
    def total(self) -> int:
        return self.done + self.left

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 100


def open_slots_for_user(*, project: Project, user: AnyUser) -> QuerySet[Assignment]:
    """Slots this user could lease now: unfilled, free or expired, on items they never touched."""
    now = timezone.now()
    touched = Assignment.objects.filter(project=project, reviewer=user).values("item_id")
    skipped = Skip.objects.filter(project=project, reviewer=user).values("item_id")
    return (
        Assignment.objects.filter(project=project, submitted_at__isnull=True)
        .filter(Q(reviewer__isnull=True) | Q(expires_at__lt=now))
        .exclude(item_id__in=touched)
        .exclude(item_id__in=skipped)
    )


def queue_progress(*, project: Project, user: AnyUser) -> QueueProgress:
    done = Review.objects.filter(project=project, reviewer=user).count()
    left = open_slots_for_user(project=project, user=user).values("item_id").distinct().count()
    held = Assignment.objects.filter(project=project, reviewer=user, submitted_at__isnull=True).count()
    return QueueProgress(done=done, left=left + held)


def item_list(*, project: Project) -> QuerySet[Item]:
    return Item.objects.filter(project=project).order_by("id")


def review_list(*, project: Project) -> QuerySet[Review]:
    return Review.objects.filter(project=project).select_related("reviewer", "item").order_by("id")


def review_list_for_reviewer(*, user: AnyUser, project: Project | None = None) -> QuerySet[Review]:
    qs = Review.objects.filter(reviewer=user).select_related("item", "project")
    if project is not None:
        qs = qs.filter(project=project)
    return qs.order_by("-submitted_at", "-id")


def item_has_reviews(*, item: Item) -> bool:
    return Review.objects.filter(item=item).exists()


def api_token_list_for_user(*, user: AnyUser) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).select_related("project").order_by("-created_at")


def project_get_by_slug(*, slug: str) -> Project | None:
    """Unchecked lookup for operators' management commands; everything user-facing uses project_get_for_user."""
    return Project.objects.filter(slug=slug).first()


def api_token_get_by_prefix(*, prefix: str) -> ApiToken | None:
    """Unchecked lookup for operators' management commands (the prefix is the public part of a token)."""
    return ApiToken.objects.select_related("user", "project").filter(prefix=prefix).first()


def api_token_get_for_user(*, user: AnyUser, pk: int) -> ApiToken:
    """One of the user's own API tokens; anybody else's is a 404 (their existence is not revealed)."""
    token = ApiToken.objects.select_related("project").filter(pk=pk, user_id=getattr(user, "pk", None)).first()
    if token is None:
        raise Http404("No such API token.")
    return token
