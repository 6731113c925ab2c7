"""Celery tasks: curated labels written back to MLflow traces and evaluation datasets.

Thin: ids in, one service call, nothing returned. Each is safe to run twice: label versions are
claimed on their ledger rows and synced versions are skipped; a dataset version reuses the MLflow
dataset it was materialised as.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from pipelines.adapters.errors import TransientPipelineError


@shared_task(
    name="pipelines.assessments_sync",
    ignore_result=True,
    acks_late=True,
    autoretry_for=(TransientPipelineError,),  # MLflow down: the row went back to pending
    retry_backoff=10,
    retry_backoff_max=300,
    max_retries=3,  # then the next scheduled sync picks it up
    soft_time_limit=240,
    time_limit=270,  # below the ledger lease (5 minutes)
)
def assessments_sync(project_id: int | None = None) -> None:
    """Labels changed since their last sync, every project's or one project's (on demand)."""
    from pipelines.datasets.assessments import assessments_sync as assessments_sync_service
    from reviewapp.models import Project

    project = Project.objects.filter(pk=project_id).first() if project_id is not None else None
    if project_id is not None and project is None:
        return
    assessments_sync_service(project=project, limit=settings.MLFLOW_ASSESSMENT_SYNC_BATCH)


@shared_task(
    name="pipelines.dataset_version_to_mlflow",
    ignore_result=True,
    acks_late=True,
    autoretry_for=(TransientPipelineError,),
    retry_backoff=10,
    retry_backoff_max=300,
    max_retries=5,
    soft_time_limit=540,
    time_limit=570,
)
def dataset_version_to_mlflow(version_id: int, name: str | None = None) -> None:
    from pipelines.datasets.assessments import dataset_version_to_mlflow as dataset_version_to_mlflow_service
    from pipelines.models import DatasetVersion

    version = DatasetVersion.objects.filter(pk=version_id).first()
    if version is not None:
        dataset_version_to_mlflow_service(version=version, name=name)
