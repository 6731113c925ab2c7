"""Registry sync: a project's registered model versions, copied from the MLflow registry into ModelVersion rows.

``registry_sync(project=...)`` reads everything first (versions, aliases, each version's run params
and prompt template) and only then writes, in one transaction: a registry that fails half-way
(TransientPipelineError) leaves the rows as they were. Versions that disappeared from the
registry are kept and marked ``DELETED`` (promotion requests and evidence point at them).
Running it twice changes nothing the second time. The outcome of the last sync of each project
is kept in the cache for the Models page (``registry_sync_status``).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from pipelines.adapters import mlflow_registry
from pipelines.adapters.errors import PermanentPipelineError, PipelineError
from pipelines.models import ModelVersion
from pipelines.wiring import mlflow_config
from reviewapp.models import Project

logger = logging.getLogger(__name__)

DELETED = "DELETED"
STATUS_CACHE_SECONDS = 7 * 24 * 3600
SYNCED_FIELDS = ("run_id", "source", "status", "description", "aliases", "tags", "params", "prompt_template")


@dataclass
class SyncResult:
    registered_model: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # marked DELETED by this sync
    missing_runs: list[str] = field(default_factory=list)  # versions whose run could not be read

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _status_key(project_id: int) -> str:
    return f"pipelines:registry-sync:{project_id}"


def registry_sync_status(*, project: Project) -> dict[str, Any] | None:
    """The last sync of the project: ``{"at", "ok", "error", "result"}``, or None if never synced here."""
    return cache.get(_status_key(project.pk))


def _record(project: Project, *, ok: bool, error: str = "", result: SyncResult | None = None) -> None:
    cache.set(
        _status_key(project.pk),
        {"at": timezone.now().isoformat(), "ok": ok, "error": error, "result": result.as_dict() if result else None},
        STATUS_CACHE_SECONDS,
    )


def _registered_at(ms: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC) if ms else None


def registry_sync(*, project: Project) -> SyncResult:
    """Upsert the project's model versions from the registry (see the module doc).

    PermanentPipelineError when the project names no registered model or the registry has no
    such model; TransientPipelineError when the registry is unreachable. Both are recorded in
    the sync status and re-raised; nothing is written.
    """
    name = project.mlflow_registered_model.strip()
    try:
        if not name:
            raise PermanentPipelineError("This project names no registered model (Project.mlflow_registered_model).")
        config = mlflow_config()
        if config.registry_is_unity_catalog and (len(name.split(".")) != 3 or not all(name.split("."))):
            raise PermanentPipelineError(
                f"The registry is Unity Catalog (MLFLOW_REGISTRY_URI=databricks-uc): {name!r} must be a "
                "three-level name, catalog.schema.model."
            )
        versions = mlflow_registry.registered_model_versions(config, model_name=name)
        pipelines = {
            v.version: mlflow_registry.run_pipeline_read(config, run_id=v.run_id, version_tags=v.tags) for v in versions
        }
    except PipelineError as exc:
        logger.warning("registry sync of project %s failed: %s", project.slug, exc.message)
        _record(project, ok=False, error=exc.message)
        raise
    result = SyncResult(registered_model=name)
    now = timezone.now()
    with transaction.atomic():
        # One sync of a project at a time: a beat sync and a "Sync now" click must not both insert.
        Project.objects.select_for_update().filter(pk=project.pk).first()
        existing = {mv.version: mv for mv in ModelVersion.objects.filter(project=project, registered_model=name)}
        for v in versions:
            pipeline = pipelines[v.version]
            values: dict[str, Any] = {
                "run_id": v.run_id,
                "source": v.source[:1000],
                "status": v.status[:40],
                "description": v.description,
                "aliases": list(v.aliases),
                "tags": dict(v.tags),
                "params": dict(pipeline.params),
                "prompt_template": pipeline.prompt_template,
            }
            if not pipeline.found and v.run_id:
                result.missing_runs.append(v.version)
            row = existing.get(v.version)
            if row is None:
                ModelVersion.objects.create(
                    project=project,
                    registered_model=name,
                    version=v.version,
                    registered_at=_registered_at(v.created_at_ms),
                    synced_at=now,
                    **values,
                )
                result.created.append(v.version)
                continue
            changed = [key for key in SYNCED_FIELDS if getattr(row, key) != values[key]]
            registered_at = _registered_at(v.created_at_ms)
            if registered_at and row.registered_at != registered_at:
                row.registered_at = registered_at
                changed.append("registered_at")
            for key in changed:
                if key in values:
                    setattr(row, key, values[key])
            row.synced_at = now
            row.save(update_fields=[*changed, "synced_at"])
            (result.updated if changed else result.unchanged).append(v.version)
        seen = {v.version for v in versions}
        for version, row in existing.items():
            if version in seen or row.status == DELETED:
                continue
            # Kept, not removed: requests, rollouts and evidence refer to it. Its aliases are gone too.
            row.status, row.aliases, row.synced_at = DELETED, [], now
            row.save(update_fields=["status", "aliases", "synced_at"])
            result.deleted.append(version)
    _record(project, ok=True, result=result)
    return result


def registry_sync_all() -> dict[str, str]:
    """Sync every project that names a registered model; one project's failure does not stop the others."""
    outcome: dict[str, str] = {}
    for project in Project.objects.exclude(mlflow_registered_model="").order_by("id"):
        try:
            result = registry_sync(project=project)
        except PipelineError as exc:
            outcome[project.slug] = f"failed: {exc.message}"
            continue
        outcome[project.slug] = (
            f"{len(result.created)} new, {len(result.updated)} updated, {len(result.deleted)} deleted"
        )
    return outcome
