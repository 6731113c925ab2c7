"""Logging runs to MLflow: a real local SQLite store, read back with MlflowClient; a dead server."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from evaluations.models import Run, RunChunk, RunMlflowLog
from evaluations.services.chunks import run_chunk_execute
from evaluations.services.runs import run_start
from evaluations.services.suites import suite_create
from evaluations.services.tracking import RETRY_SECONDS, run_mlflow_log
from pipelines.adapters.errors import TransientPipelineError
from reviewapp.jobs import job_kind_get, job_kind_sweep
from tests.evaluations.conftest import curate, ingest, rag_row


@pytest.fixture
def mlflow_store(settings, tmp_path: Path) -> str:
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings.MLFLOW_ARTIFACT_ROOT = str(tmp_path / "artifacts")
    return settings.MLFLOW_TRACKING_URI


def finished_run(project: Any, reviewer: Any) -> Run:
    items = ingest(project, [rag_row(n, metadata={"verdict": n != 1, "latency_ms": 100 * (n + 1)}) for n in range(3)])
    curate(items[0], reviewer, {"correct": True})
    curate(items[1], reviewer, {"correct": True})
    suite = suite_create(project=project, name="Core", scorers=["test_judge", "pii", "latency"], actor=None)
    run = run_start(project=project, suite_version=suite.versions.get(), dataset={"model_version": "1"}, actor=None)
    for chunk_id in RunChunk.objects.filter(run=run).values_list("pk", flat=True):
        run_chunk_execute(chunk_id=chunk_id)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED and not run.mlflow_logged
    return run


def read_table(client: Any, run_id: str, tmp_path: Path) -> dict[str, list[Any]]:
    path = client.download_artifacts(run_id, "eval_results.json", str(tmp_path))
    data = json.loads(Path(path).read_text())
    return {column: [row[i] for row in data["data"]] for i, column in enumerate(data["columns"])}


@pytest.mark.slow
def test_a_finished_run_is_logged_once_with_params_metrics_and_the_row_table(
    project, rag_questions, reviewer, mlflow_store: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    run = finished_run(project, reviewer)
    assert run_mlflow_log(run_id=run.pk) is True
    run.refresh_from_db()
    assert run.mlflow_logged and run.mlflow_run_id and run.mlflow_error == "" and run.mlflow_log.attempts == 1

    client = MlflowClient(tracking_uri=mlflow_store)
    logged = client.get_run(run.mlflow_run_id)
    assert logged.info.status == "FINISHED" and logged.info.experiment_id == run.mlflow_experiment_id
    assert client.get_experiment(run.mlflow_experiment_id).name == "reviewdesk-support"
    params = logged.data.params
    assert params["suite"] == "Core" and params["suite_version"] == "1" and params["model_version"] == "1"
    assert json.loads(params["dataset"]) == {"model_version": "1"} and params["target_kind"] == "stored"
    metrics = logged.data.metrics
    assert metrics["test_judge/pass_rate"] == pytest.approx(2 / 3)
    assert metrics["test_judge/error_rate"] == 0.0 and metrics["pii/pass_rate"] == 1.0
    assert metrics["latency/mean"] == pytest.approx(200.0)
    assert metrics["test_judge/human_accuracy"] == 0.5 and metrics["test_judge/human_n"] == 2
    assert metrics["rows"] == 3 and metrics["error_rate"] == 0.0
    assert logged.data.tags["reviewdesk.run_id"] == str(run.pk)

    table = read_table(client, run.mlflow_run_id, tmp_path)
    assert len(table["item_id"]) == 3
    assert table["test_judge/passed"] == [True, False, True]
    assert table["latency/value"] == [100.0, 200.0, 300.0]
    assert table["request"][0].startswith("How do I reset my password?")
    assert set(table) >= {"external_id", "response", "pii/rationale", "pii/error"}

    # Logging again (a retry, a second beat) reuses the MLflow run.
    assert run_mlflow_log(run_id=run.pk) is True
    assert len(client.search_runs([run.mlflow_experiment_id])) == 1


@pytest.mark.slow
def test_a_half_logged_attempt_is_replaced_not_duplicated(
    project, rag_questions, reviewer, mlflow_store: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    run = finished_run(project, reviewer)
    client = MlflowClient(tracking_uri=mlflow_store)
    experiment = client.create_experiment("reviewdesk-support", artifact_location=(tmp_path / "earlier").as_uri())
    dead = client.create_run(experiment, tags={"reviewdesk.key": f"run-{run.pk}"})  # a worker died mid-logging
    client.log_table(dead.info.run_id, data={"item_id": [1]}, artifact_file="eval_results.json")
    assert run_mlflow_log(run_id=run.pk) is True
    run.refresh_from_db()
    assert run.mlflow_run_id != dead.info.run_id
    assert [r.info.run_id for r in client.search_runs([experiment])] == [run.mlflow_run_id]


@pytest.mark.slow
def test_mlflow_down_leaves_the_run_complete_and_logging_is_retried_until_it_works(
    project, rag_questions, reviewer, settings, tmp_path: Path
) -> None:
    run = finished_run(project, reviewer)
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:1"  # nothing listens there
    with pytest.raises(TransientPipelineError):
        run_mlflow_log(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED and not run.mlflow_logged
    assert "127.0.0.1" in run.mlflow_error and run.mlflow_log.status == "queued" and run.mlflow_log.lease_owner == ""
    # back in the queue: the jobs kernel's sweeper sends it again every few minutes
    later = timezone.now() + timedelta(seconds=RETRY_SECONDS + 1)
    assert job_kind_sweep(job_kind_get(RunMlflowLog), now=later).requeued_ids == (run.pk,)
    with pytest.raises(TransientPipelineError):
        run_mlflow_log(run_id=run.pk)  # what the task does, while the server is still down

    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'mlflow.db'}"  # the server is back
    settings.MLFLOW_ARTIFACT_ROOT = str(tmp_path / "artifacts")
    assert run_mlflow_log(run_id=run.pk) is True
    run.refresh_from_db()
    assert run.mlflow_logged and run.mlflow_error == "" and run.mlflow_log.attempts == 3


def test_unfinished_and_cancelled_runs_are_not_logged(project, mlflow_store: str) -> None:
    ingest(project, [rag_row(0)])
    suite = suite_create(project=project, name="Core", scorers=["pii"], actor=None)
    run = run_start(project=project, suite_version=suite.versions.get(), actor=None)
    assert run_mlflow_log(run_id=run.pk) is False
    assert not RunMlflowLog.objects.exists()  # nothing to log, nothing queued
