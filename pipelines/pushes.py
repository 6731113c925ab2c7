"""Delivery of curated rows to Delta tables and Unity Catalog: targets, pushes, the feed, the sweeper.

A push is a row first, then a task (``pipelines.push_execute``): ``push_execute`` claims it with a
lease (a conditional UPDATE), writes the batch exactly once and records the outcome. Exactly once
holds at two levels:

- our ledger: a push whose ``batch_id`` already succeeded on the same target writes nothing;
- the destination: Delta keeps the batch id as an application transaction in the same atomic
  commit as the rows (``pipelines.delta``); Unity Catalog loads each batch file once (COPY INTO
  skips loaded files) and MERGEs on ``row_id`` (a replay changes nothing).

``batch_id`` depends only on the target and what the batch covers (a dataset version and its
content hash, or a feed range of curated labels), so a retry, a redelivered message or a second
"push now" of the same version has the same id.

The continuous feed: ``feed_push_due`` (beat, every DELIVERY_PUSH_INTERVAL_SECONDS) creates, for each
target with the feed on that has labels changed since its watermark (``updated_at``, id), one
micro-batch: at most DELIVERY_BATCH_MAX_ROWS of those new labels, plus every label stamped in the
DELIVERY_FEED_OVERLAP_SECONDS before the watermark, and never while an earlier batch is unfinished.
The watermark moves when the batch succeeds. The overlap is there because ``updated_at`` is stamped
before the transaction commits: a label committed after a batch moved the watermark past its stamp
would otherwise be skipped for ever. Re-read rows whose content hash is unchanged are not rewritten
(the MERGE's update predicate), so the overlap costs a read, not a write, and ``rows_written`` counts
only rows inserted or changed.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from django.conf import settings
from django.db import transaction
from django.db.models import F, Prefetch, Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.text import slugify

from pipelines import delta
from pipelines.errors import PermanentPipelineError, PipelineError, TransientPipelineError
from pipelines.models import DatasetRow, DatasetVersion, DeliveryTarget, Push, TargetKind
from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.models import CuratedLabel, Project, Question, Review
from reviewapp.services.audit import audit_record

logger = logging.getLogger(__name__)

ERROR_MAX = 2000
# Labels curated in the last seconds are left to the next batch: a transaction that stamped
# updated_at earlier may still be committing, and the watermark must not pass it.
FEED_SETTLE_SECONDS = 2


# --- targets -----------------------------------------------------------------------------------


def delta_default_uri(*, project: Project, name: str = "curated") -> str:
    """``DELTA_ROOT/<project slug>/<name>`` (DELTA_ROOT may itself be an object-store URI)."""
    return f"{settings.DELTA_ROOT.rstrip('/')}/{project.slug}/{slugify(name) or 'curated'}"


def target_validate(*, kind: str, target: str, field: str = "target") -> list[FieldError]:
    from pipelines.unity_catalog import uc_name_validate

    if kind == TargetKind.DELTA:
        problem = delta.table_uri_validate(target)
    elif kind == TargetKind.UNITY_CATALOG:
        problem = uc_name_validate(target)
    else:
        return [{"index": None, "field": "kind", "message": "Choose delta or unity_catalog."}]
    return [{"index": None, "field": field, "message": problem}] if problem else []


def delivery_target_create(
    *, project: Project, kind: str, target: str = "", feed_enabled: bool = False, user: Any
) -> DeliveryTarget:
    """A destination for the project's curated rows (blank Delta target: ``DELTA_ROOT/<slug>/curated``)."""
    target = (target or "").strip()
    if kind == TargetKind.DELTA and not target:
        target = delta_default_uri(project=project)
    errors = target_validate(kind=kind, target=target)
    if errors:
        raise ValidationFailed(errors)
    with transaction.atomic():
        found, created = DeliveryTarget.objects.get_or_create(
            project=project,
            kind=kind,
            target=target,
            defaults={"feed_enabled": feed_enabled, "created_by": user if _is_user(user) else None},
        )
        if not created and feed_enabled and not found.feed_enabled:
            found.feed_enabled = True
            found.save(update_fields=["feed_enabled"])
        if created:
            audit_record(
                actor=user,
                action="delivery_target.create",
                target=found,
                project=project,
                data={"kind": kind, "target": target, "feed_enabled": feed_enabled},
            )
    return found


def delivery_target_set_feed(*, delivery_target: DeliveryTarget, enabled: bool, user: Any) -> DeliveryTarget:
    with transaction.atomic():
        delivery_target.feed_enabled = enabled
        delivery_target.save(update_fields=["feed_enabled"])
        audit_record(
            actor=user,
            action="delivery_target.feed",
            target=delivery_target,
            project=delivery_target.project,
            data={"enabled": enabled},
        )
    return delivery_target


def _is_user(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False))


# --- creating pushes ---------------------------------------------------------------------------


def _batch_id(*parts: object) -> str:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return f"rd-{digest[:40]}"


def push_create(
    *,
    project: Project,
    dataset_version: DatasetVersion,
    delivery_target: DeliveryTarget | None = None,
    user: Any,
) -> Push:
    """Queue a push of a dataset version (default target: a Delta table named after the dataset).

    The push row commits first; its task is sent once the transaction commits.
    """
    if dataset_version.dataset.project_id != project.pk:
        raise ValidationFailed(
            [{"index": None, "field": "dataset_version", "message": "Not a version of this project."}]
        )
    if delivery_target is None:
        delivery_target = delivery_target_create(
            project=project,
            kind=TargetKind.DELTA,
            target=delta_default_uri(project=project, name=dataset_version.dataset.name),
            user=user,
        )
    elif delivery_target.project_id != project.pk:
        raise ValidationFailed(
            [{"index": None, "field": "target", "message": "Not a delivery target of this project."}]
        )
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
            created_by=user if _is_user(user) else None,
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


def _labels_between(project_id: int, *, after: Mark | None, upto: Mark | None) -> Any:
    """Curated labels of the project with (updated_at, id) in ``(after, upto]`` (None: unbounded)."""
    labels = CuratedLabel.objects.filter(project_id=project_id)
    if after is not None:
        labels = labels.filter(Q(updated_at__gt=after[0]) | Q(updated_at=after[0], id__gt=after[1]))
    if upto is not None:
        labels = labels.filter(Q(updated_at__lt=upto[0]) | Q(updated_at=upto[0], id__lte=upto[1]))
    return labels


def _watermark(target: DeliveryTarget) -> Mark | None:
    return (target.watermark_at, target.watermark_id) if target.watermark_at is not None else None


def feed_push_create(*, delivery_target: DeliveryTarget, user: Any = None, now: datetime | None = None) -> Push | None:
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
            _labels_between(target.project_id, after=watermark, upto=None)
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
            overlap = _labels_between(target.project_id, after=(from_at, from_id), upto=watermark).count()
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
            created_by=user if _is_user(user) else None,
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
    from pipelines.tasks.pushes import push_execute as push_execute_task  # tasks are a face; imported late

    for push_id in push_ids:
        push_execute_task.delay_on_commit(push_id)


# --- executing a push --------------------------------------------------------------------------


@dataclass(frozen=True)
class PushOutcome:
    rows_total: int
    rows_written: int
    table_version: int | None
    skipped: bool


def _claim(push_id: int, token: str) -> bool:
    now = timezone.now()
    # Only this row's columns in the WHERE clause: PostgreSQL re-checks them after waiting for a
    # concurrent claimer's lock, so two workers never both hold the push.
    return (
        Push.objects.filter(pk=push_id, attempts__lt=settings.DELIVERY_PUSH_MAX_ATTEMPTS)
        .filter(Q(status=Push.Status.QUEUED) | Q(status=Push.Status.RUNNING, lease_expires_at__lt=now))
        .update(
            status=Push.Status.RUNNING,
            lease_owner=token,
            lease_expires_at=now + timedelta(seconds=settings.DELIVERY_PUSH_LEASE_SECONDS),
            attempts=F("attempts") + 1,
            started_at=now,
        )
        == 1
    )


def push_execute(*, push_id: int) -> None:
    """Claim the push, write its batch exactly once, record the outcome. Safe to call any number of times.

    TransientPipelineError (a store or workspace that did not answer) puts the push back in the
    queue and is raised for the task to retry; any other error fails it with a message.
    """
    token = uuid.uuid4().hex
    if not _claim(push_id, token):
        return
    push = Push.objects.select_related("project", "delivery_target", "dataset_version__dataset").get(pk=push_id)
    started = time.monotonic()
    held = Q(pk=push_id, lease_owner=token, status=Push.Status.RUNNING)
    try:
        outcome = _push_work(push)
    except TransientPipelineError as exc:
        Push.objects.filter(held).update(
            status=Push.Status.QUEUED, lease_owner="", lease_expires_at=None, error=_describe(exc)
        )
        raise
    except (PipelineError, ValidationFailed) as exc:
        _finish(held, Push.Status.FAILED, started, error=_describe(exc))
        return
    except Exception as exc:
        logger.exception("Push %s failed", push_id)
        _finish(held, Push.Status.FAILED, started, error=_describe(exc))
        return
    with transaction.atomic():
        finished = _finish(
            held,
            Push.Status.SUCCEEDED,
            started,
            rows_total=outcome.rows_total,
            rows_written=outcome.rows_written,
            table_version=outcome.table_version,
            skipped=outcome.skipped,
            error="",
        )
        if finished and push.is_feed:
            _advance_watermark(push)


def _finish(held: Q, status: str, started: float, **fields: Any) -> bool:
    return (
        Push.objects.filter(held).update(
            status=status,
            lease_owner="",
            lease_expires_at=None,
            finished_at=timezone.now(),
            duration_seconds=round(time.monotonic() - started, 3),
            **fields,
        )
        == 1
    )


def _advance_watermark(push: Push) -> None:
    target = DeliveryTarget.objects.select_for_update().get(pk=push.delivery_target_id)
    current = (target.watermark_at, target.watermark_id) if target.watermark_at else None
    new = (push.range_to_at, push.range_to_id)
    if current is None or new > current:  # never backwards (an old batch replayed late)
        target.watermark_at, target.watermark_id = new
        target.save(update_fields=["watermark_at", "watermark_id"])


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, ValidationFailed):
        message += " " + "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
    return f"{type(exc).__name__}: {message}"[:ERROR_MAX]


def _push_work(push: Push) -> PushOutcome:
    # Our ledger first: the same batch already delivered to the same target (a repeated "push now").
    done = (
        Push.objects.filter(
            target_kind=push.target_kind, target=push.target, batch_id=push.batch_id, status=Push.Status.SUCCEEDED
        )
        .exclude(pk=push.pk)
        .order_by("id")
        .first()
    )
    if done is not None:
        return PushOutcome(rows_total=push.rows_total, rows_written=0, table_version=done.table_version, skipped=True)
    if push.target_kind == TargetKind.DELTA:
        return _push_delta(push)
    if push.target_kind == TargetKind.UNITY_CATALOG:
        return _push_unity_catalog(push)
    raise PermanentPipelineError(f"unknown target kind {push.target_kind!r}")


def feedback_kinds(*, push: Push) -> dict[str, str]:
    """Question key -> kind for the push's feedback columns (a version's keys, or every question)."""
    questions = {q.key: q.kind for q in Question.objects.filter(project_id=push.project_id).order_by("order", "id")}
    if push.dataset_version is not None:
        return {key: questions.get(key, "json") for key in push.dataset_version.question_keys or []}
    return questions


def _canonical_rows(push: Push) -> Iterator[tuple[dict[str, Any], str]]:
    """(canonical row, content hash) of every row of the batch, in a stable order."""
    if push.dataset_version is not None:
        # The JSON as text, decoded with msgspec: about 3x faster than the JSONField's json.loads.
        rows = (
            DatasetRow.objects.filter(version_id=push.dataset_version_id)
            .order_by("position")
            .annotate(text=Cast("data", output_field=TextField()))
            .values_list("text", "content_hash")
        )
        decode = msgspec.json.decode
        for text, content_hash in rows.iterator(chunk_size=5000):
            yield decode(text), content_hash
        return
    yield from _feed_rows(push)


def _feed_rows(push: Push) -> Iterator[tuple[dict[str, Any], str]]:
    """Canonical rows of the curated labels in the push's range, as ``pipelines.datasets`` builds them.

    A label changed again after the range was fixed has moved past it: the next batch carries it.
    """
    from pipelines.datasets import canonical_row, question_order, row_hash

    after = (push.range_from_at, push.range_from_id) if push.range_from_at is not None else None
    labels = _labels_between(push.project_id, after=after, upto=(push.range_to_at, push.range_to_id))
    labels = (
        labels.select_related("item", "decided_by")
        .prefetch_related(
            Prefetch("reviews", queryset=Review.objects.select_related("reviewer").only("id", "reviewer__username"))
        )
        .order_by("updated_at", "id")
    )
    order = question_order(project=push.project)
    for label in labels.iterator(chunk_size=2000):
        row = canonical_row(label, question_order=order)
        yield row, row_hash(row)


def _flat_rows(push: Push, kinds: dict[str, str], pushed_at: datetime) -> Iterator[dict[str, Any]]:
    types = {key: delta.FEEDBACK_TYPES.get(kind, delta.JSON) for key, kind in kinds.items()}
    version = push.dataset_version.number if push.dataset_version is not None else None
    for row, content_hash in _canonical_rows(push):
        yield delta.flat_row(
            row,
            feedback_types=types,
            content_hash=content_hash,
            dataset_version=version,
            batch_id=push.batch_id,
            pushed_at=pushed_at,
        )


def _push_delta(push: Push) -> PushOutcome:
    uri = push.target
    # Replay check before reading any row: a batch the table already holds costs one log read.
    applied = delta.delta_batch_version(uri=uri, batch_id=push.batch_id)
    if applied is not None:
        return PushOutcome(rows_total=push.rows_total, rows_written=0, table_version=applied, skipped=True)
    with tempfile.TemporaryDirectory(prefix="reviewdesk-push-") as folder:
        staged = Path(folder) / f"{push.batch_id}.parquet"
        rows = _stage(push, staged)
        source = delta.staged_reader(staged, on_batch=delta.throttle(settings.DELIVERY_BATCH_PAUSE_MS / 1000))
        result = delta.delta_merge_batch(uri=uri, batch_id=push.batch_id, source=source)
    return PushOutcome(
        rows_total=rows, rows_written=result.rows_written, table_version=result.version, skipped=result.skipped
    )


def _stage(push: Push, path: Path) -> int:
    """The batch's rows, read from the database in this thread, as a local Parquet file; the row count."""
    kinds = feedback_kinds(push=push)
    schema = delta.row_schema(feedback_kinds=kinds)
    return delta.stage(delta.record_batches(_flat_rows(push, kinds, timezone.now()), schema=schema), path=path)


def _push_unity_catalog(push: Push) -> PushOutcome:
    from pipelines.unity_catalog import uc_push_batch, uc_push_check

    uc_push_check(full_name=push.target)  # configuration errors before reading or writing anything
    kinds = feedback_kinds(push=push)
    with tempfile.TemporaryDirectory(prefix="reviewdesk-push-") as folder:
        staged = Path(folder) / f"{push.batch_id}.parquet"
        rows = _stage(push, staged)
        result = uc_push_batch(
            full_name=push.target,
            batch_id=push.batch_id,
            parquet=staged,
            comment=f"Curated human feedback of Reviewdesk project '{push.project.name}' ({push.project.slug}).",
            column_comments={
                **delta.COLUMN_COMMENTS,
                **{delta.feedback_column(k): f"Final curated answer to question '{k}'." for k in kinds},
            },
        )
    return PushOutcome(
        rows_total=rows, rows_written=result["rows_written"], table_version=result["table_version"], skipped=False
    )


# --- the sweeper -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushSweep:
    requeued: int
    failed: int


def pushes_sweep(*, now: datetime | None = None) -> PushSweep:
    """Re-queue pushes whose worker died (lease expired) or whose message was lost (beat, every 30 s)."""
    now = now or timezone.now()
    max_attempts = settings.DELIVERY_PUSH_MAX_ATTEMPTS
    requeued: list[int] = []
    failed = 0
    expired = Q(status=Push.Status.RUNNING, lease_expires_at__lt=now)
    for pk, attempts in Push.objects.filter(expired).values_list("pk", "attempts"):
        if attempts >= max_attempts:
            failed += Push.objects.filter(expired, pk=pk).update(
                status=Push.Status.FAILED,
                lease_owner="",
                lease_expires_at=None,
                finished_at=now,
                error=f"Gave up after {attempts} attempts (the worker stopped each time before finishing).",
            )
        elif Push.objects.filter(expired, pk=pk).update(
            status=Push.Status.QUEUED, lease_owner="", lease_expires_at=None, enqueued_at=now
        ):
            requeued.append(pk)
    stale = Q(status=Push.Status.QUEUED, enqueued_at__lt=now - timedelta(seconds=settings.DELIVERY_PUSH_LEASE_SECONDS))
    for pk in Push.objects.filter(stale).values_list("pk", flat=True):
        if Push.objects.filter(stale, pk=pk).update(enqueued_at=now):
            requeued.append(pk)
    _enqueue(requeued)
    return PushSweep(requeued=len(requeued), failed=failed)
