"""Celery tasks: curated labels written back to MLflow traces and evaluation datasets.

Thin: ids in, one service call, nothing returned. Each is safe to run twice: label versions are
claimed on their ledger rows and synced versions are skipped; a dataset version reuses the MLflow
dataset it was materialised as.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from pipelines.tasks.retry import transient_retry

# Every task here writes to MLflow. When it is down the work went back to pending: Celery retries,
# then the next scheduled sync or the jobs kernel's sweeper picks it up again.
MLFLOW_RETRY = transient_retry(backoff=10, backoff_max=300)


@shared_task(
    name="pipelines.assessments_sync",
    ignore_result=True,
    acks_late=True,
    **MLFLOW_RETRY,
    max_retries=3,  # then the next scheduled sync picks it up
    soft_time_limit=240,
    time_limit=270,  # below the ledger lease (5 minutes)
)
def assessments_sync(project_id: int | None = None) -> None:
    """Labels changed since their last sync, every project's or one project's (on demand)."""
    from pipelines.datasets.assessments import assessments_sync as assessments_sync_service
    from reviewapp.selectors.projects import project_get_by_pk

    project = project_get_by_pk(pk=project_id) if project_id is not None else None
    if project_id is not None and project is None:
        return
    assessments_sync_service(project=project, limit=settings.MLFLOW_ASSESSMENT_SYNC_BATCH)


@shared_task(
    name="pipelines.assessment_sync_execute",
    ignore_result=True,
    acks_late=True,
    **MLFLOW_RETRY,
    max_retries=3,  # then the next scheduled sync, or the jobs kernel's sweeper, picks it up
    soft_time_limit=240,
    time_limit=270,  # below the ledger lease (5 minutes)
)
def assessment_sync_execute(sync_id: int) -> None:
    """One label version's ledger row (what the jobs kernel's sweeper sends again after a dead worker)."""
    from pipelines.datasets.assessments import assessment_sync_execute as assessment_sync_execute_service

    assessment_sync_execute_service(sync_id=sync_id)


@shared_task(
    name="pipelines.dataset_version_to_mlflow",
    ignore_result=True,
    acks_late=True,
    **MLFLOW_RETRY,
    max_retries=5,
    soft_time_limit=540,
    time_limit=570,
)
def dataset_version_to_mlflow(version_id: int, name: str | None = None) -> None:
    from pipelines.datasets.assessments import dataset_version_to_mlflow as dataset_version_to_mlflow_service
    from pipelines.selectors.datasets import dataset_version_get_by_pk

    version = dataset_version_get_by_pk(pk=version_id)
    if version is not None:
        dataset_version_to_mlflow_service(version=version, name=name)


@shared_task(
    name="pipelines.mlflow_dataset_export_run",
    ignore_result=True,
    acks_late=True,
    **MLFLOW_RETRY,
    max_retries=5,  # then the jobs kernel's sweeper sends it again, up to its attempts
    soft_time_limit=540,
    time_limit=570,
)
def mlflow_dataset_export_run(export_id: int) -> None:
    """One queued materialisation (what the jobs kernel's sweeper sends again after a dead worker)."""
    from pipelines.datasets.assessments import mlflow_dataset_export_run as mlflow_dataset_export_run_service

    mlflow_dataset_export_run_service(export_id=export_id)
