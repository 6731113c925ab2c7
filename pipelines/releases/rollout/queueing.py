"""Queueing rollouts: create one with its steps, retry a failed one, and the sweeper that re-sends lost ones."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from pipelines.models import Environment, ModelVersion, PromotionRequest, Rollout, RolloutStep
from pipelines.releases.rollout.lease import RolloutStatus, StepStatus
from reviewapp.errors import Conflict
from reviewapp.services.audit import audit_record

PENDING_RESEND_SECONDS = 60  # a queued rollout no worker picked up this long after it was sent is sent again


# --- creating --------------------------------------------------------------------------------------


def canary_stages(environment: Environment, *, first_deploy: bool) -> list[int]:
    """The environment's traffic stages for the new version, ending at 100 (only 100 on a first deploy)."""
    if first_deploy:
        return [100]
    stages = sorted({int(s) for s in (environment.canary_stages or []) if 0 < int(s) <= 100})
    if not stages or stages[-1] != 100:
        stages.append(100)
    return stages


def _step_specs(rollout: Rollout) -> list[tuple[str, str]]:
    env = rollout.environment
    to_v, from_v = rollout.to_version, rollout.from_version
    specs = [("alias", f"Point alias '{env.alias}' at v{to_v.version}")]
    for stage in rollout.stages:
        if stage == 100 or from_v is None:
            title = f"Serve v{to_v.version} at 100%" + (f" (v{from_v.version} removed)" if from_v else "")
        else:
            title = f"Serve v{to_v.version} at {stage}% beside v{from_v.version} at {100 - stage}%"
        specs.append((f"traffic_{stage}", title))
        soak = f", then a {env.soak_seconds} s soak" if env.soak_seconds else ""
        specs.append(
            (
                f"health_{stage}",
                f"Health check at {stage}%: {env.health_check_queries} real queries to v{to_v.version}{soak}",
            )
        )
    label = "rolled back to" if rollout.kind == Rollout.Kind.ROLLBACK else "now serving"
    specs.append(("finish", f"Record {env.name} {label} v{to_v.version}"))
    return specs


def rollout_create(
    *,
    request: PromotionRequest,
    environment: Environment,
    to_version: ModelVersion,
    from_version: ModelVersion | None,
    kind: str = Rollout.Kind.ROLLOUT,
    actor: Any = None,
    reason: str = "",
) -> Rollout:
    """A queued rollout with its steps; refused (Conflict) while another is queued or running on the environment.

    Call inside a transaction; the task is sent when it commits.
    """
    active = Rollout.objects.filter(environment=environment, status__in=[RolloutStatus.QUEUED, RolloutStatus.RUNNING])
    other = active.first()
    if other is not None:
        raise Conflict(_busy_message(environment, other))
    stages = [100] if kind == Rollout.Kind.ROLLBACK else canary_stages(environment, first_deploy=from_version is None)
    try:
        with transaction.atomic():  # a savepoint: a racing approval hits the partial unique index here
            rollout = Rollout.objects.create(
                request=request,
                environment=environment,
                kind=kind,
                to_version=to_version,
                from_version=from_version,
                stages=stages,
                reason=reason,
                created_by=actor if getattr(actor, "is_authenticated", False) else None,
                enqueued_at=timezone.now(),
            )
    except IntegrityError:
        other = active.first()
        raise Conflict(_busy_message(environment, other)) from None
    RolloutStep.objects.bulk_create(
        RolloutStep(rollout=rollout, position=i, key=key, title=title)
        for i, (key, title) in enumerate(_step_specs(rollout))
    )
    _enqueue(rollout.pk)
    return rollout


def _busy_message(environment: Environment, other: Rollout | None) -> str:
    which = f" (#{other.pk}, {other.kind} of request #{other.request_id})" if other else ""
    return (
        f"Another rollout is already queued or running on {environment.name}{which}; "
        "only one rollout per endpoint at a time. Try again when it has finished."
    )


def _enqueue(rollout_id: int) -> None:
    from pipelines.tasks.promotions import rollout_advance as rollout_advance_task

    rollout_advance_task.delay_on_commit(rollout_id)


def rollout_retry(*, rollout: Rollout, actor: Any) -> Rollout:
    """Queue a failed rollout again: it resumes at its failed step (and re-points the alias first)."""
    with transaction.atomic():
        rollout = Rollout.objects.select_for_update().get(pk=rollout.pk)
        if rollout.status != RolloutStatus.FAILED:
            raise Conflict(f"Only a failed rollout can be retried; this one is {rollout.get_status_display().lower()}.")
        other = (
            Rollout.objects.filter(environment_id=rollout.environment_id, status__in=["queued", "running"])
            .exclude(pk=rollout.pk)
            .first()
        )
        if other is not None:
            raise Conflict(_busy_message(rollout.environment, other))
        failed = rollout.steps.filter(status=StepStatus.FAILED).order_by("position").first()
        reset = Q(key="alias") | Q(status__in=[StepStatus.FAILED, StepStatus.RUNNING])
        if failed is not None:
            reset |= Q(position__gt=failed.position)
            if failed.key.startswith("health_"):
                # The failure put traffic back on the old version: the stage's split is served again first.
                reset |= Q(key=f"traffic_{failed.key.split('_', 1)[1]}")
        # A retried health step soaks again from the start (its detail holds the soak's progress).
        rollout.steps.filter(reset).update(status=StepStatus.PENDING, error="", finished_at=None, detail={})
        rollout.status = RolloutStatus.QUEUED
        rollout.error = ""
        rollout.finished_at = None
        rollout.lease_owner = ""
        rollout.lease_expires_at = None
        rollout.enqueued_at = timezone.now()
        try:
            with transaction.atomic():
                rollout.save(
                    update_fields=["status", "error", "finished_at", "lease_owner", "lease_expires_at", "enqueued_at"]
                )
        except IntegrityError:
            raise Conflict(_busy_message(rollout.environment, None)) from None
        request = rollout.request
        if rollout.kind == Rollout.Kind.ROLLOUT:
            request.status = PromotionRequest.Status.APPROVED
            request.save(update_fields=["status", "updated_at"])
        audit_record(
            actor=actor,
            action="promotion.rollout_retried",
            target=request,
            project=request.project,
            data={"rollout": rollout.pk, "from_step": failed.key if failed else None},
        )
        _enqueue(rollout.pk)
    return rollout


# --- the sweeper ---------------------------------------------------------------------------------


def rollouts_sweep(*, now: Any = None) -> list[int]:
    """Re-send rollouts whose worker stopped renewing its lease, or whose queued message seems lost."""
    now = now or timezone.now()
    expired = Q(status=RolloutStatus.RUNNING, lease_expires_at__lt=now)
    lost = Q(status=RolloutStatus.QUEUED, enqueued_at__lt=now - timedelta(seconds=PENDING_RESEND_SECONDS))
    ids = list(Rollout.objects.filter(expired | lost).values_list("pk", flat=True))
    if ids:
        Rollout.objects.filter(pk__in=ids, status=RolloutStatus.QUEUED).update(enqueued_at=now)
        for rollout_id in ids:
            _enqueue(rollout_id)
    return ids
