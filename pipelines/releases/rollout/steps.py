"""The steps of a rollout: alias, traffic at each stage, health check and soak on the candidate (``health``), finish."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from pipelines.adapters import databricks, mlflow_registry
from pipelines.models import Environment, ModelVersion, PromotionRequest, Rollout, RolloutStep
from pipelines.releases import serving
from pipelines.releases.rollout.health import _step_health
from pipelines.releases.rollout.lease import RolloutStatus, StepStatus, _deadline, _Run
from pipelines.wiring import databricks_config, mlflow_config
from reviewapp.services.audit import audit_record


def _uc_alias_via_sdk(environment: Environment, model_version: ModelVersion) -> bool:
    """Whether the alias is a Unity Catalog alias set with databricks-sdk rather than the MLflow client.

    With ``MLFLOW_REGISTRY_URI=databricks-uc`` the MLflow client sets it, in the registry the sync reads;
    otherwise a Databricks environment serving a three-level name sets the UC alias through the SDK.
    """
    return (
        environment.serving_kind == Environment.ServingKind.DATABRICKS
        and model_version.registered_model.count(".") == 2
        and not mlflow_config().registry_is_unity_catalog
    )


def _alias_get(environment: Environment, model_version: ModelVersion) -> str | None:
    if _uc_alias_via_sdk(environment, model_version):
        return databricks.uc_model_alias_get(
            databricks_config(), full_name=model_version.registered_model, alias=environment.alias
        )
    return mlflow_registry.registered_model_alias_get(
        mlflow_config(), model_name=model_version.registered_model, alias=environment.alias
    )


def _alias_set(environment: Environment, model_version: ModelVersion) -> dict[str, Any]:
    """Point the environment's alias at the version (UC alias for three-level names on Databricks)."""
    before = _alias_get(environment, model_version)
    if before == str(model_version.version):
        return {"alias": environment.alias, "version": before, "action": "already set"}
    if _uc_alias_via_sdk(environment, model_version):
        databricks.uc_model_alias_set(
            databricks_config(),
            full_name=model_version.registered_model,
            alias=environment.alias,
            version=model_version.version,
        )
        where = "unity catalog"
    else:
        mlflow_registry.registered_model_alias_set(
            mlflow_config(),
            model_name=model_version.registered_model,
            alias=environment.alias,
            version=model_version.version,
        )
        where = "unity catalog (mlflow)" if mlflow_config().registry_is_unity_catalog else "mlflow registry"
    return {"alias": environment.alias, "version": str(model_version.version), "before": before, "registry": where}


def _alias_clear(environment: Environment, model_version: ModelVersion) -> None:
    if _uc_alias_via_sdk(environment, model_version):
        databricks.uc_model_alias_delete(
            databricks_config(), full_name=model_version.registered_model, alias=environment.alias
        )
    else:
        mlflow_registry.registered_model_alias_delete(
            mlflow_config(), model_name=model_version.registered_model, alias=environment.alias
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
        from pipelines.releases.webhooks import webhook_emit

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
