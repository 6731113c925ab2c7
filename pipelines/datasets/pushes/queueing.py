"""Queueing pushes: a dataset version's push, the feed's micro-batches; the jobs kernel re-queues lost ones."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from pipelines.datasets.pushes.targets import delivery_target_create, delta_default_uri
from pipelines.models import DatasetVersion, DeliveryTarget, Push, TargetKind
from reviewapp.errors import ValidationFailed
from reviewapp.jobs import job_enqueue, job_kind_get, job_kind_sweep
from reviewapp.models import CuratedLabel, Project
from reviewapp.services.audit import audit_record
from reviewapp.typed_input import field_error
from reviewapp.usertypes import signed_in

if TYPE_CHECKING:
    from reviewapp.usertypes import Actor

logger = logging.getLogger(__name__)

# Labels curated in the last seconds are left to the next batch: a transaction that stamped
# updated_at earlier may still be committing, and the watermark must not pass it.
FEED_SETTLE_SECONDS = 2


# --- creating pushes ---------------------------------------------------------------------------


def _batch_id(*parts: object) -> str:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return f"rd-{digest[:40]}"


def push_create(
    *,
    project: Project,
    dataset_version: DatasetVersion,
    delivery_target: DeliveryTarget | None = None,
    user: Actor,
) -> Push:
    """Queue a push of a dataset version (default target: a Delta table named after the dataset).

    The push row commits first; its task is sent once the transaction commits.
    """
    if dataset_version.dataset.project_id != project.pk:
        raise ValidationFailed([field_error("dataset_version", "Not a version of this project.")])
    if delivery_target is None:
        delivery_target = delivery_target_create(
            project=project,
            kind=TargetKind.DELTA,
            target=delta_default_uri(project=project, name=dataset_version.dataset.name),
            user=user,
        )
    elif delivery_target.project_id != project.pk:
        raise ValidationFailed([field_error("target", "Not a delivery target of this project.")])
    batch_id = _batch_id(
        delivery_target.kind, delivery_target.target, "version", dataset_version.pk, dataset_version.content_hash
    )
    with transaction.atomic():
        push = Push.objects.create(
            project=project,
            delivery_target=delivery_target,
            dataset_version=dataset_version,
            target_kind=delivery_target.kind,
            target=delivery_target.target,
            batch_id=batch_id,
            rows_total=dataset_version.row_count,
            created_by=signed_in(user),
            enqueued_at=timezone.now(),
        )
        audit_record(
            actor=user,
            action="push.create",
            target=push,
            project=project,
            data={"dataset_version": dataset_version.pk, "target": push.target, "kind": push.target_kind},
        )
        _enqueue([push.pk])
    return push


Mark = tuple[datetime, int]  # (updated_at, id) of a curated label: the feed's order


def labels_between(project_id: int, *, after: Mark | None, upto: Mark | None) -> Any:
    """Curated labels of the project with (updated_at, id) in ``(after, upto]`` (None: unbounded)."""
    labels = CuratedLabel.objects.filter(project_id=project_id)
    if after is not None:
        labels = labels.filter(Q(updated_at__gt=after[0]) | Q(updated_at=after[0], id__gt=after[1]))
    if upto is not None:
        labels = labels.filter(Q(updated_at__lt=upto[0]) | Q(updated_at=upto[0], id__lte=upto[1]))
    return labels


def _watermark(target: DeliveryTarget) -> Mark | None:
    return (target.watermark_at, target.watermark_id) if target.watermark_at is not None else None


def feed_push_create(
    *, delivery_target: DeliveryTarget, user: Actor = None, now: datetime | None = None
) -> Push | None:
    """Queue the next micro-batch of the target's feed, or None (nothing new, or one still unfinished).

    The batch covers ``(watermark_at - DELIVERY_FEED_OVERLAP_SECONDS, (to_at, to_id)]``, where
    ``(to_at, to_id)`` is the last of at most DELIVERY_BATCH_MAX_ROWS settled labels after the
    watermark. A batch is created only when such a label exists: labels in the overlap alone (a late
    commit) go with the next batch that has something new.
    """
    now = now or timezone.now()
    with transaction.atomic():
        target = DeliveryTarget.objects.select_for_update().get(pk=delivery_target.pk)
        if Push.objects.filter(delivery_target=target, dataset_version__isnull=True, status__in=Push.ACTIVE).exists():
            return None
        settled = now - timedelta(seconds=FEED_SETTLE_SECONDS)
        watermark = _watermark(target)
        pending = (
            labels_between(target.project_id, after=watermark, upto=None)
            .filter(updated_at__lte=settled)
            .order_by("updated_at", "id")
        )
        window = list(pending.values_list("updated_at", "id")[: settings.DELIVERY_BATCH_MAX_ROWS])
        if not window:
            return None
        to_at, to_id = window[-1]
        # The range starts before the watermark (id 0: every label of that instant on), so it only
        # depends on the watermark and a retried or re-created batch keeps its id.
        from_at: datetime | None = None
        from_id, overlap = 0, 0
        if watermark is not None:
            from_at = watermark[0] - timedelta(seconds=settings.DELIVERY_FEED_OVERLAP_SECONDS)
            overlap = labels_between(target.project_id, after=(from_at, from_id), upto=watermark).count()
        push = Push.objects.create(
            project_id=target.project_id,
            delivery_target=target,
            target_kind=target.kind,
            target=target.target,
            batch_id=_batch_id(
                target.kind,
                target.target,
                "feed",
                from_at.isoformat() if from_at else "",
                from_id,
                to_at.isoformat(),
                to_id,
            ),
            range_from_at=from_at,
            range_from_id=from_id,
            range_to_at=to_at,
            range_to_id=to_id,
            rows_total=len(window) + overlap,  # the new labels and those re-read before the watermark
            created_by=signed_in(user),
            enqueued_at=now,
        )
        _enqueue([push.pk])
    return push


def feed_push_due(*, now: datetime | None = None) -> list[int]:
    """Beat: one micro-batch per feed-enabled target that has new curated labels; the new push ids."""
    created = []
    for target in DeliveryTarget.objects.filter(feed_enabled=True).order_by("id"):
        try:
            push = feed_push_create(delivery_target=target, now=now)
        except Exception:  # one broken target must not stop the others
            logger.exception("Could not create the feed push of delivery target %s", target.pk)
            continue
        if push is not None:
            created.append(push.pk)
    return created


def _enqueue(push_ids: list[int]) -> None:
    job_enqueue(Push, push_ids)  # the kernel sends pipelines.push_execute by name, once this commits


# --- the sweeper -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushSweep:
    requeued: int
    failed: int


def pushes_sweep(*, now: datetime | None = None) -> PushSweep:
    """The jobs kernel's sweep of pushes (reviewapp.jobs_sweep, beat): re-queue those whose worker died
    (lease expired) or whose message was lost; fail those out of attempts."""
    swept = job_kind_sweep(job_kind_get(Push), now=now)
    return PushSweep(requeued=swept.requeued, failed=swept.failed)
