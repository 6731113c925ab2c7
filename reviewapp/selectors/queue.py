"""The review queue: which slots a reviewer may lease, their progress, and the assignment overview."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db.models import Count, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from reviewapp.models import ApiToken, Assignment, Project, Review, Skip
from reviewapp.models.groups import ReviewerGroup
from reviewapp.models.projects import QueueMode
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user

if TYPE_CHECKING:
    from reviewapp.selectors.projects import AnyUser


def assignment_get_for_user(*, user: AnyUser, pk: int, token: ApiToken | None = None) -> Assignment:
    """A lease the user may act on (their own, in a project where they may review)."""
    assignment = Assignment.objects.select_related("item", "project").filter(pk=pk).first()
    if assignment is None:
        raise Http404("This item is no longer in the queue (it may have been removed).")
    project_get_for_user(user=user, slug=assignment.project.slug, capability=Capability.REVIEW, token=token)
    return assignment


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


def items_closed_to_user(*, project: Project, user: AnyUser) -> list[QuerySet[Any]]:
    """Subqueries of the item ids this user may never lease a slot of.

    Items they hold or held a slot of (so never the same reviewer twice), skipped, or whose review
    by them a curator sent back (that slot reopened for someone else).
    """
    return [
        Assignment.objects.filter(project=project, reviewer=user).values("item_id"),
        Skip.objects.filter(project=project, reviewer=user).values("item_id"),
        Review.objects.filter(project=project, reviewer=user, returned_at__isnull=False).values("item_id"),
    ]


def _free_slots_for_user(*, project: Project, user: AnyUser) -> QuerySet[Assignment]:
    now = timezone.now()
    slots = Assignment.objects.filter(project=project, submitted_at__isnull=True, is_gold=False).filter(
        Q(reviewer__isnull=True) | Q(expires_at__lt=now)
    )
    for closed in items_closed_to_user(project=project, user=user):
        slots = slots.exclude(item_id__in=closed)
    return slots


def open_slots_for_user(*, project: Project, user: AnyUser) -> QuerySet[Assignment]:
    """Review slots this user could lease now, in queue order (priority, then oldest).

    Unfilled, free or expired, not gold (gold items come through ``services.gold``), on items not
    closed to them (``items_closed_to_user``), and open to them under the project's queue mode:
    assigned to them or one of their groups, or, in a shared pool, assigned to nobody. For counting
    and listing; queue_next leases through ``queue_sources_for_user`` (the same rules, indexed).
    """
    their_groups = ReviewerGroup.members.through.objects.filter(user_id=user.pk, reviewergroup__project=project).values(
        "reviewergroup_id"
    )
    theirs = Q(assigned_to=user.pk) | Q(assigned_group__in=their_groups)
    if project.queue_mode != QueueMode.ASSIGNED:
        theirs |= Q(assigned_to__isnull=True, assigned_group__isnull=True)
    return _free_slots_for_user(project=project, user=user).filter(theirs).order_by("-priority", "id")


def queue_sources_for_user(*, project: Project, user: AnyUser) -> list[QuerySet[Assignment]]:
    """``open_slots_for_user`` split by assignment, each part in queue order on its own index.

    One query with "assigned to me OR to my group OR to nobody" would walk the project's queue
    index past every slot assigned to someone else (280 ms at 100,000 items when most are assigned
    to others); each part here is an ordered scan of its own partial index instead
    (``assignment_open_assigned_to``, ``assignment_open_group``, ``assignment_open_unassigned``).
    queue_next leases the best first row among them.
    """
    free = _free_slots_for_user(project=project, user=user)
    group_ids = list(
        ReviewerGroup.members.through.objects.filter(user_id=user.pk, reviewergroup__project=project).values_list(
            "reviewergroup_id", flat=True
        )
    )
    sources = [free.filter(assigned_to=user.pk), *(free.filter(assigned_group=g) for g in group_ids)]
    if project.queue_mode != QueueMode.ASSIGNED:
        sources.append(free.filter(assigned_to__isnull=True, assigned_group__isnull=True))
    return [source.order_by("-priority", "id") for source in sources]


def queue_progress(*, project: Project, user: AnyUser) -> QueueProgress:
    done = Review.objects.filter(project=project, reviewer=user).count()
    left = open_slots_for_user(project=project, user=user).order_by().values("item_id").distinct().count()
    held = Assignment.objects.filter(project=project, reviewer=user, submitted_at__isnull=True).count()
    return QueueProgress(done=done, left=left + held)


def assignment_list(*, project: Project) -> QuerySet[Assignment]:
    """Every review slot of the project, with who it is assigned to and who holds or filled it."""
    return (
        Assignment.objects.filter(project=project)
        .select_related("item", "assigned_to", "assigned_group", "reviewer")
        .order_by("id")
    )


@dataclass(frozen=True)
class OpenSlotCount:
    assigned_to: str | None  # username
    group: str | None  # group name
    slots: int


def open_slot_counts(*, project: Project) -> list[OpenSlotCount]:
    """Open review slots per assignee (nobody, a reviewer, a group), most first."""
    rows = (
        Assignment.objects.filter(project=project, submitted_at__isnull=True, is_gold=False)
        .values("assigned_to__username", "assigned_group__name")
        .annotate(n=Count("id"))
        .order_by("-n")
    )
    return [OpenSlotCount(r["assigned_to__username"], r["assigned_group__name"], r["n"]) for r in rows]
