"""Evaluations' kinds of job in the one jobs kernel (reviewapp.jobs); imported by EvaluationsConfig.ready."""

from __future__ import annotations

from django.conf import settings

from evaluations.models import RunChunk, RunMlflowLog
from evaluations.services import tracking
from evaluations.services.runs import chunk_give_up, chunks_in_active_runs, runs_close_finished
from reviewapp.jobs import JobKind, job_kind_register

RUN_CHUNK = job_kind_register(
    JobKind(
        name="evaluations.run_chunk",
        model=RunChunk,
        task="evaluations.run_chunk",
        lease_seconds=lambda: settings.EVALUATION_CHUNK_LEASE_SECONDS,
        max_attempts=lambda: settings.EVALUATION_CHUNK_MAX_ATTEMPTS,
        resend_after_seconds=lambda: settings.EVALUATION_PENDING_REQUEUE_SECONDS,
        scope=chunks_in_active_runs,  # a stopped run's chunks are left as they are
        give_up=chunk_give_up,  # its rows count as errored, and it may close the run
        after_sweep=runs_close_finished,
    )
)

RUN_MLFLOW_LOG = job_kind_register(
    JobKind(
        name="evaluations.run_mlflow_log",
        model=RunMlflowLog,
        task="evaluations.run_mlflow_log",  # called with the run id: the job's key
        # longer than one logging attempt may take (the task's time limit, 660 s)
        lease_seconds=lambda: settings.EVALUATION_MLFLOW_LOG_LEASE_SECONDS,
        max_attempts=None,  # a finished run is logged whenever MLflow takes it, however long it was down
        resend_after_seconds=tracking.RETRY_SECONDS,
    )
)
