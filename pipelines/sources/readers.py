"""Readers: one per kind of source, ``read(source, watermark, limit) -> Batch``.

A reader returns at most ``limit`` rows after ``watermark``, oldest first, each as an item in the
ingest shape with the signals the sampling rules look at, and the watermark just past the rows it
returned. It writes nothing: the pull commits the rows and the new watermark together.

- ``mlflow_traces``: the experiment's traces through ``pipelines.adapters.mlflow_tracking``. The
  watermark is ``{"timestamp_ms": t, "ids": [...]}``: the start time of the last trace read and
  the ids read at that millisecond, so the next read starts at ``t`` and skips those ids (traces
  sharing a millisecond are neither lost nor read twice). A trace still in progress ends the batch
  until it finishes (or is older than ``IN_PROGRESS_WAIT_SECONDS``, then it is skipped). The search
  returns each trace's assessments with it (no call per trace): they feed the rules' signals and the
  pull stores the HUMAN feedback among them for the rows it takes.
- ``delta_table`` / ``uc_table``: ``pipelines.adapters.delta.delta_table_read`` (by table version)
  and ``pipelines.adapters.databricks.uc_table_read`` (SQL statements, by a watermark column), with
  the source's column mapping; their watermarks are stored as they give them (``as_dict``). The
  feedback and error columns are read as metadata and become the row's signals.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings as django_settings

from pipelines.adapters import mlflow_tracking
from pipelines.adapters.errors import PermanentPipelineError
from pipelines.adapters.table_rows import JSONISH, json_value, to_request, to_response, to_text
from pipelines.models import Source, SourceKind
from pipelines.sources.config import ColumnMapping, mapping_of, settings_of
from pipelines.sources.sampling import (
    ErrorRule,
    MatchRule,
    PercentRule,
    Rule,
    Signals,
    is_thumbs_down,
    rules_validate,
    traces_sampled,
)
from pipelines.sources.traces import trace_item, trace_skip_reason

IN_PROGRESS_WAIT_SECONDS = 3600


@dataclass
class SourceRow:
    key: str  # the row's id in the source (a trace id), named in skipped reasons
    item: dict[str, Any]  # the Item ingest shape
    signals: Signals = field(default_factory=Signals)
    skip_reason: str = ""  # not an item (no response, still in progress, ...)
    # MLflow traces: the trace's assessments, read with it (end users' feedback is stored from them).
    assessments: list[Any] = field(default_factory=list)


@dataclass
class Batch:
    rows: list[SourceRow]
    watermark: dict[str, Any]  # just past the rows returned
    scanned: int  # rows read from the source (len(rows), plus rows no rule could take, left unbuilt)
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
            # The search returns each trace's assessments: no call per trace for the rules or feedback.
            assessments = list(trace.get("assessments") or [])
            rows.append(
                SourceRow(
                    key=trace_id,
                    item=trace_item(trace, experiment_id=page.experiment_id),
                    signals=_trace_signals(trace, assessments),
                    skip_reason=reason,
                    assessments=assessments,
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


# Item fields the adapters' table readers fill (pipelines.adapters.table_rows.TARGET_FIELDS).
TABLE_FIELDS = (
    "request",
    "response",
    "retrieved_context",
    "model_version",
    "model_name",
    "trace_id",
    "external_id",
    "timestamp",
)
FALSY = frozenset({"", "false", "0", "none", "null", "ok", "200"})


def _table_args(source: Source) -> tuple[dict[str, str], list[str], ColumnMapping]:
    """The adapter's mapping and metadata columns; the feedback and error columns ride in metadata."""
    mapping = mapping_of(source)
    fields = {name: getattr(mapping, name) for name in TABLE_FIELDS if getattr(mapping, name)}
    extra = [c for c in (mapping.feedback, mapping.error) if c]
    return fields, list(dict.fromkeys([*mapping.metadata, *extra])), mapping


def _signal(metadata: dict[str, Any], column: str | None, kept: list[str]) -> Any:
    """A signal column's value; taken out of the item's metadata unless also mapped to metadata."""
    if not column:
        return None
    return metadata.get(column) if column in kept else metadata.pop(column, None)


def _table_row(row: dict[str, Any], mapping: ColumnMapping, *, source_name: str) -> SourceRow:
    """An adapter row (item-shaped, see pipelines.adapters.table_rows) as a SourceRow with its signals."""
    metadata = dict(row.get("metadata") or {})
    feedback = _signal(metadata, mapping.feedback, mapping.metadata)
    error = _signal(metadata, mapping.error, mapping.metadata)
    stamp = row.get("timestamp")
    if stamp is not None:
        metadata["timestamp"] = _text(stamp)
    trace_id = row.get("trace_id") or ""
    item: dict[str, Any] = {
        "request": row.get("request"),
        "response": row.get("response"),
        "retrieved_context": row.get("retrieved_context") or [],
        "model_name": row.get("model_name") or "",
        "model_version": row.get("model_version") or "",
        "trace_id": trace_id,
        "source": source_name,
        "metadata": metadata,
    }
    external_id = row.get("external_id") or trace_id
    if not external_id:  # no id column: the content names the row, so a re-read finds the same item
        digest = hashlib.sha256(
            json.dumps([item["request"], item["response"]], default=str, sort_keys=True).encode()
        ).hexdigest()
        external_id = f"row-{digest[:32]}"
    item["external_id"] = external_id
    signals = Signals(
        trace_id=trace_id or external_id,
        model_name=item["model_name"],
        model_version=item["model_version"],
        thumbs_down=feedback is not None and is_thumbs_down(feedback),
        error=bool(error) and str(error).strip().lower() not in FALSY,
        tags={k: _text(v) for k, v in metadata.items()},
    )
    reason = ""
    if item["request"] in (None, ""):
        reason = f"No request: the column {mapping.request!r} is empty."
    elif item["response"] in (None, ""):
        reason = f"No response: the column {mapping.response!r} is empty."
    return SourceRow(key=external_id, item=item, signals=signals, skip_reason=reason)


def _first_batch(batches: Any, watermark: dict[str, Any], source: Source, mapping: ColumnMapping) -> Batch:
    try:
        batch = next(iter(batches))
    except StopIteration:
        return Batch(rows=[], watermark=dict(watermark), scanned=0, done=True)
    rows = [_table_row(row, mapping, source_name=source.name) for row in batch.rows]
    return Batch(rows=rows, watermark=batch.watermark.as_dict(), scanned=batch.scanned, done=False)


# --- sampling before building rows ----------------------------------------------------------------

RowPredicate = Callable[[dict[str, list[Any]]], list[bool]]


def _text_of(value: Any) -> str:
    """A text field's value as ``_table_row`` sees it (the adapter's conversion, None as "")."""
    return to_text(value) or ""


def _may_be_empty(value: Any, convert: Callable[[Any], Any]) -> bool:
    """Whether the converted request/response is empty (the row is then skipped, not sampled)."""
    if type(value) is str and value[:1] not in JSONISH:
        return False  # plain text, kept as it is
    return convert(value) in (None, "")


def table_prefilter(rules: list[Rule], mapping: ColumnMapping) -> tuple[list[str], RowPredicate] | None:
    """Columns and a predicate saying which rows of a table batch any rule could take (or that would be
    skipped), from those columns alone; None when the rules need the whole row (or no rules: take all).

    The rows it leaves out are exactly rows that ``decide`` would sample out: each rule is the same test
    on the same values as ``_table_row`` gives them (``trace_sampled`` for a percentage). ``thumbs_down``
    (the feedback API is joined by trace id) and ``canary`` are not evaluated here: with one of them,
    every row is built. ``score_below`` never takes a table row (tables carry no scores).
    """
    if not rules or any(rule.kind in ("thumbs_down", "canary") for rule in rules):
        return None
    needs_id = any(rule.kind == "percent" for rule in rules)
    if needs_id and not (mapping.trace_id or mapping.external_id):
        return None  # the id is a hash of the content: build the rows
    kept = set(mapping.metadata)
    tests: list[tuple[str, Callable[[dict[str, list[Any]], int], list[bool]]]] = []
    columns = [mapping.request, mapping.response]
    for rule in rules:
        spec = rule.spec
        if isinstance(spec, ErrorRule) and mapping.error:
            error_column = mapping.error
            columns.append(error_column)

            def error_test(cols: dict[str, list[Any]], n: int, c: str = error_column) -> list[bool]:
                out = []
                for v in cols[c]:
                    value = json_value(v)
                    out.append(bool(value) and str(value).strip().lower() not in FALSY)
                return out

            tests.append((rule.kind, error_test))
        elif isinstance(spec, MatchRule) and spec.key in kept and spec.key != "timestamp":
            key, wanted = spec.key, spec.value
            columns.append(key)

            def match_test(cols: dict[str, list[Any]], n: int, c: str = key, want: str = wanted) -> list[bool]:
                return [_text(json_value(v)) == want for v in cols[c]]

            tests.append((rule.kind, match_test))
        elif isinstance(spec, PercentRule):
            share = spec.percent / 100

            def percent_test(cols: dict[str, list[Any]], n: int, rate: float = share) -> list[bool]:
                ids = _signal_ids(cols, mapping, n)
                # A row without an id is named by a hash of its content: built, and decided whole.
                return [s or i is None for s, i in zip(traces_sampled(ids, rate), ids, strict=True)]

            tests.append((rule.kind, percent_test))
        elif isinstance(spec, MatchRule) and spec.key == "timestamp":
            return None  # the row's timestamp as text: built, and decided whole
        # Otherwise the rule cannot take a table row: error without an error column, a match on a key
        # the row's metadata does not carry, score_below.
    for name in (mapping.trace_id, mapping.external_id):
        if needs_id and name:
            columns.append(name)
    request, response = mapping.request, mapping.response

    def predicate(cols: dict[str, list[Any]]) -> list[bool]:
        n = len(cols[request])
        keep = [
            _may_be_empty(q, to_request) or _may_be_empty(a, to_response)
            for q, a in zip(cols[request], cols[response], strict=True)
        ]
        for _, test in tests:
            keep = [k or t for k, t in zip(keep, test(cols, n), strict=True)]
        return keep

    return list(dict.fromkeys(columns)), predicate


def _signal_ids(cols: dict[str, list[Any]], mapping: ColumnMapping, n: int) -> list[str | None]:
    """The id the percent rule hashes, per row (``Signals.trace_id``); None when it would be a content hash."""
    trace_ids = [_text_of(v) for v in cols[mapping.trace_id]] if mapping.trace_id else [""] * n
    if not mapping.external_id:
        return [t or None for t in trace_ids]
    return [t or _text_of(e) or None for t, e in zip(trace_ids, cols[mapping.external_id], strict=True)]


def delta_table_read(source: Source, watermark: dict[str, Any], limit: int) -> Batch:
    from pipelines.adapters import delta
    from pipelines.wiring import delta_config

    config = settings_of(source)
    fields, metadata, mapping = _table_args(source)
    key = _read_key(source, watermark, limit)
    left_open = _OPEN_READS.pop(key, None)
    if left_open is not None:
        return _next_batch(left_open, watermark, source, mapping, limit)
    rules, _ = rules_validate(source.rules or [])
    batches = delta.delta_table_read(
        delta_config(),
        uri=config.uri,
        mapping=fields,
        metadata_columns=metadata,
        watermark=delta.DeltaWatermark.from_dict(watermark),
        batch_size=limit,
        keep=table_prefilter(rules, mapping),
    )
    return _next_batch(iter(batches), watermark, source, mapping, limit)


# Delta reads left open after a batch, by (source, what it read, where it stands): the pull asks next
# for the batch after the watermark it just committed, and this read goes on from there. Reopening the
# table for every batch re-read the current file from its start up to the offset (a 1,000,000-row
# table in batches of 500 decoded some 100 million rows). A read covers the table versions present
# when it began; a changed source (settings, mapping, rules) or another watermark opens a new one.
_OPEN_READS: dict[str, Iterator[Any]] = {}
OPEN_READS_KEPT = 4


def _read_key(source: Source, watermark: dict[str, Any], limit: int) -> str:
    return json.dumps(
        [source.pk, source.settings, source.column_mapping, source.rules, limit, watermark], sort_keys=True, default=str
    )


def _next_batch(
    batches: Iterator[Any], watermark: dict[str, Any], source: Source, mapping: ColumnMapping, limit: int
) -> Batch:
    batch = _first_batch(batches, watermark, source, mapping)
    if batch.scanned or batch.watermark != watermark:
        while len(_OPEN_READS) >= OPEN_READS_KEPT:
            _OPEN_READS.pop(next(iter(_OPEN_READS)))
        _OPEN_READS[_read_key(source, batch.watermark, limit)] = batches
    return batch


def uc_table_read(source: Source, watermark: dict[str, Any], limit: int) -> Batch:
    from pipelines.adapters import databricks
    from pipelines.wiring import databricks_config

    config = settings_of(source)
    fields, metadata, mapping = _table_args(source)
    column = config.watermark_column or mapping.timestamp
    if not column:
        raise PermanentPipelineError(
            "A Unity Catalog source needs a watermark column: set settings.watermark_column or map timestamp.",
            system="sources",
        )
    batches = databricks.uc_table_read(
        databricks_config(),
        table=config.table,
        mapping=fields,
        watermark_column=column,
        metadata_columns=metadata,
        watermark=databricks.UcWatermark.from_dict(watermark),
        batch_size=limit,
        warehouse_id=config.warehouse_id or None,
    )
    return _first_batch(batches, watermark, source, mapping)


READERS: dict[str, Reader] = {
    SourceKind.MLFLOW_TRACES: mlflow_traces_read,
    SourceKind.DELTA_TABLE: delta_table_read,
    SourceKind.UC_TABLE: uc_table_read,
}


def reader_for(kind: str) -> Reader:
    reader = READERS.get(kind)
    if reader is None:
        raise PermanentPipelineError(f"A {kind} source is not read by pulls (it is pushed to).", system="sources")
    return reader


__all__ = ["Batch", "Reader", "SourceRow", "reader_for"]
