"""End users' feedback from MLflow traces' HUMAN assessments, and feedback joining items that
``ingest_traces`` brings, on a real local MLflow store (traces logged with the real tracing API)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from pipelines.adapters import mlflow_tracking
from pipelines.models import Feedback
from pipelines.sources.feedback import feedback_from_trace_assessments
from pipelines.sources.traces import traces_ingest
from reviewapp.models import Item
from reviewapp.services.tokens import api_token_create
from tests.pipelines.test_trace_ingest import EXPERIMENT, log_trace, mlflow_store  # noqa: F401 - a fixture

pytestmark = pytest.mark.slow


def human(user: str) -> Any:
    from mlflow.entities import AssessmentSource, AssessmentSourceType

    return AssessmentSource(source_type=AssessmentSourceType.HUMAN, source_id=user)


def assessments(settings: Any, trace_id: str) -> list[mlflow_tracking.TraceAssessment]:
    found = mlflow_tracking.trace_assessments_get(tracking_uri=settings.MLFLOW_TRACKING_URI, trace_id=trace_id)
    assert found is not None
    return found


@pytest.fixture
def rated_trace(mlflow_store) -> dict[str, str]:  # noqa: F811 - the imported fixture
    """One trace with end users' HUMAN feedback of every shape, and assessments that are not end users' feedback."""
    import mlflow
    from mlflow.entities import AssessmentSource, AssessmentSourceType

    trace_id = log_trace("Refund time?", "Within 14 days.", docs=[])
    ids = {
        "down": mlflow.log_feedback(
            trace_id=trace_id, name="user_feedback", value=False, rationale="Wrong <b>plan</b>.", source=human("u-1")
        ).assessment_id,
        "rating": mlflow.log_feedback(trace_id=trace_id, name="rating", value=4, source=human("u-2")).assessment_id,
        "word": mlflow.log_feedback(
            trace_id=trace_id, name="thumbs", value="thumbs_up", source=human("u-3")
        ).assessment_id,
        "text": mlflow.log_feedback(
            trace_id=trace_id, name="comment", value="Please link the policy.", source=human("u-4")
        ).assessment_id,
        "dict": mlflow.log_feedback(
            trace_id=trace_id, name="aspects", value={"tone": 3}, source=human("u-5")
        ).assessment_id,
    }
    mlflow.log_feedback(
        trace_id=trace_id,
        name="correctness",
        value=True,
        source=AssessmentSource(source_type=AssessmentSourceType.LLM_JUDGE, source_id="judge"),
    )
    mlflow.log_expectation(trace_id=trace_id, name="expected_response", value="14 days.", source=human("cora"))
    return {"trace_id": trace_id, **ids}


def test_human_feedback_assessments_are_stored_once_as_end_users_feedback(project, settings, rated_trace) -> None:
    trace_id = rated_trace["trace_id"]
    result = feedback_from_trace_assessments(
        project=project, trace_id=trace_id, assessments=assessments(settings, trace_id)
    )
    assert (result.created, result.duplicates, result.removed) == (4, 0, 0)
    assert list(result.skipped) == [rated_trace["dict"]] and "dict" in result.skipped[rated_trace["dict"]]

    rows = {f.client_id: f for f in Feedback.objects.filter(project=project)}
    down = rows[f"mlflow:{rated_trace['down']}"]
    assert (down.kind, down.value, down.comment, down.user_ref, down.origin) == (
        "thumbs",
        -1,
        "Wrong <b>plan</b>.",
        "u-1",
        "mlflow",
    )
    assert down.trace_id == trace_id and down.item_id is None  # no item for the trace yet
    assert (rows[f"mlflow:{rated_trace['rating']}"].kind, rows[f"mlflow:{rated_trace['rating']}"].value) == (
        "rating",
        4,
    )
    assert rows[f"mlflow:{rated_trace['word']}"].value == 1
    text = rows[f"mlflow:{rated_trace['text']}"]
    assert (text.kind, text.value, text.comment) == ("comment", None, "Please link the policy.")
    assert down.created_at < down.received_at  # the time the end user gave it, from MLflow

    again = feedback_from_trace_assessments(
        project=project, trace_id=trace_id, assessments=assessments(settings, trace_id)
    )
    assert (again.created, again.duplicates) == (0, 4)
    assert Feedback.objects.filter(project=project).count() == 4


def test_an_overridden_assessment_is_replaced_by_its_override(project, settings, rated_trace) -> None:
    import mlflow

    trace_id = rated_trace["trace_id"]
    feedback_from_trace_assessments(project=project, trace_id=trace_id, assessments=assessments(settings, trace_id))
    changed = mlflow.override_feedback(
        trace_id=trace_id, assessment_id=rated_trace["down"], value=True, source=human("u-1")
    )
    result = feedback_from_trace_assessments(
        project=project, trace_id=trace_id, assessments=assessments(settings, trace_id)
    )
    assert (result.created, result.duplicates, result.removed) == (1, 3, 1)
    assert not Feedback.objects.filter(client_id=f"mlflow:{rated_trace['down']}").exists()
    assert Feedback.objects.get(client_id=f"mlflow:{changed.assessment_id}").value == 1


def test_a_pull_sees_the_assessments_in_the_searched_traces(project, settings, rated_trace) -> None:
    page = mlflow_tracking.traces_search(tracking_uri=settings.MLFLOW_TRACKING_URI, experiment=EXPERIMENT)
    (trace,) = page.traces
    human_feedback = [a for a in trace["assessments"] if a.kind == "feedback" and a.source_type == "HUMAN"]
    assert len(human_feedback) == 5 and all(a.create_time_ms for a in human_feedback)
    result = feedback_from_trace_assessments(
        project=project, trace_id=trace["trace_id"], assessments=trace["assessments"]
    )
    assert result.created == 4


def test_ingest_traces_joins_feedback_sent_before_and_feedback_after_joins_at_once(
    project, engineer, settings, rated_trace, django_capture_on_commit_callbacks
) -> None:
    trace_id = rated_trace["trace_id"]
    _, raw = api_token_create(user=engineer, name="app", scopes=["feedback"])
    app = Client(headers={"authorization": f"Bearer {raw}"})
    early = app.post(
        "/api/v1/projects/support/feedback/",
        json.dumps([{"client_id": "early", "kind": "thumbs", "value": "down", "trace_id": trace_id}]),
        content_type="application/json",
    )
    assert early.json()["rows"][0]["joined"] is False
    feedback_from_trace_assessments(project=project, trace_id=trace_id, assessments=assessments(settings, trace_id))
    assert Feedback.objects.filter(item__isnull=True).count() == 5

    with django_capture_on_commit_callbacks(execute=True):
        result = traces_ingest(project=project, experiment=EXPERIMENT)
    assert result.created == 1
    item = Item.objects.get(project=project, external_id=trace_id)
    assert Feedback.objects.filter(item=item).count() == 5 and not Feedback.objects.filter(item__isnull=True).exists()

    late = app.post(
        "/api/v1/projects/support/feedback/",
        json.dumps([{"client_id": "late", "kind": "rating", "value": 5, "trace_id": trace_id}]),
        content_type="application/json",
    ).json()["rows"][0]
    assert (late["joined"], late["item"]) == (True, item.pk)

    import mlflow

    newer = mlflow.log_feedback(trace_id=trace_id, name="user_feedback", value=True, source=human("u-9"))
    feedback_from_trace_assessments(project=project, trace_id=trace_id, assessments=assessments(settings, trace_id))
    assert Feedback.objects.get(client_id=f"mlflow:{newer.assessment_id}").item == item
