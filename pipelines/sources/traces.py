"""RAG outputs from MLflow traces: a trace as an item, the deterministic sample, and ``traces_ingest``.

A trace (``mlflow_tracking.traces_search``: request, response and retrieved context read from the
root and RETRIEVER spans) becomes an item with ``external_id = trace_id`` and
``source = "mlflow-trace"`` (:func:`trace_item`); one without a request or a response, or still in
progress, is skipped with its reason (:func:`trace_skip_reason`).

- **Sampling** is by a hash of the trace id, not by chance (:func:`trace_sampled`): the same traces
  are picked on every run, and the traces picked at rate 0.2 are among those picked at 0.5.
- ``traces_ingest`` (``manage.py ingest_traces``) runs a pull of the project's MLflow source for the
  experiment (``pipelines.sources.pulls``): batches commit on their own, a trace already ingested
  with the same content is counted unchanged, one whose content changed (a late tag) is updated.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from pipelines.adapters.errors import PermanentPipelineError
from reviewapp.models import Project

if TYPE_CHECKING:
    from reviewapp.usertypes import Actor

SOURCE = "mlflow-trace"


@dataclass
class TraceIngestResult:
    experiment_id: str = ""
    read: int = 0  # traces read from MLflow (at most max_traces)
    created: int = 0
    updated: int = 0
    unchanged: int = 0  # already ingested with the same content
    sampled_out: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # trace id -> reason


def trace_sampled(trace_id: str, sample_rate: float) -> bool:
    """Whether the trace is in the sample: its id hashed to [0, 1) falls below the rate.

    Deterministic, and monotone in the rate, so a higher rate picks a superset.
    """
    digest = hashlib.sha256(trace_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < sample_rate


def trace_skip_reason(trace: dict[str, Any]) -> str:
    if trace["state"] == "IN_PROGRESS":
        return "The trace is still in progress."
    if trace["request"] is None:
        return "No request: the trace's root span has no inputs."
    if trace["response"] is None:
        return "No response: the trace's root span has no outputs."
    return ""


def trace_item(trace: dict[str, Any], *, experiment_id: str) -> dict[str, Any]:
    """The item (ingest shape) of a trace as the adapter reads it."""
    started = datetime.fromtimestamp(trace["timestamp_ms"] / 1000, tz=timezone.get_current_timezone())
    metadata: dict[str, Any] = {
        "mlflow_experiment_id": experiment_id,
        "trace_name": trace["name"],
        "trace_timestamp": started.isoformat(),
        "latency_ms": trace["latency_ms"],
    }
    if trace["logged_model_id"]:
        metadata["logged_model_id"] = trace["logged_model_id"]
    if trace["tags"]:
        metadata["trace_tags"] = trace["tags"]
    return {
        "external_id": trace["trace_id"],
        "trace_id": trace["trace_id"],
        "request": trace["request"],
        "response": trace["response"],
        "retrieved_context": trace["retrieved_context"],
        "model_name": trace["model_name"],
        "model_version": trace["model_version"],
        "source": SOURCE,
        "metadata": metadata,
    }


def traces_ingest(
    *,
    project: Project,
    experiment: str,
    filter_string: str = "",
    since: datetime | None = None,
    sample_rate: float = 1.0,
    max_traces: int = 10_000,
    actor: Actor = None,
) -> TraceIngestResult:
    """Ingest a sample of an experiment's traces as items; see the module docstring.

    A pull of the project's source ``ingest_traces:<experiment>`` run here
    (``pipelines.sources.commands.traces_pull_inline``), read from ``since`` rather than from the
    source's watermark. ``experiment`` is an MLflow experiment name or id; ``filter_string`` MLflow's
    trace search syntax; at most ``max_traces`` traces are read. Raises ValueError for bad
    arguments, PermanentPipelineError for an unknown experiment or a filter MLflow refuses,
    TransientPipelineError when MLflow is unreachable.
    """
    from pipelines.sources.commands import traces_pull_inline  # the pull engine imports this module

    pull = traces_pull_inline(
        project=project,
        experiment=experiment,
        filter_string=filter_string,
        since=since,
        sample_rate=sample_rate,
        max_traces=max_traces,
        actor=actor,
    )
    if pull.status == "failed":
        raise PermanentPipelineError(pull.error, system="mlflow")
    return TraceIngestResult(
        experiment_id=str((pull.watermark_to or {}).get("experiment_id", "")),
        read=pull.scanned,
        created=pull.created,
        updated=pull.updated,
        unchanged=pull.unchanged,
        sampled_out=pull.sampled_out,
        skipped=dict(pull.skipped_reasons),
    )
