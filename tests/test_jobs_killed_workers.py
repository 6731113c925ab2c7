"""Real SIGKILLs mid-job for the kinds of job whose own suites have none: the MLflow logging of an
evaluation run, a file export, an assessment sync and an MLflow dataset export.

Each time a real Celery worker takes the job and is killed while the job is reliably half-way: its
MLflow tracking server (a real ``mlflow server``) or its PostgreSQL is reached through a delaying
TCP proxy (tests/fakes/delay_proxy.py), given to that worker only. Another worker and the jobs
kernel's sweeper (reviewapp.jobs_sweep, called every poll as beat would every 30 s) then finish the
job, and the outcome happened exactly once: one MLflow run, no duplicated assessment, one MLflow
dataset, one complete export file; the job was claimed twice (the killed attempt and the rescue).
Leases are a few seconds (set through the workers' environment), so each test takes well under a minute.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db.models import Model

from evaluations.models import RunMlflowLog
from evaluations.services.chunks import run_chunk_execute
from pipelines.datasets.export_jobs import export_job_create
from pipelines.models import AssessmentSync, ExportJob, MlflowDatasetExport
from pipelines.tasks.assessments import assessments_sync as assessments_sync_task
from pipelines.tasks.assessments import dataset_version_to_mlflow as dataset_version_to_mlflow_task
from reviewapp.models import Project
from reviewapp.tasks import jobs_sweep as jobs_sweep_task
from tests.evaluations.conftest import curate, ingest, rag_row
from tests.fakes.delay_proxy import DelayProxy, delay_proxy
from tests.pipelines.test_delta_push import canonical, make_version
from tests.test_jobs_kernel import run_chunk_row
from tests.workers import CeleryWorker, Cluster, cluster_running, database_url, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.xdist_group("jobs-killed-workers"),  # one xdist worker: the tracking server is started once
]

# Seconds. A lease may expire while the rescuer works: with the doomed worker dead, the rescuer is
# the only one left to run the sweeper, and its one process is busy with the job meanwhile.
LEASE = "3"


# --- a real MLflow tracking server, and workers ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` on a SQLite store with proxied artifacts (as docker-compose runs it); its URL."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = (root / "server.log").open("w")
    process = subprocess.Popen(
        [
            str(settings.BASE_DIR / ".venv/bin/mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: uvicorn and all are stopped together
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:  # noqa: S310 - http://127.0.0.1
                return bool(reply.status == 200)
        except OSError:
            return False

    try:
        assert wait_for(healthy, timeout=120, interval=0.5), (root / "server.log").read_text()[-3000:]
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


@pytest.fixture
def slow_mlflow(mlflow_server: str) -> Iterator[DelayProxy]:
    """The tracking server behind a proxy that holds each request a second: only the doomed worker uses it."""
    address = urlsplit(mlflow_server)
    with delay_proxy(address.hostname or "127.0.0.1", address.port or 80, delay=1.0) as proxy:
        yield proxy


def proxied(proxy: DelayProxy) -> str:
    return f"http://127.0.0.1:{proxy.port}"


@pytest.fixture
def workers(tmp_path: Path, mlflow_server: str) -> Iterator[Cluster]:
    """Workers with short leases for the four kinds, on the real tracking server and a tmp var dir."""
    with cluster_running(
        tmp_path,
        EVALUATION_MLFLOW_LOG_LEASE_SECONDS=LEASE,
        MLFLOW_ASSESSMENT_SYNC_LEASE_SECONDS=LEASE,
        MLFLOW_DATASET_EXPORT_LEASE_SECONDS=LEASE,
        EXPORT_JOB_LEASE_SECONDS=LEASE,
        MLFLOW_TRACKING_URI=mlflow_server,
        REVIEWDESK_VAR_DIR=str(tmp_path / "var"),
        # Redis hands a dead worker's unacknowledged message back after this (production's default):
        # so it is the sweeper, not that redelivery, that gives the job to the rescuer here.
        CELERY_VISIBILITY_TIMEOUT="3600",
    ) as started:
        yield started


def kill_when(worker: CeleryWorker, condition: Any, what: str, timeout: float = 90) -> None:
    """SIGKILL the worker as soon as ``condition`` holds (checked every 50 ms)."""
    assert wait_for(condition, timeout=timeout, interval=0.05), f"{what}: never happened\n{worker.log[-4000:]}"
    worker.kill()


def rescued(cluster: Cluster, model: type[Model], pk: int) -> tuple[Any, CeleryWorker]:
    """Start a rescuer and sweep every second until the job is over; the row, the rescuer."""
    rescuer = cluster.start_worker("rescuer")

    def finished() -> bool:
        jobs_sweep_task.delay()  # what beat does every 30 s, here every poll
        status = model._default_manager.values_list("status", flat=True).get(pk=pk)
        return status not in (model.JOB_QUEUED, model.JOB_RUNNING)  # type: ignore[attr-defined]

    assert wait_for(finished, timeout=120, interval=1.0), rescuer.log[-4000:]
    return model._default_manager.get(pk=pk), rescuer


# --- the kinds -----------------------------------------------------------------------------------


def test_an_evaluation_runs_mlflow_logging_killed_half_way_logs_one_mlflow_run(
    project: Project, tmp_path: Path, workers: Cluster, mlflow_server: str, slow_mlflow: DelayProxy
) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    chunk = run_chunk_row(project, tmp_path)
    run_chunk_execute(chunk_id=chunk.pk)  # here: the run closes and its MLflow logging is queued
    run_id = chunk.run_id
    assert RunMlflowLog.objects.get(pk=run_id).status == RunMlflowLog.Status.QUEUED
    client = MlflowClient(tracking_uri=mlflow_server)
    key = f"tags.`reviewdesk.key` = 'run-{run_id}'"

    def runs(view: int = ViewType.ACTIVE_ONLY) -> list[Any]:
        experiment = client.get_experiment_by_name(f"{settings.MLFLOW_EXPERIMENT_PREFIX}-{project.slug}")
        if experiment is None:
            return []
        return list(client.search_runs([experiment.experiment_id], filter_string=key, run_view_type=view))

    doomed = workers.start_worker("doomed", MLFLOW_TRACKING_URI=proxied(slow_mlflow))
    # Killed once its MLflow run exists: params, metrics, the table and the end still to log.
    kill_when(doomed, lambda: runs(), "the MLflow run created")
    (half,) = runs()
    assert half.info.status == "RUNNING" and not half.data.metrics, doomed.log[-3000:]
    assert RunMlflowLog.objects.get(pk=run_id).status == RunMlflowLog.Status.RUNNING

    log, rescuer = rescued(workers, RunMlflowLog, run_id)
    assert log.status == RunMlflowLog.Status.DONE, (log.error, rescuer.log[-3000:])
    assert log.attempts == 2
    (logged,) = runs()  # one MLflow run for the Reviewdesk run
    assert logged.info.run_id == log.mlflow_run_id != half.info.run_id
    assert logged.info.status == "FINISHED" and logged.data.metrics["rows"] == 3
    assert "eval_results.json" in {a.path for a in client.list_artifacts(logged.info.run_id)}
    # the killed attempt's unfinished run was deleted, not left beside it
    assert {r.info.run_id for r in runs(ViewType.DELETED_ONLY)} == {half.info.run_id}
    assert "reviewapp.jobs_sweep" in rescuer.log and "evaluations.run_mlflow_log[" in rescuer.log


def test_an_assessment_sync_killed_half_way_writes_each_assessment_once(
    project: Project,
    reviewer: Any,
    workers: Cluster,
    mlflow_server: str,
    slow_mlflow: DelayProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_server)
    try:
        mlflow.set_experiment("app-traces")
        with mlflow.start_span(name="rag") as span:
            span.set_inputs({"question": "How do I reset my password?"})
        trace_id = span.trace_id
    finally:
        mlflow.set_tracking_uri(before)
    (item,) = ingest(project, [rag_row(0, trace_id=trace_id)])
    label = curate(item, reviewer, {"correct": True, "issue": "wrong"})  # three feedbacks, with helpfulness
    client = MlflowClient(tracking_uri=mlflow_server)

    def ours() -> list[Any]:
        assessments = client.get_trace(trace_id).info.assessments
        return [a for a in assessments if (a.metadata or {}).get("reviewdesk.label_id") == str(label.pk)]

    doomed = workers.start_worker("doomed", MLFLOW_TRACKING_URI=proxied(slow_mlflow))
    assessments_sync_task.delay(project.pk)  # the on-demand sync, as the project page sends it
    # Killed as the first assessment's request reaches MLflow: two more to write.
    kill_when(doomed, lambda: slow_mlflow.sent.count(b"/assessments") >= 1, "the first assessment sent")
    assert wait_for(lambda: len(ours()) >= 1, timeout=10), doomed.log[-3000:]
    assert len(ours()) < 3, doomed.log[-3000:]
    (sync,) = AssessmentSync.objects.filter(label=label)
    assert sync.status == AssessmentSync.Status.RUNNING

    sync, rescuer = rescued(workers, AssessmentSync, sync.pk)
    assert sync.status == AssessmentSync.Status.SYNCED, (sync.error, rescuer.log[-3000:])
    assert sync.attempts == 2
    written = ours()
    assert sorted(a.name for a in written) == ["correct", "helpfulness", "issue"]  # each once
    assert all(a.valid is not False for a in written)
    assert {a.name: a.feedback.value for a in written} == {"correct": True, "helpfulness": 3, "issue": "wrong"}
    assert set(sync.assessment_ids.values()) == {a.assessment_id for a in written}
    assert "reviewapp.jobs_sweep" in rescuer.log and "pipelines.assessment_sync_execute[" in rescuer.log


def test_an_mlflow_dataset_export_killed_half_way_makes_one_dataset(
    project: Project, workers: Cluster, mlflow_server: str, slow_mlflow: DelayProxy
) -> None:
    from mlflow import MlflowClient

    rows = 40
    version = make_version(project, [canonical(n, request=f"Question {n}?") for n in range(rows)], name="to-mlflow")
    client = MlflowClient(tracking_uri=mlflow_server)

    def datasets() -> list[Any]:
        return list(client.search_datasets(filter_string=f"tags.reviewdesk_dataset_version = '{version.pk}'"))

    doomed = workers.start_worker("doomed", MLFLOW_TRACKING_URI=proxied(slow_mlflow))
    dataset_version_to_mlflow_task.delay(version.pk)
    # Killed once the dataset exists in MLflow, before its records are merged in.
    kill_when(doomed, lambda: datasets(), "the MLflow dataset created")
    export = MlflowDatasetExport.objects.get(version=version)
    assert export.status == MlflowDatasetExport.Status.RUNNING and not export.mlflow_dataset_id

    export, rescuer = rescued(workers, MlflowDatasetExport, export.pk)
    assert export.status == MlflowDatasetExport.Status.DONE, (export.error, rescuer.log[-3000:])
    assert export.attempts == 2
    (dataset,) = datasets()  # the killed attempt's dataset was found again, not made twice
    assert export.mlflow_dataset_id == dataset.dataset_id and export.records == rows
    import mlflow

    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_server)  # a dataset's records are read through the global store
    try:
        records = client.get_dataset(dataset.dataset_id).to_df()
    finally:
        mlflow.set_tracking_uri(before)
    assert len(records) == rows and len({json.dumps(r, sort_keys=True) for r in records["inputs"]}) == rows
    assert "reviewapp.jobs_sweep" in rescuer.log and "pipelines.mlflow_dataset_export_run[" in rescuer.log


def test_an_export_killed_half_way_is_written_once_complete(project: Project, tmp_path: Path, workers: Cluster) -> None:
    rows = 10_000  # five reads of 2,000 rows, each a round trip through the slow proxy
    version = make_version(project, [canonical(n) for n in range(rows)], name="exported")
    db = urlsplit(database_url())
    with delay_proxy(db.hostname or "127.0.0.1", db.port or 5432, delay=0.5) as slow_db:
        slow_url = database_url().replace(f":{db.port}/", f":{slow_db.port}/")
        doomed = workers.start_worker("doomed", DATABASE_URL=slow_url)
        job = export_job_create(project=project, user=None, fmt="jsonl", shape="mlflow", version=version)
        # Killed after its first progress write: 2,000 rows in, 8,000 to go.
        kill_when(doomed, lambda: ExportJob.objects.get(pk=job.pk).rows_done >= 2000, "2,000 rows exported")
    half = ExportJob.objects.get(pk=job.pk)
    assert half.status == ExportJob.Status.RUNNING and half.rows_done < rows and not half.file_path
    exports = tmp_path / "var" / "exports"
    assert not list(exports.glob(f"job-{job.pk}.jsonl"))  # only the killed attempt's .part file

    job, rescuer = rescued(workers, ExportJob, job.pk)
    assert job.status == ExportJob.Status.DONE, (job.error, rescuer.log[-3000:])
    assert job.attempts == 2 and job.rows_done == job.rows_total == rows
    assert [p.name for p in exports.glob(f"job-{job.pk}.*") if not p.name.endswith(".part")] == [f"job-{job.pk}.jsonl"]
    lines = (tmp_path / "var" / job.file_path).read_text().splitlines()
    assert len(lines) == rows and job.file_size == (tmp_path / "var" / job.file_path).stat().st_size
    assert [json.loads(line)["inputs"] for line in lines[:1]]  # whole records, in order
    assert "reviewapp.jobs_sweep" in rescuer.log and "pipelines.export_job_run[" in rescuer.log
