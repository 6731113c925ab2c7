"""A pull on a real Celery worker, killed with SIGKILL after some batches committed; the sweeper re-queues
it, another worker goes on from the last committed batch, and no trace is ingested or counted twice."""

from __future__ import annotations

import pytest

from pipelines.models import SourcedItem, SourcePull
from pipelines.sources.pulls import source_pull_request
from pipelines.sources.services import source_create
from reviewapp.models import Item
from reviewapp.tasks import jobs_sweep as jobs_sweep_task
from tests.workers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
TRACES = 120


def test_a_pull_killed_mid_way_is_finished_by_another_worker_without_duplicates(
    project, cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    mlflow.set_tracking_uri(cluster.mlflow_uri)
    experiment_id = mlflow.create_experiment("killed-pull", artifact_location=f"file://{cluster.artifacts}")
    mlflow.set_experiment(experiment_id=experiment_id)
    for n in range(TRACES):
        with mlflow.start_span(name="rag") as root:
            root.set_inputs({"question": f"q{n}"})
            root.set_outputs({"response": f"a{n}"})
    env = {"SOURCES_BATCH_SIZE": "1", "SOURCES_PULL_LEASE_SECONDS": "3"}
    doomed = cluster.start_worker("doomed", **env)
    source = source_create(
        project=project,
        values={"name": "prod", "kind": "mlflow_traces", "settings": {"experiment": "killed-pull"}},
        actor=None,
    )
    pull = source_pull_request(source=source, actor=None)  # sent to the doomed worker once this commits

    assert wait_for(lambda: SourcePull.objects.get(pk=pull.pk).batches >= 3, timeout=60, interval=0.05), doomed.log
    doomed.kill()
    stopped = SourcePull.objects.get(pk=pull.pk)
    assert stopped.status == "running" and stopped.batches < TRACES, doomed.log[-3000:]

    rescuer = cluster.start_worker("rescuer", **env)

    def finished() -> bool:
        jobs_sweep_task.delay()  # what beat does every 30 s, here every poll
        return not SourcePull.objects.get(pk=pull.pk).is_active

    assert wait_for(finished, timeout=180, interval=1.0), rescuer.log[-3000:]
    pull.refresh_from_db()
    assert pull.status == "succeeded", (pull.error, rescuer.log[-3000:])
    assert pull.attempts == 2
    assert (pull.scanned, pull.created, pull.unchanged, pull.updated) == (TRACES, TRACES, 0, 0)
    assert Item.objects.filter(project=project).count() == TRACES
    assert SourcedItem.objects.filter(source=source, pull=pull).count() == TRACES
    assert "pipelines.source_pull_execute" in rescuer.log
