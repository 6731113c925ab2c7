"""Project syncs: after reviews per item (or a consensus rule) changes on a live project, every item's
review slots and curated label follow, in the background on the one jobs kernel (reviewapp.jobs).

The request only changes the setting and writes a ProjectSync row; the task ``reviewapp.project_sync``
takes the row and goes over the project's items in id order, a batch per transaction. Each batch
adds or removes free slots, re-runs curation for its items and commits the cursor with a renewed
lease, so a worker killed half-way leaves a cursor the next claim resumes from. Every step is
idempotent: slots are counted before they are added, only free unleased ones go, and curation
brings an item in line with its reviews whatever it was before.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Count, F
from django.utils import timezone

from reviewapp.jobs import job_claim, job_closed_fields, job_enqueue, job_fail, job_finish, job_held
from reviewapp.models import Assignment, Item, Project, ProjectSync
from reviewapp.models.reviews import EXTRA_SLOT_BASE
from reviewapp.selectors.projects import questions_for_project
from reviewapp.services.curation import curation_item_update
from reviewapp.usertypes import Actor, signed_in


def project_sync_start(*, project: Project, reason: str, actor: Actor = None) -> ProjectSync:
    """Queue a sync of every item; an unfinished earlier sync of the project is superseded (this one
    starts over from the first item, with the newest settings)."""
    with transaction.atomic():
        ProjectSync.objects.filter(project=project, status__in=ProjectSync.ACTIVE).update(
            **job_closed_fields(ProjectSync, ProjectSync.Status.SUPERSEDED)
        )
        sync = ProjectSync.objects.create(
            project=project,
            reason=reason,
            items_total=Item.objects.filter(project=project).count(),
            created_by=signed_in(actor),
            enqueued_at=timezone.now(),
        )
        job_enqueue(ProjectSync, [sync.pk])
    return sync


def project_sync_run(sync_id: int) -> str:
    """Run one sync to the end (the task's body): claim, batches, finish. Returns what happened."""
    owner = job_claim(ProjectSync, sync_id)
    if owner is None:
        return "not claimable"  # finished, superseded, or held by another worker
    try:
        while True:
            more = _batch(sync_id, owner)
            if more is None:
                return "claim lost"
            if not more:
                break
    except DatabaseError as exc:
        job_fail(ProjectSync, sync_id, owner, f"Database error: {exc}", transient=True)
        raise
    except Exception as exc:
        job_fail(ProjectSync, sync_id, owner, f"{type(exc).__name__}: {exc}", transient=False)
        raise
    job_finish(ProjectSync, sync_id, owner, items_total=F("items_done"))
    return "done"


def project_sync_wait(sync: ProjectSync) -> ProjectSync:
    """Run a just-created sync in this process (management commands and fixtures, never a request)."""
    project_sync_run(sync.pk)
    sync.refresh_from_db()
    return sync


def _batch(sync_id: int, owner: str) -> bool | None:
    """One batch of items after the cursor: True when more may follow, False when none were left,
    None when this worker no longer holds the sync (nothing written)."""
    with transaction.atomic():
        sync = ProjectSync.objects.select_for_update().filter(job_held(ProjectSync, sync_id, owner)).first()
        if sync is None:
            return None
        project = Project.objects.get(pk=sync.project_id)
        size = int(settings.PROJECT_SYNC_BATCH)
        ids = list(
            Item.objects.filter(project=project, pk__gt=sync.cursor).order_by("pk").values_list("pk", flat=True)[:size]
        )
        if not ids:
            return False
        slots_sync(project=project, item_ids=ids)
        questions = questions_for_project(project=project)
        for item in Item.objects.filter(pk__in=ids).select_related("project").order_by("pk"):
            curation_item_update(item=item, questions=questions)
        done = sync.items_done + len(ids)
        ProjectSync.objects.filter(pk=sync_id).update(
            cursor=ids[-1],
            items_done=done,
            items_total=max(sync.items_total, done),
            lease_expires_at=timezone.now() + timedelta(seconds=settings.PROJECT_SYNC_LEASE_SECONDS),
        )
    return len(ids) == size


def slots_sync(*, project: Project, item_ids: list[int]) -> None:
    """Give these items exactly ``reviews_per_item`` review slots where possible: add missing ones,
    remove free unleased ones beyond N (filled and held slots stay). Extra gold slots are outside N."""
    n = project.reviews_per_item
    counts = dict(
        Assignment.objects.filter(item_id__in=item_ids, slot__lt=EXTRA_SLOT_BASE)
        .values("item_id")
        .annotate(n=Count("id"))
        .values_list("item_id", "n")
    )
    taken = set(
        Assignment.objects.filter(item_id__in=item_ids, slot__lt=EXTRA_SLOT_BASE).values_list("item_id", "slot")
    )
    new_slots = [
        Assignment(project=project, item_id=item_id, slot=slot, priority=priority)
        for item_id, priority in Item.objects.filter(pk__in=item_ids).values_list("id", "priority")
        if counts.get(item_id, 0) < n
        for slot in range(n)
        if (item_id, slot) not in taken
    ]
    Assignment.objects.bulk_create(new_slots, batch_size=2000, ignore_conflicts=True)
    Assignment.objects.filter(
        item_id__in=item_ids,
        slot__gte=n,
        slot__lt=EXTRA_SLOT_BASE,
        submitted_at__isnull=True,
        reviewer__isnull=True,
    ).delete()
