"""Celery tasks: registered model versions, evidence and promotion gates (thin: ids in, one service call)."""

from __future__ import annotations

from celery import shared_task

from pipelines.adapters.errors import PermanentPipelineError
from pipelines.tasks.retry import transient_retry


@shared_task(
    name="pipelines.registry_sync",
    ignore_result=True,
    **transient_retry(backoff=30, backoff_max=600),
    max_retries=3,  # then the next scheduled sync tries again
    soft_time_limit=300,
    time_limit=330,
)
def registry_sync(project_id: int) -> None:
    """Sync one project's versions; an upsert, so running it twice is harmless."""
    from pipelines.releases.registry import registry_sync as registry_sync_service
    from reviewapp.selectors.projects import project_get_by_pk

    project = project_get_by_pk(pk=project_id)
    if project is None or not project.mlflow_registered_model:
        return
    try:
        registry_sync_service(project=project)
    except PermanentPipelineError:
        return  # recorded in the project's sync status by the service; retrying will not help


@shared_task(name="pipelines.registry_sync_all", ignore_result=True, soft_time_limit=600, time_limit=660)
def registry_sync_all() -> None:
    """Beat: every project that names a registered model (failures are recorded per project, not retried here)."""
    from pipelines.releases.registry import registry_sync_all as registry_sync_all_service

    registry_sync_all_service()
