"""Curated labels written back to MLflow traces as HUMAN assessments, on a real local MLflow store.

Traces are created with the real tracing API in a tmp SQLite store; items carry their trace ids;
labels come from the real review path (submitted reviews, consensus; a curator's adjudication);
the sync is read back with ``mlflow.get_trace``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from pipelines.adapters.errors import TransientPipelineError
from pipelines.datasets.assessments import LABEL_ID, LABEL_VERSION, assessment_sync_execute, assessments_sync
from pipelines.models import AssessmentSync
from reviewapp.models import CuratedLabel, Item, Review
from reviewapp.services.reviews import review_edit
from tests.evaluations.conftest import curate, ingest, rag_questions, rag_row  # noqa: F401 - a fixture

ANSWER = "Open Settings, then Security, and choose Reset password."


@pytest.fixture
def mlflow_store(settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings.MLFLOW_TRACKING_URI = uri
    settings.MLFLOW_ARTIFACT_ROOT = str(tmp_path / "artifacts")
    # Traces are written as the span ends, not by a background thread, so they exist when read back.
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    mlflow.set_tracking_uri(uri)
    experiment_id = mlflow.create_experiment("app-traces", artifact_location=(tmp_path / "traces").as_uri())
    mlflow.set_experiment(experiment_id=experiment_id)
    return uri


def make_trace(question: str, answer: str) -> str:
    import mlflow

    with mlflow.start_span(name="rag") as span:
        span.set_inputs({"question": question})
        span.set_outputs({"answer": answer})
    return str(span.trace_id)


def assessments(trace_id: str, *, valid_only: bool = True) -> list[Any]:
    import mlflow

    trace = mlflow.get_trace(trace_id)
    assert trace is not None
    return [a for a in trace.info.assessments if a.valid is not False or not valid_only]


def by_name(trace_id: str) -> dict[str, Any]:
    found = assessments(trace_id)
    names = [a.name for a in found]
    assert len(names) == len(set(names)), f"duplicate assessments: {names}"
    return {a.name: a for a in found}


@pytest.fixture
def traced(project, rag_questions, reviewer, mlflow_store) -> list[Item]:  # noqa: F811 - the fixture
    """Two items with MLflow traces, one without; all three curated by ``reviewer``."""
    rows = [rag_row(n, trace_id=make_trace(f"q{n}", ANSWER) if n < 2 else "") for n in range(3)]
    items = ingest(project, rows)
    curate(items[0], reviewer, {"correct": True, "expected": ANSWER, "facts": ["Settings", "Security"]})
    curate(items[1], reviewer, {"correct": False, "chunks": [2, 0]})
    curate(items[2], reviewer, {"correct": True})
    return items


@pytest.mark.slow
def test_curated_feedback_and_expectations_land_on_the_traces_once(project, reviewer, traced: list[Item]) -> None:
    report = assessments_sync(project=project)
    assert (report.synced, report.failed) == (2, 0) and report.written == 7

    first = by_name(traced[0].trace_id)
    assert set(first) == {"correct", "helpfulness", "expected_response", "expected_facts"}
    assert first["correct"].value is True and first["helpfulness"].value == 3
    assert first["expected_response"].value == ANSWER
    assert first["expected_facts"].value == ["Settings", "Security"]
    assert first["correct"].feedback is not None and first["expected_response"].expectation is not None
    for a in first.values():
        assert a.source.source_type == "HUMAN" and a.source.source_id == reviewer.username
        label = CuratedLabel.objects.get(item=traced[0])
        assert a.metadata[LABEL_ID] == str(label.pk) and a.metadata[LABEL_VERSION] == "1"
    assert "Consensus" in first["correct"].rationale

    second = by_name(traced[1].trace_id)
    assert second["correct"].value is False and second["chunks"].value == [2, 0]
    assert "expected_response" not in second

    ledger = AssessmentSync.objects.get(label__item=traced[0])
    assert ledger.status == AssessmentSync.Status.SYNCED and ledger.label_version == 1 and ledger.written == 4
    assert ledger.assessment_ids["feedback:correct"] == first["correct"].assessment_id
    assert not AssessmentSync.objects.filter(item_id=traced[2].pk).exists()  # no trace id: nothing to do

    # Again: nothing new, and MLflow is not even asked.
    assert assessments_sync(project=project) == type(report)(synced=0, failed=0, written=0)
    assert len(assessments(traced[0].trace_id, valid_only=False)) == 4


@pytest.mark.slow
def test_a_changed_label_overrides_its_earlier_assessments(project, reviewer, traced: list[Item]) -> None:
    assessments_sync(project=project)
    before = by_name(traced[0].trace_id)

    review = Review.objects.get(item=traced[0])
    review_edit(
        review=review,
        user=reviewer,
        answers={**review.answers, "correct": False, "expected": "Ask an admin to reset it.", "facts": []},
    )
    assert CuratedLabel.objects.get(item=traced[0]).version == 2

    report = assessments_sync(project=project)
    assert (report.synced, report.failed) == (1, 0)
    # correct: overridden; expected_response: updated in place; expected_facts: deleted; helpfulness: kept.
    assert report.written == 3
    after = by_name(traced[0].trace_id)
    assert set(after) == {"correct", "helpfulness", "expected_response"}
    assert after["correct"].value is False and after["correct"].overrides == before["correct"].assessment_id
    assert after["correct"].metadata[LABEL_VERSION] == "2"
    assert after["expected_response"].value == "Ask an admin to reset it."
    assert after["expected_response"].assessment_id == before["expected_response"].assessment_id
    assert after["helpfulness"].assessment_id == before["helpfulness"].assessment_id
    superseded = [a for a in assessments(traced[0].trace_id, valid_only=False) if a.valid is False]
    assert [a.assessment_id for a in superseded] == [before["correct"].assessment_id]
    assert list(
        AssessmentSync.objects.filter(label__item=traced[0])
        .order_by("label_version")
        .values_list("label_version", "status")
    ) == [(1, "synced"), (2, "synced")]
    assert assessments_sync(project=project).written == 0


@pytest.mark.slow
def test_an_adjudicated_label_names_its_curator(project, reviewer, reviewer2, curator, mlflow_store) -> None:
    project.reviews_per_item = 2
    project.save(update_fields=["reviews_per_item"])
    item = ingest(project, [rag_row(7, trace_id=make_trace("q7", ANSWER))])[0]
    curate_two_disagreeing(item, reviewer, reviewer2)
    decide(item, curator)
    assessments_sync(project=project)
    found = by_name(item.trace_id)
    assert found["correct"].source.source_id == curator.username and found["correct"].value is True
    assert found["correct"].rationale == "The answer is right."


@pytest.mark.slow
def test_a_trace_missing_in_mlflow_is_a_per_label_error_and_the_others_go_on(
    project, reviewer, traced: list[Item]
) -> None:
    Item.objects.filter(pk=traced[0].pk).update(trace_id="tr-0000000000000000000000000000dead")
    report = assessments_sync(project=project)
    assert (report.synced, report.failed) == (1, 1)
    failed = AssessmentSync.objects.get(item_id=traced[0].pk)
    assert failed.status == "failed" and "MLflow has no trace 'tr-0000000000000000000000000000dead'" in failed.error
    assert by_name(traced[1].trace_id)["correct"].value is False
    # Tried again on the next syncs, until MLFLOW_ASSESSMENT_SYNC_MAX_ATTEMPTS.
    with override_settings(MLFLOW_ASSESSMENT_SYNC_MAX_ATTEMPTS=2):
        assert assessments_sync(project=project).failed == 1
        assert AssessmentSync.objects.get(item_id=traced[0].pk).attempts == 2
        assert assessments_sync(project=project).failed == 0  # given up


@pytest.mark.slow
def test_mlflow_down_puts_the_label_back_for_a_retry(
    project, reviewer, traced: list[Item], settings, monkeypatch
) -> None:
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9"  # nothing listens there
    # MLflow reads its HTTP limits from the environment, which the settings publish at process start.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with pytest.raises(TransientPipelineError):
        assessments_sync(project=project)
    assert set(AssessmentSync.objects.values_list("status", flat=True)) == {"pending"}


@pytest.mark.slow
def test_a_claimed_row_is_not_synced_twice(project, reviewer, traced: list[Item]) -> None:
    assessments_sync(project=project)
    row = AssessmentSync.objects.get(item_id=traced[0].pk)
    assert assessment_sync_execute(sync_id=row.pk) == 0  # synced already: not claimable
    assert len(assessments(traced[0].trace_id, valid_only=False)) == 4


@pytest.mark.slow
def test_a_crash_mid_sync_adopts_what_was_written(project, reviewer, traced: list[Item]) -> None:
    """A worker died after writing but before recording: the retry writes nothing twice."""
    assessments_sync(project=project)
    AssessmentSync.objects.filter(item_id=traced[0].pk).update(status="pending", assessment_ids={}, written=0)
    report = assessments_sync(project=project)
    assert (report.synced, report.written) == (1, 0)
    assert len(assessments(traced[0].trace_id, valid_only=False)) == 4


# --- helpers for the adjudicated case --------------------------------------------------------------


def curate_two_disagreeing(item: Item, first: Any, second: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from reviewapp.models import Assignment
    from reviewapp.services.reviews import review_submit

    now = timezone.now()
    for user, verdict in ((first, True), (second, False)):
        slot = Assignment.objects.filter(item=item, submitted_at__isnull=True, reviewer__isnull=True).order_by("slot")[
            0
        ]
        Assignment.objects.filter(pk=slot.pk).update(reviewer=user, leased_at=now, expires_at=now + timedelta(hours=1))
        review_submit(assignment_id=slot.pk, user=user, answers={"helpfulness": 3, "correct": verdict})


def decide(item: Item, curator: Any) -> None:
    from reviewapp.models import Adjudication
    from reviewapp.services.curation import adjudication_decide

    adjudication = Adjudication.objects.get(item=item)
    adjudication_decide(
        item=item,
        user=curator,
        expected_version=adjudication.version,
        answers={"correct": True, "helpfulness": 3},
        rationale="The answer is right.",
    )
