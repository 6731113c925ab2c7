"""Pipelines' kinds of job in the one jobs kernel (reviewapp.jobs); imported by PipelinesConfig.ready."""

from __future__ import annotations

from django.conf import settings

from pipelines.datasets import export_jobs
from pipelines.models import (
    AssessmentSync,
    ExportJob,
    MlflowDatasetExport,
    MonitoringRefresh,
    Push,
    Rollout,
    SourcePull,
)
from pipelines.releases.rollout import queueing as rollout_queueing
from reviewapp.jobs import JobKind, job_kind_register

PUSH = job_kind_register(
    JobKind(
        name="pipelines.push",
        model=Push,
        task="pipelines.push_execute",
        lease_seconds=lambda: settings.DELIVERY_PUSH_LEASE_SECONDS,
        max_attempts=lambda: settings.DELIVERY_PUSH_MAX_ATTEMPTS,
        resend_after_seconds=lambda: settings.DELIVERY_PUSH_LEASE_SECONDS,
    )
)

EXPORT_JOB = job_kind_register(
    JobKind(
        name="pipelines.export_job",
        model=ExportJob,
        task="pipelines.export_job_run",
        # renewed at every progress write; a dead worker's job is swept after it
        lease_seconds=lambda: settings.EXPORT_JOB_LEASE_SECONDS,
        max_attempts=export_jobs.MAX_ATTEMPTS,
        after_sweep=export_jobs.export_jobs_expire,  # files past EXPORT_RETENTION_HOURS go
    )
)

ROLLOUT = job_kind_register(
    JobKind(
        name="pipelines.rollout",
        model=Rollout,
        task="pipelines.rollout_advance",
        lease_seconds=lambda: settings.ROLLOUT_LEASE_SECONDS,
        # None: never given up by the sweeper; a rollout fails through its own path, which puts
        # traffic back on the version that served before. A rollout left queued would block every
        # later rollout to its environment, so a lost message is sent again soon.
        max_attempts=None,
        resend_after_seconds=rollout_queueing.PENDING_RESEND_SECONDS,
    )
)

ASSESSMENT_SYNC = job_kind_register(
    JobKind(
        name="pipelines.assessment_sync",
        model=AssessmentSync,
        task="pipelines.assessment_sync_execute",
        lease_seconds=lambda: settings.MLFLOW_ASSESSMENT_SYNC_LEASE_SECONDS,  # above the task's 270 s
        max_attempts=lambda: settings.MLFLOW_ASSESSMENT_SYNC_MAX_ATTEMPTS,
        # A sync runs its rows one after the other: a row waits its turn longer than a lease.
        resend_after_seconds=lambda: max(900, settings.MLFLOW_ASSESSMENT_SYNC_SECONDS * 2),
    )
)

MLFLOW_DATASET_EXPORT = job_kind_register(
    JobKind(
        name="pipelines.mlflow_dataset_export",
        model=MlflowDatasetExport,
        task="pipelines.mlflow_dataset_export_run",
        lease_seconds=lambda: settings.MLFLOW_DATASET_EXPORT_LEASE_SECONDS,  # longer than the task may run (570 s)
        max_attempts=5,
    )
)

SOURCE_PULL = job_kind_register(
    JobKind(
        name="pipelines.source_pull",
        model=SourcePull,
        task="pipelines.source_pull_execute",
        lease_seconds=lambda: settings.SOURCES_PULL_LEASE_SECONDS,  # renewed with each committed batch
        max_attempts=lambda: settings.SOURCES_PULL_MAX_ATTEMPTS,
        resend_after_seconds=lambda: settings.SOURCES_PULL_LEASE_SECONDS,
    )
)

MONITORING_REFRESH = job_kind_register(
    JobKind(
        name="pipelines.monitoring_refresh",
        model=MonitoringRefresh,
        task="pipelines.monitoring_refresh",
        lease_seconds=lambda: settings.MONITORING_REFRESH_LEASE_SECONDS,  # longer than the task may run (870 s)
        max_attempts=3,  # then failed until the next beat queues it again
        resend_after_seconds=lambda: max(120, settings.MONITORING_REFRESH_SECONDS * 2),
    )
)
