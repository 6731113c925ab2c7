"""Readers: one per kind of source, ``read(source, watermark, limit) -> Batch``.

A reader returns at most ``limit`` rows after ``watermark``, oldest first, each as an item in the
ingest shape with the signals the sampling rules look at, and the watermark just past the rows it
returned. It writes nothing: the pull commits the rows and the new watermark together.

- ``mlflow_traces``: the experiment's traces through ``pipelines.adapters.mlflow_tracking``. The
  watermark is ``{"timestamp_ms": t, "ids": [...]}``: the start time of the last trace read and
  the ids read at that millisecond, so the next read starts at ``t`` and skips those ids (traces
  sharing a millisecond are neither lost nor read twice). A trace still in progress ends the batch
  until it finishes (or is older than ``IN_PROGRESS_WAIT_SECONDS``, then it is skipped).
- ``delta_table`` / ``uc_table``: a slot for the table readers (``pipelines.adapters.delta`` /
  ``databricks``); rows are mapped by the source's column mapping with :func:`mapped_row`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings as django_settings

from pipelines.adapters import mlflow_tracking
from pipelines.adapters.errors import PermanentPipelineError
from pipelines.models import Source, SourceKind
from pipelines.sources.config import ColumnMapping, mapping_of, settings_of
from pipelines.sources.sampling import Signals, is_thumbs_down, rules_need_assessments, rules_validate
from pipelines.sources.traces import trace_item, trace_skip_reason

IN_PROGRESS_WAIT_SECONDS = 3600


@dataclass
class SourceRow:
    key: str  # the row's id in the source (a trace id), named in skipped reasons
    item: dict[str, Any]  # the Item ingest shape
    signals: Signals = field(default_factory=Signals)
    skip_reason: str = ""  # not an item (no response, still in progress, ...)


@dataclass
class Batch:
    rows: list[SourceRow]
    watermark: dict[str, Any]  # just past the rows returned
    scanned: int  # rows read from the source (== len(rows))
    done: bool  # nothing more to read for now


Reader = Callable[[Source, dict[str, Any], int], Batch]


# --- MLflow traces -----------------------------------------------------------------------------------


def _trace_signals(trace: dict[str, Any], assessments: list[Any] | None) -> Signals:
    signals = Signals(
        trace_id=trace["trace_id"],
        model_name=trace["model_name"],
        model_version=trace["model_version"],
        error=trace["state"] == "ERROR",
        tags=dict(trace["tags"]),
    )
    for a in assessments or []:
        if a.kind != "feedback" or not a.valid:
            continue
        if a.source_type == "HUMAN":
            # An end user's (or a reviewer's) verdict on the answer: a thumbs-down takes the trace.
            if is_thumbs_down(a.value):
                signals.thumbs_down = True
            continue
        value = a.value
        if isinstance(value, bool):
            value = 1.0 if value else 0.0
        if isinstance(value, int | float):
            signals.scores[a.name] = float(value)
        elif isinstance(value, str) and value.lower() in ("yes", "no"):  # judges' yes/no verdicts
            signals.scores[a.name] = 1.0 if value.lower() == "yes" else 0.0
    return signals


def mlflow_traces_read(source: Source, watermark: dict[str, Any], limit: int) -> Batch:
    config = settings_of(source)
    rules, _ = rules_validate(source.rules or [])
    with_assessments = rules_need_assessments(rules)
    since_ms: int | None = watermark.get("timestamp_ms")
    if since_ms is None and config.since is not None:
        since_ms = int(config.since.timestamp() * 1000)
    seen = set(watermark.get("ids") or []) if watermark.get("timestamp_ms") is not None else set()
    last_ms, last_ids = since_ms, set(seen)
    rows: list[SourceRow] = []
    token: str | None = None
    done = False
    now_ms = int(time.time() * 1000)
    experiment_id = watermark.get("experiment_id", "")
    while len(rows) < limit:
        page = mlflow_tracking.traces_search(
            tracking_uri=django_settings.MLFLOW_TRACKING_URI,
            experiment=config.experiment,
            filter_string=config.filter,
            since_ms=since_ms,
            page_token=token,
            max_results=min(mlflow_tracking.TRACE_PAGE_MAX, limit - len(rows) + len(seen)),
        )
        experiment_id = page.experiment_id
        stop = False
        for trace in page.traces:
            trace_id, stamp = trace["trace_id"], int(trace["timestamp_ms"])
            if (stamp == since_ms and trace_id in seen) or (stamp == last_ms and trace_id in last_ids):
                continue  # read by an earlier batch, or shifted onto this page by a newly logged trace
            if trace["state"] == "IN_PROGRESS" and now_ms - stamp < IN_PROGRESS_WAIT_SECONDS * 1000:
                stop = done = True  # wait for it: the watermark must not pass a trace still being written
                break
            if len(rows) >= limit:
                stop = True
                break
            if stamp != last_ms:
                last_ms, last_ids = stamp, set()
            last_ids.add(trace_id)
            reason = trace_skip_reason(trace)
            assessments = None
            if with_assessments and not reason:
                assessments = mlflow_tracking.trace_assessments_get(
                    tracking_uri=django_settings.MLFLOW_TRACKING_URI, trace_id=trace_id
                )
            rows.append(
                SourceRow(
                    key=trace_id,
                    item=trace_item(trace, experiment_id=page.experiment_id),
                    signals=_trace_signals(trace, assessments),
                    skip_reason=reason,
                )
            )
        token = page.next_page_token
        if stop:
            break
        if not token:
            done = True
            break
    if not rows:
        return Batch(rows=[], watermark=dict(watermark), scanned=0, done=True)
    new_watermark = {"timestamp_ms": last_ms, "ids": sorted(last_ids), "experiment_id": experiment_id}
    return Batch(rows=rows, watermark=new_watermark, scanned=len(rows), done=done)


# --- tables ------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _context(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [{"content": value}]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return [{"content": str(value)}]
    return [c if isinstance(c, dict) else {"content": str(c)} for c in value]


def _request(value: Any) -> Any:
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("{"):
            try:
                parsed = json.loads(stripped)
            except ValueError:
                return value
            if isinstance(parsed, dict):
                return mlflow_tracking.trace_request(parsed)
        return value
    if isinstance(value, dict):
        return mlflow_tracking.trace_request(value)
    return _text(value)


def mapped_row(record: dict[str, Any], mapping: ColumnMapping, *, source_name: str) -> SourceRow:
    """A table row as an item and its signals, through the source's column mapping."""

    def col(name: str | None) -> Any:
        return record.get(name) if name else None

    request, response = col(mapping.request), col(mapping.response)
    trace_id = _text(col(mapping.trace_id))
    external_id = _text(col(mapping.external_id)) or trace_id
    item: dict[str, Any] = {
        "request": _request(request) if request is not None else None,
        "response": mlflow_tracking.trace_response(response) if response is not None else None,
        "retrieved_context": _context(col(mapping.retrieved_context)),
        "model_name": _text(col(mapping.model_name)),
        "model_version": _text(col(mapping.model_version)),
        "trace_id": trace_id,
        "source": source_name,
        "metadata": {name: _text(record.get(name)) for name in mapping.metadata if name in record},
    }
    if mapping.timestamp and record.get(mapping.timestamp) is not None:
        item["metadata"]["timestamp"] = _text(record.get(mapping.timestamp))
    if not external_id:  # no id column: the content names the row, so a re-read finds the same item
        digest = hashlib.sha256(json.dumps([request, response], default=str, sort_keys=True).encode()).hexdigest()
        external_id = f"row-{digest[:32]}"
    item["external_id"] = external_id
    feedback = col(mapping.feedback)
    error = col(mapping.error)
    signals = Signals(
        trace_id=trace_id or external_id,
        model_name=item["model_name"],
        model_version=item["model_version"],
        thumbs_down=feedback is not None and is_thumbs_down(feedback),
        error=bool(error) and str(error).strip().lower() not in ("false", "0", "none", "null", "ok", "200"),
        tags=item["metadata"],
    )
    reason = ""
    if item["request"] in (None, ""):
        reason = f"No request: the column {mapping.request!r} is empty."
    elif item["response"] in (None, ""):
        reason = f"No response: the column {mapping.response!r} is empty."
    return SourceRow(key=external_id, item=item, signals=signals, skip_reason=reason)


def _table_reader(kind: str, module: str, function: str) -> Reader:
    """The slot of a table reader: the adapter's function when it exists, else a clear refusal."""

    def read(source: Source, watermark: dict[str, Any], limit: int) -> Batch:
        import importlib

        adapter = importlib.import_module(module)
        if not hasattr(adapter, function):
            raise PermanentPipelineError(
                f"Reading {SourceKind(kind).label} sources is not available yet ({module}.{function} is missing).",
                system="sources",
            )
        wired = TABLE_READERS.get(kind)
        if wired is None:
            raise PermanentPipelineError(
                f"Reading {SourceKind(kind).label} sources is not wired yet ({module}.{function} exists).",
                system="sources",
            )
        return wired(source, watermark, limit)

    return read


# The table readers proper (pipelines.adapters.delta.table_changes, the Databricks SQL reader), each
# mapping its records with mapped_row(record, mapping_of(source), source_name=source.name).
TABLE_READERS: dict[str, Reader] = {}

READERS: dict[str, Reader] = {
    SourceKind.MLFLOW_TRACES: mlflow_traces_read,
    SourceKind.DELTA_TABLE: _table_reader(SourceKind.DELTA_TABLE, "pipelines.adapters.delta", "table_changes"),
    SourceKind.UC_TABLE: _table_reader(SourceKind.UC_TABLE, "pipelines.adapters.databricks", "table_read"),
}


def reader_for(kind: str) -> Reader:
    reader = READERS.get(kind)
    if reader is None:
        raise PermanentPipelineError(f"A {kind} source is not read by pulls (it is pushed to).", system="sources")
    return reader


__all__ = ["Batch", "Reader", "SourceRow", "mapped_row", "mapping_of", "reader_for"]
