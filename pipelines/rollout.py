"""The rollout engine: carry out a promotion (or a rollback) on one environment, step by step.

A :class:`Rollout` row is written first, with its steps, in the transaction that approved the
request; the ``pipelines.rollout_advance`` task is sent once that commits. The task:

1. claims the row with a conditional UPDATE (``queued``, or ``running`` with an expired lease) and a
   fresh lease owner; a second copy of the message finds nothing to claim and stops;
2. runs the steps that are not done yet, in order, renewing the lease between and during them
   (a lost lease stops the worker: someone else owns the rollout now);
3. each step re-checks the real state before it acts (the alias already points at the version,
   the endpoint already serves the split), so re-running it after a crash is harmless;
4. transient errors (5xx, timeouts) are retried in the step ``ROLLOUT_STEP_MAX_ATTEMPTS`` times;
   after that, or on a permanent error, the rollout fails: traffic and the alias go back to the
   version that served before (``from_version``), the step keeps its error, the request is FAILED.

Steps of a rollout: ``alias``; for each canary stage ``traffic_<p>`` then ``health_<p>``; ``finish``.
A rollback has the same shape with one stage at 100%. ``rollout_retry`` resumes a failed rollout
from its failed step (the alias step runs again, since the failure put the alias back).
``rollouts_sweep`` (beat) re-sends rollouts whose worker died or whose message was lost.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from pipelines import databricks, mlflow_registry, serving
from pipelines.errors import PermanentPipelineError, PipelineError, TransientPipelineError
from pipelines.models import Environment, ModelVersion, PromotionRequest, Rollout, RolloutStep
from reviewapp.errors import Conflict
from reviewapp.models import Item
from reviewapp.services.audit import audit_record

logger = logging.getLogger(__name__)

RolloutStatus = Rollout.Status
StepStatus = RolloutStep.Status
PENDING_RESEND_SECONDS = 60  # a queued rollout no worker picked up this long after it was sent is sent again


class LeaseLost(Exception):
    """Another worker owns the rollout now (our lease expired); stop without writing anything."""


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
        specs.append((f"health_{stage}", f"Health check at {stage}%: {env.health_check_queries} real queries"))
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
        rollout.steps.filter(reset).update(status=StepStatus.PENDING, error="", finished_at=None)
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


# --- running ---------------------------------------------------------------------------------------


class _Run:
    """One worker's claim on a rollout: renews the lease, and notices when it was lost."""

    def __init__(self, rollout: Rollout, owner: str) -> None:
        self.rollout = rollout
        self.owner = owner
        self.last_renew = time.monotonic()

    def renew(self, *, force: bool = False) -> None:
        lease = settings.ROLLOUT_LEASE_SECONDS
        if not force and time.monotonic() - self.last_renew < min(5.0, lease / 3):
            return
        renewed = Rollout.objects.filter(
            pk=self.rollout.pk, lease_owner=self.owner, status=RolloutStatus.RUNNING
        ).update(lease_expires_at=timezone.now() + timedelta(seconds=lease))
        if not renewed:
            raise LeaseLost(f"rollout {self.rollout.pk}: lease lost")
        self.last_renew = time.monotonic()


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


def _deadline(environment: Environment) -> float:
    return time.monotonic() + environment.ready_timeout_seconds


# --- the steps -------------------------------------------------------------------------------------


def _uc_alias_via_sdk(environment: Environment, model_version: ModelVersion) -> bool:
    """Whether the alias is a Unity Catalog alias set with databricks-sdk rather than the MLflow client.

    With ``MLFLOW_REGISTRY_URI=databricks-uc`` the MLflow client sets it, in the registry the sync reads;
    otherwise a Databricks environment serving a three-level name sets the UC alias through the SDK.
    """
    return (
        environment.serving_kind == Environment.ServingKind.DATABRICKS
        and model_version.registered_model.count(".") == 2
        and not mlflow_registry.registry_is_unity_catalog()
    )


def _alias_get(environment: Environment, model_version: ModelVersion) -> str | None:
    if _uc_alias_via_sdk(environment, model_version):
        return databricks.uc_model_alias_get(full_name=model_version.registered_model, alias=environment.alias)
    return mlflow_registry.registered_model_alias_get(
        model_name=model_version.registered_model, alias=environment.alias
    )


def _alias_set(environment: Environment, model_version: ModelVersion) -> dict[str, Any]:
    """Point the environment's alias at the version (UC alias for three-level names on Databricks)."""
    before = _alias_get(environment, model_version)
    if before == str(model_version.version):
        return {"alias": environment.alias, "version": before, "action": "already set"}
    if _uc_alias_via_sdk(environment, model_version):
        databricks.uc_model_alias_set(
            full_name=model_version.registered_model, alias=environment.alias, version=model_version.version
        )
        where = "unity catalog"
    else:
        mlflow_registry.registered_model_alias_set(
            model_name=model_version.registered_model, alias=environment.alias, version=model_version.version
        )
        where = "unity catalog (mlflow)" if mlflow_registry.registry_is_unity_catalog() else "mlflow registry"
    return {"alias": environment.alias, "version": str(model_version.version), "before": before, "registry": where}


def _alias_clear(environment: Environment, model_version: ModelVersion) -> None:
    if _uc_alias_via_sdk(environment, model_version):
        databricks.uc_model_alias_delete(full_name=model_version.registered_model, alias=environment.alias)
    else:
        mlflow_registry.registered_model_alias_delete(
            model_name=model_version.registered_model, alias=environment.alias
        )


def _step_alias(run: _Run, step: RolloutStep) -> dict[str, Any]:
    return _alias_set(run.rollout.environment, run.rollout.to_version)


def _split_for(rollout: Rollout, stage: int) -> list[serving.Split]:
    if stage >= 100 or rollout.from_version is None or rollout.from_version_id == rollout.to_version_id:
        return [serving.Split(rollout.to_version, 100)]
    return [serving.Split(rollout.from_version, 100 - stage), serving.Split(rollout.to_version, stage)]


def _step_traffic(run: _Run, step: RolloutStep) -> dict[str, Any]:
    rollout = run.rollout
    stage = int(step.key.split("_", 1)[1])
    return serving.serving_apply(
        environment=rollout.environment,
        split=_split_for(rollout, stage),
        deadline=_deadline(rollout.environment),
        heartbeat=run.renew,
    )


def health_check_records(*, project_id: int, limit: int) -> list[dict[str, Any]]:
    """Real requests for a health check: the project's latest items (``{"request": ...}``)."""
    records: list[dict[str, Any]] = []
    for request in Item.objects.filter(project_id=project_id).order_by("-id").values_list("request", flat=True)[:50]:
        if request and request not in [r["request"] for r in records]:
            records.append({"request": request})
        if len(records) >= limit:
            break
    return records or [{"request": "Hello, are you there?"}][:limit]


def _empty(prediction: Any) -> bool:
    if prediction is None:
        return True
    if isinstance(prediction, str):
        return not prediction.strip()
    if isinstance(prediction, dict):
        if "response" in prediction:
            return _empty(prediction["response"])
        return all(_empty(v) for v in prediction.values()) if prediction else True
    if isinstance(prediction, list):
        return not prediction
    return False


def _step_health(run: _Run, step: RolloutStep) -> dict[str, Any]:
    rollout = run.rollout
    environment = rollout.environment
    records = health_check_records(
        project_id=rollout.request.project_id, limit=max(1, environment.health_check_queries)
    )
    answers = []
    served: dict[str, int] = {}
    started = time.monotonic()
    for record in records:
        run.renew()
        out = serving.serving_query(environment=environment, records=[record])
        if not out or _empty(out[0]["prediction"]):
            raise PermanentPipelineError(
                f"health check: the endpoint gave an empty answer to {str(record['request'])[:80]!r}", system="serving"
            )
        served[out[0]["served_by"] or "?"] = served.get(out[0]["served_by"] or "?", 0) + 1
        prediction = out[0]["prediction"]
        text = prediction.get("response", prediction) if isinstance(prediction, dict) else prediction
        answers.append(
            {"request": str(record["request"])[:120], "answer": str(text)[:200], "served_by": out[0]["served_by"]}
        )
    return {
        "queries": len(records),
        "served_by": served,
        "seconds": round(time.monotonic() - started, 3),
        "answers": answers,
    }


def _step_finish(run: _Run, step: RolloutStep) -> dict[str, Any]:
    rollout = run.rollout
    with transaction.atomic():
        run.renew(force=True)
        environment = Environment.objects.select_for_update().get(pk=rollout.environment_id)
        environment.current_version = rollout.to_version
        environment.previous_version = rollout.from_version
        environment.save(update_fields=["current_version", "previous_version"])
        request = PromotionRequest.objects.select_for_update().get(pk=rollout.request_id)
        rolled_back = rollout.kind == Rollout.Kind.ROLLBACK
        request.status = PromotionRequest.Status.ROLLED_BACK if rolled_back else PromotionRequest.Status.LIVE
        request.save(update_fields=["status", "updated_at"])
        _live_request_follow(environment=environment, request=request, rollout=rollout)
        now = timezone.now()
        Rollout.objects.filter(pk=rollout.pk).update(
            status=RolloutStatus.SUCCEEDED, finished_at=now, lease_owner="", lease_expires_at=None, error=""
        )
        # The step is done in the same transaction, or a crash here would leave it "running" forever.
        RolloutStep.objects.filter(pk=step.pk).update(status=StepStatus.DONE, finished_at=now)
        audit_record(
            actor=None,
            action="promotion.rolled_back" if rolled_back else "promotion.rollout_succeeded",
            target=request,
            project=request.project,
            data={
                "rollout": rollout.pk,
                "environment": environment.name,
                "version": rollout.to_version.version,
                "previous_version": rollout.from_version.version if rollout.from_version else None,
            },
        )
        from pipelines.webhooks import webhook_emit

        webhook_emit(event="rolled_back" if rolled_back else "rollout_succeeded", request=request, rollout=rollout)
    if environment.serving_kind == Environment.ServingKind.LOCAL:
        keep = {rollout.to_version.uri} | ({rollout.from_version.uri} if rollout.from_version else set())
        serving.local_servers_prune(keep_uris=keep)
    return {"current_version": rollout.to_version.version, "previous_version": environment.previous_version_id}


def _live_request_follow(*, environment: Environment, request: PromotionRequest, rollout: Rollout) -> None:
    """Exactly one request per environment shows as live: the one whose version now serves.

    A rollout replaces the request that was live before it; a rollback brings back the latest
    replaced request of the version it returns to.
    """
    Status = PromotionRequest.Status
    others = PromotionRequest.objects.filter(environment=environment).exclude(pk=request.pk)
    others.filter(status=Status.LIVE).update(status=Status.REPLACED, updated_at=timezone.now())
    if rollout.kind == Rollout.Kind.ROLLBACK:
        previous = others.filter(status=Status.REPLACED, model_version=rollout.to_version).order_by("-id").first()
        if previous is not None:
            PromotionRequest.objects.filter(pk=previous.pk).update(status=Status.LIVE, updated_at=timezone.now())


_STEPS = {"alias": _step_alias, "traffic": _step_traffic, "health": _step_health, "finish": _step_finish}


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
        from pipelines.webhooks import webhook_emit

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
