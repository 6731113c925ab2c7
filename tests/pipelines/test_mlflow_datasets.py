"""A curated dataset version in MLflow: the ``mlflow`` export shape through ``mlflow.genai.evaluate``
with a code scorer, and the version materialised as an MLflow evaluation dataset (real SQLite store).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipelines.adapters.errors import TransientPipelineError
from pipelines.datasets.assessments import DATASET_VERSION_TAG, dataset_version_to_mlflow
from pipelines.datasets.exports import shape_row
from pipelines.datasets.versions import dataset_create, dataset_version_create
from pipelines.models import DatasetRow, DatasetVersion, MlflowDatasetExport
from pipelines.tasks.assessments import dataset_version_to_mlflow as dataset_version_to_mlflow_task
from reviewapp.models import Item
from tests.evaluations.conftest import curate, ingest, rag_questions, rag_row  # noqa: F401 - a fixture

ANSWER = "Open Settings, then Security, and choose Reset password."


@pytest.fixture
def mlflow_store(settings, tmp_path: Path) -> str:
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings.MLFLOW_TRACKING_URI = uri
    settings.MLFLOW_ARTIFACT_ROOT = str(tmp_path / "artifacts")
    mlflow.set_tracking_uri(uri)
    return uri


@pytest.fixture
def version(project, rag_questions, reviewer, engineer) -> DatasetVersion:  # noqa: F811 - the fixture
    """Four curated rows; the stored answer matches the expected response on rows 0 and 2 only."""
    items = ingest(
        project,
        [
            rag_row(0),
            rag_row(1, response="Email support and wait."),
            rag_row(2, request={"messages": [{"role": "user", "content": "Reset my password?"}]}),
            rag_row(3, response="I do not know."),
        ],
    )
    for item in items:
        curate(item, reviewer, {"correct": item.response == ANSWER, "expected": ANSWER})
    dataset = dataset_create(project=project, user=engineer, name="Gold", filter={"curated_only": True})
    return dataset_version_create(dataset=dataset, user=engineer)


def shaped_rows(version: DatasetVersion) -> list[dict[str, Any]]:
    rows = DatasetRow.objects.filter(version=version).order_by("position").values_list("data", flat=True)
    return [r for r in (shape_row("mlflow", data) for data in rows) if r is not None]


@pytest.mark.slow
def test_the_mlflow_shape_feeds_genai_evaluate_with_a_code_scorer(version: DatasetVersion, mlflow_store: str) -> None:
    import mlflow
    from mlflow.genai.scorers import scorer

    rows = shaped_rows(version)
    assert len(rows) == 4 and {"inputs", "outputs", "expectations"} <= set(rows[0])

    @scorer
    def exact_match(outputs: Any, expectations: dict[str, Any]) -> bool:
        return str(outputs).strip() == str(expectations.get("expected_response", "")).strip()

    @scorer
    def covers_facts(outputs: Any, expectations: dict[str, Any]) -> float:
        facts = expectations.get("expected_facts") or []
        return sum(f.lower() in str(outputs).lower() for f in facts) / len(facts) if facts else 1.0

    mlflow.set_experiment("shape-check")
    data = rows  # the exported rows as they are, provenance columns included
    result = mlflow.genai.evaluate(data=data, scorers=[exact_match, covers_facts])

    expected_rate = sum(r["outputs"] == r["expectations"]["expected_response"] for r in rows) / len(rows)
    assert expected_rate == 0.5  # rows 0 and 2, computed from the data independently of MLflow
    assert result.metrics["exact_match/mean"] == pytest.approx(expected_rate)
    assert result.metrics["covers_facts/mean"] == pytest.approx(1.0)  # no expected facts: vacuous
    table = result.tables["eval_results"]
    assert len(table) == 4
    chat = next(r for r in rows if "messages" in r["inputs"])
    assert chat["inputs"]["messages"][0]["content"] == "Reset my password?"


@pytest.mark.slow
def test_a_version_becomes_an_mlflow_evaluation_dataset_once(version: DatasetVersion, mlflow_store: str) -> None:
    from mlflow import MlflowClient

    first = dataset_version_to_mlflow(version=version)
    assert first["records"] == 4 and first["reused"] is False and first["name"] == "support.Gold v1"
    export = MlflowDatasetExport.objects.get(version=version)
    assert export.status == "done" and export.mlflow_dataset_id == first["dataset_id"] and export.records == 4

    client = MlflowClient(tracking_uri=mlflow_store)
    stored = client.get_dataset(first["dataset_id"])
    assert stored.tags[DATASET_VERSION_TAG] == str(version.pk)
    frame = stored.to_df()
    assert len(frame) == 4
    by_item = {row["tags"]["item_id"]: row for row in frame.to_dict("records")}
    item = Item.objects.get(external_id="q-1")
    record = by_item[str(item.pk)]
    assert record["expectations"]["expected_response"] == ANSWER
    assert record["outputs"] == "Email support and wait."
    assert record["inputs"] == {"request": "How do I reset my password? (1)"}

    again = dataset_version_to_mlflow(version=version)
    assert again == {**first, "reused": True}
    # The row was lost after MLflow created the dataset (a crash): found again by its tag, not duplicated.
    MlflowDatasetExport.objects.all().delete()
    third = dataset_version_to_mlflow(version=version)
    assert third["dataset_id"] == first["dataset_id"] and third["reused"] is True and third["records"] == 4
    assert len(client.search_datasets(max_results=50)) == 1


@pytest.mark.slow
def test_the_task_materialises_a_version_and_mlflow_down_is_transient(
    version: DatasetVersion, mlflow_store: str, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset_version_to_mlflow_task.apply(args=[version.pk])  # the task body, in this process
    assert MlflowDatasetExport.objects.get(version=version).status == "done"

    other = DatasetVersion.objects.create(dataset=version.dataset, number=2, content_hash="f" * 64)
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9"
    # MLflow reads its HTTP limits from the environment, which the settings publish at process start.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with pytest.raises(TransientPipelineError):
        dataset_version_to_mlflow(version=other)
    failed = MlflowDatasetExport.objects.get(version=other)
    # back in the queue with the reason: the task retries it, then the jobs kernel's sweeper
    assert failed.status == "queued" and failed.error
