"""Online evaluation on real Celery workers: the beat-less "pull now" runs on a worker, its batch commits with
an evaluation run whose chunks are sent by name on commit, and a worker scores them (code scorers on every
item, the LLM judge within the hourly budget, the rest recorded skipped)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.pipelines.online_scorers  # noqa: F401 - registers the scorers the suite names
from evaluations.models import Run, RunResult
from evaluations.services.suites import suite_create
from pipelines.models import SourcePull, SourceRun
from pipelines.sources.online import OVER_BUDGET
from pipelines.sources.pulls import source_pull_request
from pipelines.sources.services import source_create
from tests.workers import Cluster, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
TRACES = 5


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Workers that know the online test scorers."""
    started = Cluster(tmp_path, REVIEWDESK_SCORER_MODULES="tests.pipelines.online_scorers")
    started.point_producer()
    try:
        yield started
    finally:
        started.stop()


def test_a_pull_on_a_worker_has_its_new_items_scored_on_a_worker(project, cluster, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import mlflow

    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    mlflow.set_tracking_uri(cluster.mlflow_uri)
    experiment_id = mlflow.create_experiment("online", artifact_location=f"file://{cluster.artifacts}")
    mlflow.set_experiment(experiment_id=experiment_id)
    for n in range(TRACES):
        with mlflow.start_span(name="rag") as root:
            root.set_inputs({"question": f"q{n}"})
            root.set_outputs({"response": f"good answer {n}"})
    scorers = ["online_length", {"scorer": "online_judge", "name": "judge"}]
    suite = suite_create(project=project, name="online", scorers=scorers, actor=None)
    source = source_create(
        project=project,
        values={
            "name": "prod",
            "kind": "mlflow_traces",
            "settings": {"experiment": "online"},
            "suite": suite.pk,
            "judge_calls_per_hour": 3,
        },
        actor=None,
    )
    worker = cluster.start_worker("online", SOURCES_BATCH_SIZE="2")
    pull = source_pull_request(source=source, actor=None)

    def scored() -> bool:
        if SourcePull.objects.get(pk=pull.pk).is_active:
            return False
        runs = Run.objects.filter(source_run__source=source)
        return runs.exists() and not runs.filter(status__in=Run.ACTIVE).exists()

    assert wait_for(scored, timeout=120, interval=0.5), worker.log[-3000:]
    pull.refresh_from_db()
    assert pull.status == "succeeded" and pull.created == TRACES, pull.error
    online = list(SourceRun.objects.filter(source=source, pull=pull).order_by("id"))
    assert [r.items for r in online] == [2, 2, 1]  # one run per batch of two
    assert [r.judge_calls for r in online] == [2, 1, 0]  # the budget of three calls an hour
    assert all(r.run.status == "succeeded" for r in online), [r.run.error for r in online]
    results = RunResult.objects.filter(run__source_run__source=source)
    assert results.filter(scorer="online_length").count() == TRACES
    assert results.filter(scorer="judge", skipped=False, passed=True).count() == 3
    assert list(results.filter(scorer="judge", skipped=True).values_list("rationale", flat=True)) == [OVER_BUDGET] * 2
    assert "evaluations.run_chunk" in worker.log
