"""Running a rollout: claim it, run its remaining steps with retries, and on failure restore what served before."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from pipelines.adapters.errors import PipelineError, TransientPipelineError
from pipelines.models import PromotionRequest, Rollout, RolloutStep
from pipelines.releases import serving
from pipelines.releases.rollout.lease import LeaseLost, RolloutStatus, StepStatus, _deadline, _Run
from pipelines.releases.rollout.steps import _STEPS, _alias_clear, _alias_set
from reviewapp.services.audit import audit_record

logger = logging.getLogger(__name__)

# --- running ---------------------------------------------------------------------------------------


def rollout_advance(*, rollout_id: int) -> str:
    """Claim the rollout and run its remaining steps; returns its status afterwards ("" when not claimed)."""
    now = timezone.now()
    owner = uuid.uuid4().hex
    claimable = Q(status=RolloutStatus.QUEUED) | Q(status=RolloutStatus.RUNNING, lease_expires_at__lt=now)
    claimed = (
        Rollout.objects.filter(pk=rollout_id)
        .filter(claimable)
        .update(
            status=RolloutStatus.RUNNING,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=settings.ROLLOUT_LEASE_SECONDS),
        )
    )
    if not claimed:
        return ""
    rollout = Rollout.objects.select_related(
        "environment", "to_version", "from_version", "request__project", "request__model_version"
    ).get(pk=rollout_id)
    if rollout.started_at is None:
        rollout.started_at = now
        rollout.save(update_fields=["started_at"])
    if rollout.kind == Rollout.Kind.ROLLOUT:
        PromotionRequest.objects.filter(pk=rollout.request_id).update(
            status=PromotionRequest.Status.ROLLING_OUT, updated_at=now
        )
    run = _Run(rollout, owner)
    try:
        for step in rollout.steps.order_by("position"):
            if step.status == StepStatus.DONE:
                continue
            run.renew(force=True)
            error = _step_run(run, step)
            if error is not None:
                _rollout_fail(run, step, error)
                return RolloutStatus.FAILED
    except LeaseLost:
        logger.warning("rollout %s: lease lost, stopping", rollout_id)
        return ""
    return RolloutStatus.SUCCEEDED


def _step_run(run: _Run, step: RolloutStep) -> str | None:
    """Run one step until done; None on success, else the error to show."""
    max_attempts = settings.ROLLOUT_STEP_MAX_ATTEMPTS
    tries = 0
    while True:
        tries += 1
        step.status = StepStatus.RUNNING
        step.attempts += 1
        step.started_at = step.started_at or timezone.now()
        step.error = ""
        step.save(update_fields=["status", "attempts", "started_at", "error"])
        try:
            detail = _STEPS[step.key.split("_", 1)[0]](run, step)
        except LeaseLost:
            raise
        except TransientPipelineError as exc:
            if tries < max_attempts:
                step.error = f"attempt {step.attempts}: {exc.message} (retrying)"
                step.save(update_fields=["error"])
                _sleep(run, min(2.0 ** (tries - 1), 10.0))
                continue
            return f"{exc.message} (gave up after {tries} attempts)"
        except PipelineError as exc:
            return exc.message
        except Exception as exc:  # a bug must still fail the rollout cleanly and restore traffic
            logger.exception("rollout %s step %s crashed", run.rollout.pk, step.key)
            return f"{type(exc).__name__}: {exc}"
        step.status = StepStatus.DONE
        step.detail = detail
        step.error = ""
        step.finished_at = timezone.now()
        step.save(update_fields=["status", "detail", "error", "finished_at"])
        return None


def _sleep(run: _Run, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        run.renew()
        time.sleep(min(0.5, max(0.0, end - time.monotonic())))


# --- failing -------------------------------------------------------------------------------------


def _rollout_fail(run: _Run, step: RolloutStep, error: str) -> None:
    """Stop: put traffic and the alias back on the version that served before, and record what failed."""
    rollout = run.rollout
    environment = rollout.environment
    step.status = StepStatus.FAILED
    step.error = error
    step.finished_at = timezone.now()
    step.save(update_fields=["status", "error", "finished_at"])
    restored = _restore(run)
    message = f"Step “{step.title}” failed: {error}. {restored}"
    with transaction.atomic():
        Rollout.objects.filter(pk=rollout.pk, lease_owner=run.owner).update(
            status=RolloutStatus.FAILED,
            error=message,
            finished_at=timezone.now(),
            lease_owner="",
            lease_expires_at=None,
        )
        request = PromotionRequest.objects.select_for_update().get(pk=rollout.request_id)
        if rollout.kind == Rollout.Kind.ROLLOUT:
            request.status = PromotionRequest.Status.FAILED
            request.save(update_fields=["status", "updated_at"])
        audit_record(
            actor=None,
            action="promotion.rollout_failed",
            target=request,
            project=request.project,
            data={"rollout": rollout.pk, "kind": rollout.kind, "step": step.key, "error": message[:2000]},
        )
        from pipelines.releases.webhooks import webhook_emit

        webhook_emit(event="rollout_failed", request=request, rollout=rollout, error=message)
    logger.warning("rollout %s failed at %s on %s: %s", rollout.pk, step.key, environment, error)


def _restore(run: _Run) -> str:
    """Traffic back to 100% on ``from_version`` (and its alias); a sentence saying what happened."""
    rollout = run.rollout
    environment = rollout.environment
    back = rollout.from_version
    parts = []
    try:
        if back is None:
            _alias_clear(environment, rollout.to_version)
            return "Nothing served before on this environment, so there was no traffic to restore; alias removed."
        # Wait out an update still in progress (the one that failed): Databricks refuses a new config meanwhile.
        serving.serving_apply(
            environment=environment,
            split=[serving.Split(back, 100)],
            deadline=_deadline(environment),
            heartbeat=run.renew,
        )
        parts.append(f"Traffic is back on v{back.version} (100%).")
        _alias_set(environment, back)
        parts.append(f"Alias '{environment.alias}' points at v{back.version} again.")
    except LeaseLost:
        raise
    except PipelineError as exc:
        parts.append(f"Restoring v{back.version} failed too: {exc.message}. Check the endpoint.")
    return " ".join(parts)
