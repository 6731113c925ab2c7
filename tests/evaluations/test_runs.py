"""Runs at the service level, in this process: start, chunk execution, idempotency, faults, sweeper, cancel."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from evaluations.models import Run, RunChunk, RunResult, RunRow, SuiteVersion
from evaluations.services.chunks import run_chunk_execute
from evaluations.services.runs import run_cancel, run_start, runs_sweep
from evaluations.services.suites import suite_create
from pipelines.adapters.errors import TransientPipelineError
from reviewapp.errors import Conflict, ValidationFailed
from reviewapp.models import AuditEvent, Item
from tests.evaluations import scorers_for_tests
from tests.evaluations.conftest import curate, ingest, rag_row
from tests.fakes.openai_chat import FakeChatServer

CODE_SCORERS = ["exact_match", "token_f1", "lexical_groundedness", "pii", "latency"]


def version_of(project: Any, scorers: list[Any], **config: Any) -> SuiteVersion:
    suite = suite_create(
        project=project,
        name=f"suite-{len(scorers)}-{json.dumps(config)}",
        scorers=scorers,
        config=config or None,
        actor=None,
    )
    return suite.versions.get()


def execute_all(run: Run) -> Run:
    for chunk_id in RunChunk.objects.filter(run=run).order_by("index").values_list("pk", flat=True):
        run_chunk_execute(chunk_id=chunk_id)
    run.refresh_from_db()
    return run


@pytest.fixture(autouse=True)
def _reset_test_scorers() -> Iterator[None]:
    scorers_for_tests.CALLS.clear()
    scorers_for_tests.JUDGE_THREADS.clear()
    yield


# --- start ------------------------------------------------------------------------------------


def test_start_snapshots_the_dataset_into_chunks_and_enqueues_after_commit(
    project, engineer, django_capture_on_commit_callbacks
) -> None:
    ingest(project, [rag_row(n, model_version="1" if n < 7 else "2") for n in range(10)])
    version = version_of(project, CODE_SCORERS, chunk_size=3)
    with django_capture_on_commit_callbacks() as callbacks:
        run = run_start(project=project, suite_version=version, dataset={"model_version": "1"}, actor=engineer)
    assert run.status == Run.Status.QUEUED and run.items_total == 7 and run.chunks_total == 3
    chunks = list(run.chunks.order_by("index"))
    v1 = list(Item.objects.filter(project=project, model_version="1").order_by("id").values_list("id", flat=True))
    assert [c.item_ids for c in chunks] == [v1[0:3], v1[3:6], v1[6:7]]
    assert len(callbacks) == 3  # one task per chunk, only once the run row is committed
    assert run.target == {"kind": "stored"} and run.dataset == {"model_version": "1"}
    assert AuditEvent.objects.filter(action="evaluation.run_start", target_id=str(run.pk)).exists()
    # items added later never join the run
    ingest(project, [rag_row(99)])
    assert sum(len(c.item_ids) for c in run.chunks.all()) == 7


@pytest.mark.parametrize(
    ("dataset", "target", "field"),
    [
        ({"model_version": "9"}, None, "dataset"),
        ({"colour": "red"}, None, "dataset.colour"),
        ({"ids": "1,2"}, None, "dataset.ids"),
        ({"metadata": {"a b": 1}}, None, "dataset.metadata.a b"),
        ({"limit": 0}, None, "dataset.limit"),
        (None, {"kind": "magic"}, "target.kind"),
        (None, {"kind": "stored", "model_uri": "x"}, "target.model_uri"),
        (None, {"kind": "mlflow_model", "model_uri": "runs:/x"}, "target.model_uri"),
        (None, "models:/x/1", "target"),
    ],
)
def test_start_refuses_bad_datasets_and_targets(project, dataset: Any, target: Any, field: str) -> None:
    ingest(project, [rag_row(1)])
    version = version_of(project, ["pii"])
    with pytest.raises(ValidationFailed) as caught:
        run_start(project=project, suite_version=version, dataset=dataset, target=target, actor=None)
    assert field in {e["field"] for e in caught.value.errors}
    assert not Run.objects.exists()


def test_dataset_filters_combine(project, rag_questions, reviewer) -> None:
    items = ingest(
        project,
        [rag_row(0, source="web", metadata={"channel": "chat"}), rag_row(1, source="web"), rag_row(2, source="app")],
    )
    curate(items[1], reviewer, {"correct": True})
    version = version_of(project, ["pii"])

    def ids(dataset: dict[str, Any]) -> list[int]:
        run = run_start(project=project, suite_version=version, dataset=dataset, actor=None)
        return [pk for c in run.chunks.order_by("index") for pk in c.item_ids]

    assert ids({"source": "web"}) == [items[0].pk, items[1].pk]
    assert ids({"metadata": {"channel": "chat"}}) == [items[0].pk]
    assert ids({"curated_only": True}) == [items[1].pk]
    assert ids({"ids": [items[2].pk, items[0].pk], "limit": 1}) == [items[0].pk]


# --- execution --------------------------------------------------------------------------------


def test_a_run_scores_every_item_with_every_scorer_and_closes(project, rag_questions, reviewer) -> None:
    items = ingest(project, [rag_row(n) for n in range(5)])
    curate(
        items[0], reviewer, {"correct": True, "expected": "Open Settings, then Security, and choose Reset password."}
    )
    version = version_of(project, CODE_SCORERS, chunk_size=2)
    run = execute_all(run_start(project=project, suite_version=version, actor=None))
    assert run.status == Run.Status.SUCCEEDED and run.error == ""
    assert run.rows_done == 5 and run.rows_errored == 0 and run.chunks_done == 3 and run.percent == 100
    assert run.started_at is not None and run.finished_at is not None
    assert RunResult.objects.filter(run=run).count() == 5 * len(CODE_SCORERS)
    exact = RunResult.objects.get(run=run, item=items[0], scorer="exact_match")
    assert exact.value is True and exact.passed is True and exact.source_type == "CODE"
    # no expected response on the other items: not applicable, not an error
    other = RunResult.objects.get(run=run, item=items[1], scorer="exact_match")
    assert (
        other.value is None and other.passed is None and other.error == "" and "No expected response" in other.rationale
    )
    assert run.metrics["exact_match"] == {
        "n": 5,
        "n_scored": 1,
        "n_errors": 0,
        "n_judged": 1,
        "n_passed": 1,
        "n_skipped": 0,
        "mean": 1.0,
        "pass_rate": 1.0,
        "error_rate": 0.0,
    }
    assert run.metrics["latency"]["mean"] == 800.0 and run.metrics["pii"]["pass_rate"] == 1.0


def test_expectations_also_come_from_item_metadata(project) -> None:
    ingest(
        project,
        [rag_row(0, metadata={"expected_response": "Open Settings, then Security, and choose Reset password."})],
    )
    run = execute_all(run_start(project=project, suite_version=version_of(project, ["exact_match"]), actor=None))
    assert RunResult.objects.get(run=run).passed is True


def test_a_chunk_executed_twice_scores_once(project) -> None:
    ingest(project, [rag_row(n) for n in range(4)])
    run = run_start(project=project, suite_version=version_of(project, ["test_slow", "pii"]), actor=None)
    chunk = run.chunks.get()
    run_chunk_execute(chunk_id=chunk.pk)
    run_chunk_execute(chunk_id=chunk.pk)  # a redelivered message
    assert len(scorers_for_tests.CALLS) == 4
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED and run.rows_done == 4 and run.chunks_done == 1
    assert RunResult.objects.filter(run=run).count() == 8


def test_a_chunk_whose_worker_died_is_taken_over_and_only_missing_results_are_computed(project) -> None:
    items = ingest(project, [rag_row(n) for n in range(4)])
    run = run_start(project=project, suite_version=version_of(project, ["test_slow", "pii"]), actor=None)
    chunk = run.chunks.get()
    # A worker claimed the chunk, wrote the results of two items, and died: its lease ran out.
    RunResult.objects.bulk_create(
        [
            RunResult(run=run, item=item, scorer=name, value=1.0, number=1.0)
            for item in items[:2]
            for name in ("test_slow", "pii")
        ]
    )
    past = timezone.now() - timedelta(seconds=5)
    RunChunk.objects.filter(pk=chunk.pk).update(
        status="running", lease_owner="dead-worker", attempts=1, started_at=past, lease_expires_at=past
    )
    run_chunk_execute(chunk_id=chunk.pk)
    assert sorted(scorers_for_tests.CALLS) == [items[2].pk, items[3].pk]
    chunk.refresh_from_db()
    assert chunk.status == "done" and chunk.attempts == 2 and chunk.rows_done == 4
    assert RunResult.objects.filter(run=run).count() == 8


def test_a_live_lease_is_not_taken_over(project) -> None:
    ingest(project, [rag_row(0)])
    run = run_start(project=project, suite_version=version_of(project, ["test_slow"]), actor=None)
    chunk = run.chunks.get()
    future = timezone.now() + timedelta(minutes=1)
    RunChunk.objects.filter(pk=chunk.pk).update(status="running", lease_owner="alive", lease_expires_at=future)
    run_chunk_execute(chunk_id=chunk.pk)
    assert scorers_for_tests.CALLS == [] and RunChunk.objects.get(pk=chunk.pk).lease_owner == "alive"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_for_one_chunk_score_each_row_once(project) -> None:
    ingest(project, [rag_row(n, metadata={"sleep": 0.05}) for n in range(6)])
    run = run_start(project=project, suite_version=version_of(project, ["test_slow"]), actor=None)
    chunk = run.chunks.get()
    barrier = threading.Barrier(2)

    def work() -> None:
        barrier.wait()
        try:
            run_chunk_execute(chunk_id=chunk.pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(scorers_for_tests.CALLS) == sorted(run.chunks.get().item_ids)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED and run.rows_done == 6 and RunChunk.objects.get(pk=chunk.pk).attempts == 1


# --- faults -----------------------------------------------------------------------------------


def test_a_scorer_that_raises_marks_its_rows_errored_and_the_run_goes_on(project) -> None:
    ingest(project, [rag_row(n, metadata={"explode": n == 0}) for n in range(10)])
    run = execute_all(
        run_start(project=project, suite_version=version_of(project, ["test_explode", "pii"]), actor=None)
    )
    assert run.status == Run.Status.SUCCEEDED  # 10% errored, under the 20% limit
    assert run.rows_errored == 1 and run.error_rate == 0.1
    bad = RunResult.objects.get(run=run, scorer="test_explode", error__contains="boom")
    assert bad.passed is None and bad.value is None
    assert run.metrics["test_explode"]["error_rate"] == 0.1 and run.metrics["pii"]["n_errors"] == 0


def test_too_many_errors_fail_the_run_with_the_reason(project) -> None:
    ingest(project, [rag_row(n, metadata={"explode": n < 3}) for n in range(10)])
    version = version_of(project, ["test_explode", "pii"], max_error_rate=0.25)
    run = execute_all(run_start(project=project, suite_version=version, actor=None))
    assert run.status == Run.Status.FAILED
    assert "3 of 10 rows errored (30%), more than this suite's limit of 25%" in run.error
    assert "test_explode" in run.error and "boom on item" in run.error
    assert RunResult.objects.filter(run=run).count() == 20  # what was scored is kept


def test_a_run_fails_early_once_enough_rows_errored(project) -> None:
    ingest(project, [rag_row(n, metadata={"explode": True}) for n in range(250)])
    run = execute_all(
        run_start(project=project, suite_version=version_of(project, ["test_explode"], chunk_size=50), actor=None)
    )
    assert run.status == Run.Status.FAILED and run.rows_done == 100  # failed after 2 of 5 chunks
    assert list(run.chunks.values_list("status", flat=True).order_by("index")) == [
        "done",
        "done",
        "cancelled",
        "cancelled",
        "cancelled",
    ]


def test_judges_run_concurrently_and_their_errors_are_row_errors(project, settings) -> None:
    settings.EVALUATION_JUDGE_CONCURRENCY = 4
    ingest(project, [rag_row(n, metadata={"verdict": n % 2 == 0, "judge_sleep": 0.05}) for n in range(8)])
    ingest(project, [rag_row(8, metadata={"judge_sleep": 0.0})])  # the fake judge "times out" on this one
    run = execute_all(run_start(project=project, suite_version=version_of(project, ["test_judge", "pii"]), actor=None))
    assert len(scorers_for_tests.JUDGE_THREADS) > 1  # several calls in flight
    results = RunResult.objects.filter(run=run, scorer="test_judge")
    assert results.filter(passed=True).count() == 4 and results.filter(passed=False).count() == 4
    assert results.get(error__contains="timed out").source_type == "LLM_JUDGE"
    assert run.status == Run.Status.SUCCEEDED and run.rows_errored == 1


# --- generation targets -----------------------------------------------------------------------


@pytest.fixture
def candidate(settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeChatServer]:
    with FakeChatServer(model="candidate-llm").running() as fake:
        monkeypatch.setenv("REVIEWDESK_SECRET_TEST_CANDIDATE_KEY", fake.token)
        fake.answer = lambda messages: "Passwords are reset from Settings, under Security."
        settings.EVALUATION_ENDPOINTS = [
            {
                "name": "candidate",
                "kind": "openai_compatible",
                "url": fake.base_url,
                "model": fake.model,
                "credential_env": "REVIEWDESK_SECRET_TEST_CANDIDATE_KEY",
                "timeout_seconds": 2,
                "max_retries": 0,
                "max_concurrency": 4,
                "backoff_seconds": 0.01,
            }
        ]
        yield fake


def test_an_endpoint_target_generates_responses_then_scores_them(project, candidate) -> None:
    items = ingest(project, [rag_row(n, response="stored answer") for n in range(3)])
    version = version_of(project, ["lexical_groundedness", "response_length"])
    run = execute_all(
        run_start(
            project=project, suite_version=version, target={"kind": "endpoint", "endpoint": "candidate"}, actor=None
        )
    )
    assert run.status == Run.Status.SUCCEEDED and run.target_label == "endpoint candidate"
    assert len(candidate.chat_calls()) == 3
    row = RunRow.objects.get(run=run, item=items[0])
    assert row.response == "Passwords are reset from Settings, under Security." and row.latency_ms is not None
    # the generated response was scored, not the stored one; the endpoint returned no context
    length = RunResult.objects.get(run=run, item=items[0], scorer="response_length")
    assert length.value == 7
    grounded = RunResult.objects.get(run=run, item=items[0], scorer="lexical_groundedness")
    assert grounded.value is None and "No retrieved context" in grounded.rationale


def test_a_dead_endpoint_errors_every_row_and_fails_the_run(project, candidate) -> None:
    from tests.fakes.http import Reply

    candidate.fail_next(100, Reply(status=503, body={"error": "down"}))
    ingest(project, [rag_row(n) for n in range(3)])
    run = execute_all(
        run_start(
            project=project,
            suite_version=version_of(project, ["pii"]),
            target={"kind": "endpoint", "endpoint": "candidate"},
            actor=None,
        )
    )
    assert run.status == Run.Status.FAILED and run.rows_errored == 3
    assert "No response" in run.error
    assert RunRow.objects.filter(run=run).exclude(error="").count() == 3


def test_a_registry_that_is_down_releases_the_chunk_for_a_retry(project, settings, monkeypatch) -> None:
    """TransientPipelineError from the target: the task's autoretry claims the chunk again later."""
    project.mlflow_registered_model = "support-rag"  # only the project's own model may be a target
    project.save(update_fields=["mlflow_registered_model"])
    ingest(project, [rag_row(0)])
    run = run_start(
        project=project,
        suite_version=version_of(project, ["pii"]),
        target={"kind": "mlflow_model", "model_uri": "models:/support-rag/1"},
        actor=None,
    )
    chunk = run.chunks.get()
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:1"  # the registry is unreachable
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's client would retry for minutes
    with pytest.raises(TransientPipelineError):
        run_chunk_execute(chunk_id=chunk.pk)
    chunk.refresh_from_db()
    assert (chunk.status, chunk.lease_owner, chunk.attempts) == ("pending", "", 1)
    assert not RunResult.objects.filter(run=run).exists() and not RunRow.objects.filter(run=run).exists()
    assert Run.objects.get(pk=run.pk).status == Run.Status.RUNNING


# --- sweeper and cancel -----------------------------------------------------------------------


def test_the_sweeper_requeues_expired_leases_and_lost_messages(
    project, settings, django_capture_on_commit_callbacks
) -> None:
    ingest(project, [rag_row(n) for n in range(3)])
    run = run_start(project=project, suite_version=version_of(project, ["pii"], chunk_size=1), actor=None)
    dead, lost, fresh = run.chunks.order_by("index")
    past = timezone.now() - timedelta(seconds=1)
    RunChunk.objects.filter(pk=dead.pk).update(status="running", lease_owner="x", attempts=1, lease_expires_at=past)
    stale = timezone.now() - timedelta(seconds=settings.EVALUATION_PENDING_REQUEUE_SECONDS + 5)
    RunChunk.objects.filter(pk=lost.pk).update(enqueued_at=stale)
    with django_capture_on_commit_callbacks() as callbacks:
        result = runs_sweep()
    assert (result.requeued, result.failed, result.closed) == (2, 0, 0)
    assert len(callbacks) == 2
    dead.refresh_from_db()
    assert dead.status == "pending" and dead.lease_owner == "" and dead.lease_expires_at is None
    assert RunChunk.objects.get(pk=fresh.pk).enqueued_at == fresh.enqueued_at  # left alone
    execute_all(run)
    assert Run.objects.get(pk=run.pk).status == Run.Status.SUCCEEDED


def test_the_sweeper_gives_up_on_a_chunk_after_its_attempts(project, settings) -> None:
    ingest(project, [rag_row(n) for n in range(2)])
    run = run_start(project=project, suite_version=version_of(project, ["pii"], chunk_size=1), actor=None)
    poison, good = run.chunks.order_by("index")
    run_chunk_execute(chunk_id=good.pk)
    past = timezone.now() - timedelta(seconds=1)
    RunChunk.objects.filter(pk=poison.pk).update(
        status="running", attempts=settings.EVALUATION_CHUNK_MAX_ATTEMPTS, lease_expires_at=past
    )
    result = runs_sweep()
    assert (result.failed, result.closed) == (1, 0)  # the run closed while the chunk failed
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED and run.rows_errored == 1
    assert "Gave up after 5 attempts" in run.error


def test_cancel_stops_the_run_and_keeps_what_was_scored(project, engineer) -> None:
    ingest(project, [rag_row(n) for n in range(4)])
    run = run_start(project=project, suite_version=version_of(project, ["pii"], chunk_size=2), actor=engineer)
    first, second = run.chunks.order_by("index")
    run_chunk_execute(chunk_id=first.pk)
    run = run_cancel(run=run, actor=engineer)
    assert run.status == Run.Status.CANCELLED and "Cancelled by eddie" in run.error
    assert RunChunk.objects.get(pk=second.pk).status == "cancelled"
    run_chunk_execute(chunk_id=second.pk)  # a message still in the queue
    assert RunResult.objects.filter(run=run).count() == 2 and run.metrics["pii"]["n"] == 2
    with pytest.raises(Conflict):
        run_cancel(run=run, actor=engineer)
