"""The loop on one trace: an MLflow trace is ingested, reviewed, curated, and its curated label
lands back on that same trace as HUMAN assessments (real MLflow store, real services)."""

from __future__ import annotations

import pytest

from pipelines.datasets.assessments import assessments_sync
from pipelines.sources.traces import traces_ingest
from reviewapp.models import Item
from tests.evaluations.conftest import curate, rag_questions  # noqa: F401 - a fixture
from tests.pipelines.test_trace_ingest import DOCS, EXPERIMENT, log_trace, mlflow_store  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db


@pytest.mark.slow
def test_a_traced_answer_comes_back_to_its_trace_as_human_feedback(project, rag_questions, reviewer, mlflow_store):  # noqa: F811
    import mlflow

    trace_id = log_trace(
        {"question": "How long do refunds take?"},
        {"response": "Within 14 days."},
        docs=DOCS,
        tags={"model_version": "2"},
    )
    result = traces_ingest(project=project, experiment=EXPERIMENT)
    assert result.created == 1
    item = Item.objects.get(project=project, trace_id=trace_id)
    assert item.external_id == trace_id and item.model_version == "2"

    curate(item, reviewer, {"correct": True, "expected": "Refunds take up to 14 days.", "chunks": [2, 1]})
    report = assessments_sync(project=project)
    assert (report.synced, report.failed) == (1, 0)

    trace = mlflow.get_trace(trace_id)
    found = {a.name: a for a in trace.info.assessments if a.valid is not False}
    assert found["correct"].feedback.value is True
    assert found["correct"].source.source_type == "HUMAN"
    assert found["correct"].source.source_id == reviewer.get_username()
    assert found["expected_response"].expectation.value == "Refunds take up to 14 days."
    # A second ingest of the same experiment leaves the reviewed item alone.
    again = traces_ingest(project=project, experiment=EXPERIMENT)
    assert (again.created, again.updated) == (0, 0)
