"""Runs on real Celery workers over Redis, against the test database, logging to a local MLflow store.

Each test starts ``celery -A reviewapp worker`` subprocesses that consume a private queue; this
process sends to the same queue (``CELERY_TASK_DEFAULT_QUEUE``), so ``run_start`` enqueues exactly
as in production (``delay_on_commit``). Workers get a short chunk lease and broker visibility
timeout, so a killed worker's chunk comes back within seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import Count
from django.utils import timezone

from evaluations.models import Run, RunChunk, RunMlflowLog, RunResult
from evaluations.services.runs import run_start
from evaluations.services.suites import suite_create
from reviewapp.tasks import jobs_sweep as jobs_sweep_task
from tests.evaluations.conftest import ingest, rag_row
from tests.workers import CeleryWorker, Cluster, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
LEASE_SECONDS = 4


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Workers with a short chunk lease and this suite's custom scorers."""
    started = Cluster(
        tmp_path,
        EVALUATION_CHUNK_LEASE_SECONDS=str(LEASE_SECONDS),
        REVIEWDESK_SCORER_MODULES="tests.evaluations.scorers_for_tests",
    )
    started.point_producer()
    try:
        yield started
    finally:
        started.stop()


def suite_version(project: Any, scorers: list[Any], **config: Any) -> Any:
    return suite_create(project=project, name="Workers", scorers=scorers, config=config, actor=None).versions.get()


def wait_finished(run: Run, timeout: float, workers: list[CeleryWorker], sweep: bool = False) -> Run:
    def finished() -> bool:
        if sweep:
            jobs_sweep_task.delay()  # what beat does every 30 s, here every poll
        run.refresh_from_db()
        return run.is_finished

    assert wait_for(finished, timeout=timeout, interval=1.0), "\n".join(w.log[-3000:] for w in workers)
    return run


def no_duplicates(run: Run) -> bool:
    return (
        not RunResult.objects.filter(run=run).values("item", "scorer").annotate(n=Count("id")).filter(n__gt=1).exists()
    )


def test_two_workers_run_a_suite_end_to_end_and_log_it_to_mlflow(project, cluster: Cluster) -> None:
    from mlflow import MlflowClient

    first, second = cluster.start_worker("w1"), cluster.start_worker("w2")
    ingest(project, [rag_row(n, metadata={"sleep": 0.05, "latency_ms": 100}) for n in range(40)])
    version = suite_version(project, ["test_slow", "pii", "lexical_groundedness", "latency"], chunk_size=5)
    run = run_start(project=project, suite_version=version, actor=None)  # enqueued once this commits

    run = wait_finished(run, 120, [first, second])
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert (run.rows_done, run.rows_errored, run.chunks_done) == (40, 0, 8)
    assert RunResult.objects.filter(run=run).count() == 40 * 4 and no_duplicates(run)
    # the chunks really ran in parallel, on both workers
    assert first.succeeded("evaluations.run_chunk") >= 1 and second.succeeded("evaluations.run_chunk") >= 1
    assert first.succeeded("evaluations.run_chunk") + second.succeeded("evaluations.run_chunk") == 8

    # the closing chunk enqueued the MLflow logging, which a worker did
    assert wait_for(lambda: Run.objects.get(pk=run.pk).mlflow_logged, timeout=90), (
        first.log[-3000:] + second.log[-3000:]
    )
    run.refresh_from_db()
    logged = MlflowClient(tracking_uri=cluster.mlflow_uri).get_run(run.mlflow_run_id)
    assert logged.data.metrics["latency/mean"] == 100.0 and logged.data.metrics["pii/pass_rate"] == 1.0
    assert logged.data.params["suite"] == "Workers"
    table_path = MlflowClient(tracking_uri=cluster.mlflow_uri).download_artifacts(
        run.mlflow_run_id, "eval_results.json", str(Path(cluster.artifacts).parent)
    )
    assert len(json.loads(Path(table_path).read_text())["data"]) == 40


def test_a_worker_killed_mid_run_its_chunk_is_finished_by_another_after_the_sweeper(project, cluster: Cluster) -> None:
    doomed = cluster.start_worker("doomed")
    # 6 items of 0.5 s per chunk: a worker writes what it has every third of its 4 s lease
    ingest(project, [rag_row(n, metadata={"sleep": 0.5}) for n in range(18)])
    version = suite_version(project, ["test_slow", "pii"], chunk_size=6)
    run = run_start(project=project, suite_version=version, actor=None)
    held: list[RunChunk] = []

    def mid_chunk() -> bool:  # the doomed worker holds a chunk and has written part of it
        for chunk in RunChunk.objects.filter(run=run, status="running"):
            if 0 < RunResult.objects.filter(run=run, item_id__in=chunk.item_ids).count() < 12:
                held.append(chunk)
                return True
        return False

    assert wait_for(mid_chunk, timeout=90, interval=0.05), doomed.log
    doomed.kill()
    killed = held[0]
    partial = RunResult.objects.filter(run=run, item_id__in=killed.item_ids).count()
    assert 0 < partial < 12  # it died with the chunk half done

    rescuer = cluster.start_worker("rescuer")
    run = wait_finished(run, 150, [doomed, rescuer], sweep=True)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert (run.rows_done, run.rows_errored, run.chunks_done) == (18, 0, 3)
    assert RunResult.objects.filter(run=run).count() == 18 * 2 and no_duplicates(run)
    killed.refresh_from_db()
    assert killed.status == "done" and killed.attempts == 2  # claimed by the doomed worker, then the rescuer
    assert "reviewapp.jobs_sweep" in rescuer.log


def test_mlflow_down_the_run_completes_and_logging_succeeds_once_mlflow_is_back(project, cluster: Cluster) -> None:
    offline = cluster.start_worker("offline", MLFLOW_TRACKING_URI="http://127.0.0.1:1")
    ingest(project, [rag_row(n) for n in range(6)])
    suite_version(project, ["pii", "latency"])
    out = StringIO()
    # the CLI starts the run on the workers and follows it with a progress bar until it ends
    call_command("run_suite", "Workers", "--project", "support", "--wait", "--timeout", "90", stdout=out)
    run = Run.objects.get()
    assert run.status == Run.Status.SUCCEEDED and f"Run {run.pk} succeeded" in out.getvalue()
    assert wait_for(lambda: "127.0.0.1:1" in Run.objects.get(pk=run.pk).mlflow_error, timeout=60), offline.log[-3000:]
    assert not Run.objects.get(pk=run.pk).mlflow_logged
    offline.stop()

    online = cluster.start_worker("online")  # MLflow is reachable again
    # The logging job is back in the queue, and the kernel's sweeper re-sends it once it waited
    # RETRY_SECONDS. Celery's own retry, which the offline worker held and handed back when it
    # stopped, may reach the online worker first and log the run already: either way it gets logged.
    logging = RunMlflowLog.objects.filter(pk=run.pk)
    statuses = (RunMlflowLog.Status.QUEUED, RunMlflowLog.Status.DONE)
    assert wait_for(lambda: logging.get().status in statuses, timeout=120), offline.log[-3000:]
    logging.filter(status=RunMlflowLog.Status.QUEUED).update(enqueued_at=timezone.now() - timedelta(hours=1))
    jobs_sweep_task.delay()  # the beat task
    assert wait_for(lambda: Run.objects.get(pk=run.pk).mlflow_logged, timeout=90), online.log[-3000:]
    run.refresh_from_db()
    assert run.mlflow_error == "" and run.mlflow_run_id
