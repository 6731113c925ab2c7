"""Reviews: the permission-checked getter (authors edit, curators read) and lists."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery, Value
from django.http import Http404

from reviewapp.models import ApiToken, Membership, Project, Review, Role
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user

if TYPE_CHECKING:
    from reviewapp.selectors.projects import AnyUser


def review_get_for_user(*, user: AnyUser, pk: int, for_write: bool = False, token: ApiToken | None = None) -> Review:
    """A review: its author may read and edit it; curators and admins may read any."""
    review = Review.objects.select_related("item", "project", "reviewer").filter(pk=pk).first()
    if review is None:
        raise Http404("No such review.")
    if review.reviewer_id == getattr(user, "pk", None):
        checked = project_get_for_user(user=user, slug=review.project.slug, capability=Capability.REVIEW, token=token)
    elif for_write:
        project_get_for_user(user=user, slug=review.project.slug, capability=Capability.VIEW, token=token)
        raise PermissionDenied("Only the reviewer who wrote a review may edit it.")
    else:
        checked = project_get_for_user(user=user, slug=review.project.slug, capability=Capability.EXPORT, token=token)
    review.project.user_role = checked.user_role  # type: ignore[attr-defined]  # what the caller may see (blind review)
    return review


def review_list(*, project: Project) -> QuerySet[Review]:
    return Review.objects.filter(project=project).select_related("reviewer", "item").order_by("id")


def review_list_for_reviewer(*, user: AnyUser, project: Project | None = None) -> QuerySet[Review]:
    qs = Review.objects.filter(reviewer=user).select_related("item", "project")
    # The caller's role in each review's project (blind review decides what they see), no extra query.
    if getattr(user, "is_superuser", False):
        qs = qs.annotate(viewer_role=Value(Role.ADMIN))
    else:
        qs = qs.annotate(
            viewer_role=Subquery(Membership.objects.filter(project=OuterRef("project"), user=user).values("role")[:1])
        )
    if project is not None:
        qs = qs.filter(project=project)
    return qs.order_by("-submitted_at", "-id")
