"""RAG outputs ingested from MLflow traces, on a real local MLflow store.

Traces are logged with the real tracing API (a root CHAIN span, a child RETRIEVER span returning
``Document``s) into a tmp SQLite store, then read back through the adapter into items.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from pipelines.adapters import mlflow_tracking
from pipelines.adapters.errors import PermanentPipelineError
from pipelines.sources.traces import traces_ingest
from reviewapp.models import Item
from tests.factories import ProjectFactory

EXPERIMENT = "support-bot-traces"
DOCS = [("kb/billing/refunds.md", "Refunds are issued within 14 days."), ("kb/billing/plans.md", "Team costs $8.")]


@pytest.fixture
def mlflow_store(settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings.MLFLOW_TRACKING_URI = uri
    settings.MLFLOW_ARTIFACT_ROOT = str(tmp_path / "artifacts")
    # Traces are written as the span ends, not by a background thread, so they exist when read back.
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    mlflow.set_tracking_uri(uri)
    experiment_id = mlflow.create_experiment(EXPERIMENT, artifact_location=(tmp_path / "traces").as_uri())
    mlflow.set_experiment(experiment_id=experiment_id)
    return str(experiment_id)


def log_trace(
    inputs: Any,
    outputs: Any = None,
    *,
    docs: list[tuple[str, str]] | None = None,
    tags: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
) -> str:
    import mlflow
    from mlflow.entities import Document, SpanType

    with mlflow.start_span(name="rag", span_type=SpanType.CHAIN) as root:
        root.set_inputs(inputs)
        if docs is not None:
            with mlflow.start_span(name="retrieve", span_type=SpanType.RETRIEVER) as retriever:
                retriever.set_inputs({"query": "q"})
                retriever.set_outputs([Document(page_content=text, metadata={"doc_uri": uri}) for uri, text in docs])
        if outputs is not None:
            root.set_outputs(outputs)
        if tags or metadata:
            mlflow.update_current_trace(tags=tags, metadata=metadata)
    return str(root.trace_id)


@pytest.fixture
def three_traces(mlflow_store) -> list[str]:
    chat = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Refund time?"}]}
    return [
        log_trace(
            chat,
            {"choices": [{"message": {"role": "assistant", "content": "Within **14 days**."}}]},
            docs=DOCS,
            tags={"model_version": "2", "model_name": "support-assistant"},
        ),
        log_trace(
            {"question": "How much is Team?"}, {"response": "$8 a month."}, metadata={"mlflow.modelVersion": "3"}
        ),
        log_trace("Plain text question?", "Plain answer.", docs=[]),
    ]


@pytest.mark.slow
def test_traces_become_items_with_request_response_context_and_model_version(project, three_traces) -> None:
    result = traces_ingest(project=project, experiment=EXPERIMENT)
    assert (result.read, result.created, result.updated, result.sampled_out, result.skipped) == (3, 3, 0, 0, {})

    chat, question, plain = (Item.objects.get(project=project, external_id=t) for t in three_traces)
    assert chat.trace_id == three_traces[0] and chat.source == "mlflow-trace"
    assert chat.request == {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Refund time?"}]
    }
    assert chat.response == "Within **14 days**."
    assert chat.retrieved_context == [{"doc_uri": uri, "content": text} for uri, text in DOCS]
    assert (chat.model_name, chat.model_version) == ("support-assistant", "2")
    assert chat.metadata["mlflow_experiment_id"] == result.experiment_id
    assert chat.metadata["latency_ms"] >= 0 and chat.metadata["trace_name"] == "rag"

    assert (question.request, question.response, question.model_version) == ("How much is Team?", "$8 a month.", "3")
    assert question.retrieved_context == []
    assert (plain.request, plain.response) == ("Plain text question?", "Plain answer.")
    assert chat.assignments.count() == project.reviews_per_item  # in the review queue like any item


@pytest.mark.slow
def test_running_again_adds_and_changes_nothing_until_the_trace_changes(project, three_traces) -> None:
    from mlflow import MlflowClient

    traces_ingest(project=project, experiment=EXPERIMENT)
    stamps = dict(Item.objects.values_list("external_id", "updated_at"))

    again = traces_ingest(project=project, experiment=EXPERIMENT)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert dict(Item.objects.values_list("external_id", "updated_at")) == stamps
    assert Item.objects.filter(project=project).count() == 3

    MlflowClient().set_trace_tag(three_traces[2], "model_version", "7")  # a late tag, e.g. from a backfill
    third = traces_ingest(project=project, experiment=EXPERIMENT)
    assert (third.created, third.updated, third.unchanged) == (0, 1, 2)
    assert Item.objects.get(external_id=three_traces[2]).model_version == "7"


@pytest.mark.slow
def test_sampling_is_deterministic_and_a_higher_rate_picks_a_superset(
    project, mlflow_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mlflow_tracking, "TRACE_PAGE_MAX", 7)  # 40 traces over 6 pages
    traces = {log_trace({"question": f"q{n}"}, {"response": f"a{n}"}) for n in range(40)}

    def sample(rate: float) -> set[str]:
        target = ProjectFactory()
        result = traces_ingest(project=target, experiment=EXPERIMENT, sample_rate=rate)
        picked = set(Item.objects.filter(project=target).values_list("external_id", flat=True))
        assert result.created == len(picked) and result.sampled_out == 40 - len(picked)
        return picked

    half, half_again, fifth, everything = sample(0.5), sample(0.5), sample(0.2), sample(1.0)
    assert half == half_again
    assert 0 < len(half) < 40  # 40 random trace ids all on one side of 0.5: odds of 2 in a trillion
    assert fifth <= half <= everything == traces


def test_a_trace_without_outputs_is_skipped_with_its_reason(project, mlflow_store) -> None:
    answered = log_trace({"question": "Answered?"}, {"response": "Yes."})
    unanswered = log_trace({"question": "Crashed?"})

    result = traces_ingest(project=project, experiment=EXPERIMENT)

    assert result.created == 1 and list(result.skipped) == [unanswered]
    assert "no response" in result.skipped[unanswered].lower()
    assert set(Item.objects.values_list("external_id", flat=True)) == {answered}


def test_a_trace_that_would_not_be_a_valid_item_is_skipped_and_the_batch_goes_on(project, mlflow_store) -> None:
    good = log_trace({"question": "Fine?"}, {"response": "Fine."})
    no_user = log_trace({"messages": [{"role": "system", "content": "Only a system prompt."}]}, "An answer.")

    result = traces_ingest(project=project, experiment=EXPERIMENT)

    assert result.created == 1 and "user message" in result.skipped[no_user]
    assert set(Item.objects.values_list("external_id", flat=True)) == {good}


def test_filter_since_max_and_experiment_id_narrow_what_is_read(project, three_traces, mlflow_store) -> None:
    by_tag = traces_ingest(project=project, experiment=EXPERIMENT, filter_string="tag.model_version = '2'")
    assert (by_tag.read, by_tag.created) == (1, 1)

    future = timezone.now() + timedelta(hours=1)
    assert traces_ingest(project=project, experiment=EXPERIMENT, since=future).read == 0

    capped = traces_ingest(project=ProjectFactory(), experiment=mlflow_store, max_traces=2)
    assert (capped.read, capped.created) == (2, 2)


def test_an_unknown_experiment_or_a_bad_argument_is_a_clear_error(project, mlflow_store) -> None:
    with pytest.raises(PermanentPipelineError, match="no-such-experiment"):
        traces_ingest(project=project, experiment="no-such-experiment")
    for rate in (0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="sample rate"):
            traces_ingest(project=project, experiment=EXPERIMENT, sample_rate=rate)
    with pytest.raises(PermanentPipelineError, match="filter"):
        traces_ingest(project=project, experiment=EXPERIMENT, filter_string="bogus ==")


@pytest.mark.slow
def test_the_command_prints_the_counts(project, three_traces) -> None:
    unanswered = log_trace({"question": "Crashed?"})
    out = StringIO()
    call_command("ingest_traces", "--project", project.slug, "--experiment", EXPERIMENT, stdout=out)
    text = out.getvalue()
    assert "4 traces read" in text and "3 items created, 0 updated, 0 unchanged, 0 sampled out, 1 skipped" in text
    assert f"skipped {unanswered}: No response" in text

    out = StringIO()
    call_command("ingest_traces", "--project", project.slug, "--experiment", EXPERIMENT, "--max", "10", stdout=out)
    assert "0 items created, 0 updated, 3 unchanged" in out.getvalue()

    with pytest.raises(CommandError, match="nope"):
        call_command("ingest_traces", "--project", project.slug, "--experiment", "nope")
    with pytest.raises(CommandError, match="sample rate"):
        call_command("ingest_traces", "--project", project.slug, "--experiment", EXPERIMENT, "--sample-rate", "0")
