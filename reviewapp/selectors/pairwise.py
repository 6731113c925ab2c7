"""Pairwise comparison: the reviewer's pair leases and progress."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from reviewapp.models import ApiToken, Project
from reviewapp.models.pairwise import PairwiseSkip, PairwiseSlot, PairwiseTask, Preference
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.selectors.queue import QueueProgress

if TYPE_CHECKING:
    from reviewapp.selectors.projects import AnyUser


def pairwise_slot_get_for_user(*, user: AnyUser, pk: int, token: ApiToken | None = None) -> PairwiseSlot:
    """A pairwise lease the user may act on (in a project where they may review)."""
    slot = PairwiseSlot.objects.select_related("project", "task").filter(pk=pk).first()
    if slot is None:
        raise Http404("This pair is no longer in the queue (it may have been removed).")
    project_get_for_user(user=user, slug=slot.project.slug, capability=Capability.REVIEW, token=token)
    return slot


def pairwise_open_slots_for_user(*, project: Project, user: AnyUser) -> QuerySet[PairwiseSlot]:
    """Pair slots this user could lease now: unfilled, free or expired, of pairs they never touched."""
    now = timezone.now()
    touched = PairwiseSlot.objects.filter(project=project, reviewer=user).values("task_id")
    skipped = PairwiseSkip.objects.filter(project=project, reviewer=user).values("task_id")
    judged = Preference.objects.filter(project=project, reviewer=user).values("task_id")
    return (
        PairwiseSlot.objects.filter(project=project, submitted_at__isnull=True)
        .filter(Q(reviewer__isnull=True) | Q(expires_at__lt=now))
        .exclude(task_id__in=touched)
        .exclude(task_id__in=skipped)
        .exclude(task_id__in=judged)
    )


def pairwise_progress(*, project: Project, user: AnyUser) -> QueueProgress:
    done = Preference.objects.filter(project=project, reviewer=user).count()
    left = pairwise_open_slots_for_user(project=project, user=user).values("task_id").distinct().count()
    held = PairwiseSlot.objects.filter(project=project, reviewer=user, submitted_at__isnull=True).count()
    return QueueProgress(done=done, left=left + held)


def pairwise_task_count(*, project: Project) -> int:
    return PairwiseTask.objects.filter(project=project).count()
