"""RAG outputs from MLflow traces into a project's review queue.

``traces_ingest`` pages through an experiment's traces, oldest first
(``mlflow_tracking.traces_search``: request, response and retrieved context read from the root and
RETRIEVER spans), keeps a deterministic sample, and hands the rows to reviewapp's ``items_ingest``
in batches, with ``external_id = trace_id`` and ``source = "mlflow-trace"``.

- **Sampling** is by a hash of the trace id, not by chance: the same traces are picked on every
  run, and the traces picked at rate 0.2 are among those picked at 0.5.
- **Idempotent**: a trace already ingested with the same content is left alone (counted as
  unchanged, not sent again); one whose content changed in MLflow (a late tag, say) is updated.
- **Never half-ingested**: a trace without a request or a response, still in progress, or whose
  row would not pass validation is skipped with its reason; the rest of its batch goes on.
- Each batch commits on its own, so an interrupted run is finished by running it again.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.utils import timezone

from pipelines.adapters import mlflow_tracking
from reviewapp.models import Item, Project
from reviewapp.services.ingest import items_ingest, items_validate

if TYPE_CHECKING:
    from reviewapp.usertypes import Actor

SOURCE = "mlflow-trace"
BATCH_SIZE = 500
# The Item fields a trace fills; equal values on all of them mean "nothing new".
COMPARED = ("request", "response", "retrieved_context", "model_name", "model_version", "trace_id", "source", "metadata")


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


def _flush(*, project: Project, rows: list[dict[str, Any]], result: TraceIngestResult, actor: Actor) -> None:
    if not rows:
        return
    _, errors = items_validate(rows)
    for error in errors:
        trace_id = rows[cast("int", error["index"])]["trace_id"]  # items_validate names each error's row
        result.skipped[trace_id] = f"Not a valid item: {error['field'] or '(row)'}: {error['message']}"
    valid = [row for row in rows if row["trace_id"] not in result.skipped]
    existing = {
        values["external_id"]: values
        for values in Item.objects.filter(
            project=project, external_id__in=[row["external_id"] for row in valid]
        ).values("external_id", *COMPARED)
    }
    changed = []
    for row in valid:
        stored = existing.get(row["external_id"])
        if stored is not None and all(stored[name] == row[name] for name in COMPARED):
            result.unchanged += 1
        else:
            changed.append(row)
    if changed:
        ingested = items_ingest(project=project, rows=changed, actor=actor, source=SOURCE)
        result.created += ingested.created
        result.updated += ingested.updated


def traces_ingest(
    *,
    project: Project,
    experiment: str,
    filter_string: str = "",
    since: datetime | None = None,
    sample_rate: float = 1.0,
    max_traces: int = 10_000,
    actor: Actor = None,
    batch_size: int = BATCH_SIZE,
) -> TraceIngestResult:
    """Ingest a sample of an experiment's traces as items; see the module docstring.

    ``experiment`` is an MLflow experiment name or id; ``filter_string`` MLflow's trace search
    syntax; ``since`` keeps traces started at or after it; at most ``max_traces`` traces are read.
    Raises ValueError for bad arguments, PermanentPipelineError for an unknown experiment or a
    filter MLflow refuses, TransientPipelineError when MLflow is unreachable.
    """
    if not experiment.strip():
        raise ValueError("Name an MLflow experiment (its name or id).")
    if not (isinstance(sample_rate, int | float) and math.isfinite(sample_rate) and 0 < sample_rate <= 1):
        raise ValueError(f"The sample rate must be above 0 and at most 1, not {sample_rate!r}.")
    if max_traces < 1:
        raise ValueError(f"The number of traces to read must be at least 1, not {max_traces}.")
    if not 1 <= batch_size <= settings.INGEST_MAX_ITEMS:
        raise ValueError(f"The batch size must be from 1 to {settings.INGEST_MAX_ITEMS}.")
    if since is not None and timezone.is_naive(since):
        since = timezone.make_aware(since)
    since_ms = int(since.timestamp() * 1000) if since is not None else None

    result = TraceIngestResult()
    seen: set[str] = set()
    pending: list[dict[str, Any]] = []
    token: str | None = None
    while result.read < max_traces:
        page = mlflow_tracking.traces_search(
            tracking_uri=settings.MLFLOW_TRACKING_URI,
            experiment=experiment,
            filter_string=filter_string,
            since_ms=since_ms,
            page_token=token,
            max_results=min(mlflow_tracking.TRACE_PAGE_MAX, max_traces - result.read),
        )
        result.experiment_id = page.experiment_id
        for trace in page.traces:
            if trace["trace_id"] in seen:  # a trace logged while paging can shift a page by one
                continue
            seen.add(trace["trace_id"])
            result.read += 1
            if not trace_sampled(trace["trace_id"], sample_rate):
                result.sampled_out += 1
                continue
            reason = trace_skip_reason(trace)
            if reason:
                result.skipped[trace["trace_id"]] = reason
                continue
            pending.append(trace_item(trace, experiment_id=page.experiment_id))
            if len(pending) >= batch_size:
                _flush(project=project, rows=pending, result=result, actor=actor)
                pending = []
        token = page.next_page_token
        if not token:
            break
    _flush(project=project, rows=pending, result=result, actor=actor)
    return result
