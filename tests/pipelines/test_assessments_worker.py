"""The assessment tasks on a real Celery worker (Redis, PostgreSQL, a tmp MLflow SQLite store)."""

from __future__ import annotations

import pytest

from pipelines.models import AssessmentSync, MlflowDatasetExport
from pipelines.tasks.assessments import assessments_sync as assessments_sync_task
from pipelines.tasks.assessments import dataset_version_to_mlflow as dataset_version_to_mlflow_task
from tests.evaluations.conftest import curate, ingest, rag_row
from tests.workers import Cluster, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_worker_syncs_labels_to_traces_and_materialises_a_version(
    project, reviewer, engineer, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from pipelines.datasets.versions import dataset_create, dataset_version_create

    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    mlflow.set_tracking_uri(cluster.mlflow_uri)
    mlflow.set_experiment("app-traces")
    trace_ids = []
    for n in range(2):
        with mlflow.start_span(name="rag") as span:
            span.set_inputs({"question": f"q{n}"})
        trace_ids.append(span.trace_id)
    items = ingest(project, [rag_row(n, trace_id=trace_ids[n]) for n in range(2)])
    for item in items:
        curate(item, reviewer, {"correct": True})
    version = dataset_version_create(
        dataset=dataset_create(project=project, user=engineer, name="Gold", filter={}), user=engineer
    )

    worker = cluster.start_worker("assess")
    assessments_sync_task.delay(project.pk)
    dataset_version_to_mlflow_task.delay(version.pk)

    def done() -> bool:
        synced = AssessmentSync.objects.filter(status="synced").count() == 2
        return synced and MlflowDatasetExport.objects.filter(version=version, status="done").exists()

    assert wait_for(done, timeout=90, interval=1.0), worker.log[-4000:]
    for trace_id in trace_ids:
        found = {a.name: a for a in mlflow.get_trace(trace_id).info.assessments}
        assert found["correct"].value is True and found["correct"].source.source_id == reviewer.username
    assert MlflowDatasetExport.objects.get(version=version).records == 2
