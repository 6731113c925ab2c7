"""MLflow tracking adapter: the only module that imports ``mlflow`` to log runs.

``import mlflow`` costs ~1.4 s and 165 MB (docs: toolchain §3), so it happens inside the functions
that need it, in the worker, never at Django import time. Every error leaves here as
``TransientPipelineError`` (server down, timeout, database locked: retry later) or
``PermanentPipelineError`` (a request MLflow refuses: retrying will not help), by the one mapping in
``mlflow_common``. Callers pass the tracking URI; MLflow's HTTP timeout and retries are set once at
process start (``mlflow_common.http_limits_environ``), not here.

Logging is idempotent per ``key``: the MLflow run carries the tag ``reviewdesk.key``; a finished
run with that tag is reused, and an unfinished one (an attempt that died half-way) is deleted
and logged again, so a retry never leaves two MLflow runs or a table with rows twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.adapters.errors import PermanentPipelineError, PipelineError
from pipelines.adapters.mlflow_common import store_error

SYSTEM = "mlflow"
KEY_TAG = "reviewdesk.key"
PARAMS_PER_BATCH = 100  # MLflow's log_batch limits
METRICS_PER_BATCH = 1000
PARAM_VALUE_MAX = 6000


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    experiment_id: str
    reused: bool = False  # an earlier attempt had already logged it


def _translate(exc: BaseException) -> PipelineError:
    return store_error(f"MLflow: {type(exc).__name__}: {str(exc)[:500]}", exc)


def _is_local_store(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("sqlite:", "file:", "postgresql:", "mysql:", "mssql:")) or "://" not in tracking_uri


def _experiment_id(client: Any, name: str, *, tracking_uri: str, artifact_root: str | None) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return str(experiment.experiment_id)
    location = None
    if artifact_root and _is_local_store(tracking_uri):
        # Without this a database-backed store puts artifacts under ./mlruns of whatever the cwd is.
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        location = f"{Path(artifact_root).resolve().as_uri()}/{safe}"
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # another worker created it just now
            raise
        return str(client.get_experiment_by_name(name).experiment_id)


def evaluation_run_log(
    *,
    tracking_uri: str,
    experiment_name: str,
    key: str,
    run_name: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    table: dict[str, list[Any]],
    table_file: str = "eval_results.json",
    artifact_root: str | None = None,
) -> LoggedRun:
    """Log one evaluation as one MLflow run: params, metrics, tags and the per-row table artifact."""
    try:
        from mlflow import MlflowClient
        from mlflow.entities import Metric, Param

        client = MlflowClient(tracking_uri=tracking_uri)
        experiment_id = _experiment_id(client, experiment_name, tracking_uri=tracking_uri, artifact_root=artifact_root)
        earlier = client.search_runs([experiment_id], filter_string=f"tags.`{KEY_TAG}` = '{key}'", max_results=20)
        for previous in earlier:
            if previous.info.status == "FINISHED":
                return LoggedRun(run_id=previous.info.run_id, experiment_id=experiment_id, reused=True)
            client.delete_run(previous.info.run_id)
        run = client.create_run(experiment_id, run_name=run_name, tags={**tags, KEY_TAG: key})
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        param_list = [Param(k, str(v)[:PARAM_VALUE_MAX]) for k, v in params.items()]
        metric_list = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None]
        for start in range(0, len(param_list), PARAMS_PER_BATCH):
            client.log_batch(run_id, params=param_list[start : start + PARAMS_PER_BATCH])
        for start in range(0, len(metric_list), METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=metric_list[start : start + METRICS_PER_BATCH])
        client.log_table(run_id, data=table, artifact_file=table_file)
        client.set_terminated(run_id, status="FINISHED")
        return LoggedRun(run_id=run_id, experiment_id=experiment_id)
    except Exception as exc:
        raise _translate(exc) from exc


# --- assessments on traces and evaluation datasets (curated labels back to MLflow) -------------
#
# Used by pipelines.datasets.assessments. Assessments are read and written with an explicit tracking URI
# (TracingClient), never through mlflow's global state; evaluation datasets have no such client
# API in MLflow 3.17 (``EvaluationDataset.merge_records`` reads the global store), so
# ``evaluation_dataset_merge`` sets the tracking URI of this process first — it is the one
# configured for the deployment anyway.


@dataclass(frozen=True)
class TraceAssessment:
    """An assessment of a trace, as plain data."""

    assessment_id: str
    kind: str  # "feedback" | "expectation"
    name: str
    value: Any
    rationale: str
    source_type: str
    source_id: str
    metadata: dict[str, str]
    valid: bool
    overrides: str
    span_id: str = ""  # set when it assesses one span (e.g. the retriever), not the whole trace
    create_time_ms: int | None = None


@dataclass(frozen=True)
class MlflowEvaluationDataset:
    dataset_id: str
    name: str
    records: int
    reused: bool  # found by its tag (an earlier attempt created it)


def _tracing_client(tracking_uri: str) -> Any:
    from mlflow.tracing.client import TracingClient

    return TracingClient(tracking_uri=tracking_uri)


def _missing(exc: BaseException) -> bool:
    from mlflow.exceptions import MlflowException

    return isinstance(exc, MlflowException) and exc.error_code == "RESOURCE_DOES_NOT_EXIST"


def trace_assessment_data(a: Any) -> TraceAssessment:
    """An ``mlflow.entities.Assessment`` as plain data (``info.assessments`` of a trace)."""
    is_feedback = getattr(a, "feedback", None) is not None
    created = getattr(a, "create_time_ms", None)
    return TraceAssessment(
        assessment_id=str(a.assessment_id),
        kind="feedback" if is_feedback else "expectation",
        name=str(a.name),
        value=a.value,
        rationale=str(getattr(a, "rationale", None) or ""),
        source_type=str(a.source.source_type) if a.source else "",
        source_id=str(a.source.source_id) if a.source else "",
        metadata={str(k): str(v) for k, v in (a.metadata or {}).items()},
        valid=a.valid is not False,
        overrides=str(a.overrides or ""),
        span_id=str(getattr(a, "span_id", None) or ""),
        create_time_ms=int(created) if created is not None else None,
    )


def trace_assessments_get(*, tracking_uri: str, trace_id: str) -> list[TraceAssessment] | None:
    """The trace's assessments (valid and superseded), or None when MLflow has no such trace."""
    try:
        client = _tracing_client(tracking_uri)
        try:
            info = client.get_trace_info(trace_id)
        except Exception as exc:
            if _missing(exc):
                return None
            raise
        if info is None:
            return None
        return [trace_assessment_data(a) for a in info.assessments or []]
    except Exception as exc:
        raise _translate(exc) from exc


def _assessment(
    *,
    kind: str,
    name: str,
    value: Any,
    source_id: str,
    rationale: str | None,
    metadata: dict[str, str],
    overrides: str | None = None,
) -> Any:
    from mlflow.entities import AssessmentSource, AssessmentSourceType, Expectation, Feedback

    source = AssessmentSource(source_type=AssessmentSourceType.HUMAN, source_id=source_id or "reviewdesk")
    if kind == "feedback":
        return Feedback(
            name=name, value=value, source=source, rationale=rationale or None, metadata=metadata, overrides=overrides
        )
    if kind == "expectation":
        return Expectation(name=name, value=value, source=source, metadata=metadata)
    raise PermanentPipelineError(f"Unknown assessment kind {kind!r}.", system=SYSTEM)


def trace_assessment_log(
    *,
    tracking_uri: str,
    trace_id: str,
    kind: str,
    name: str,
    value: Any,
    source_id: str,
    rationale: str | None = None,
    metadata: dict[str, str] | None = None,
    overrides: str | None = None,
) -> str:
    """Log a HUMAN feedback or expectation on the trace; its assessment id.

    ``overrides`` (feedback only) names the assessment this one replaces, as
    ``mlflow.override_feedback`` does: the old one stays, marked not valid.
    """
    try:
        client = _tracing_client(tracking_uri)
        entity = _assessment(
            kind=kind,
            name=name,
            value=value,
            source_id=source_id,
            rationale=rationale,
            metadata=dict(metadata or {}),
            overrides=overrides,
        )
        return str(client.log_assessment(trace_id, entity).assessment_id)
    except Exception as exc:
        raise _translate(exc) from exc


def trace_expectation_update(
    *,
    tracking_uri: str,
    trace_id: str,
    assessment_id: str,
    name: str,
    value: Any,
    source_id: str,
    metadata: dict[str, str] | None = None,
) -> str:
    """Change an expectation's value in place (expectations have no override chain)."""
    try:
        client = _tracing_client(tracking_uri)
        entity = _assessment(
            kind="expectation",
            name=name,
            value=value,
            source_id=source_id,
            rationale=None,
            metadata=dict(metadata or {}),
        )
        return str(client.update_assessment(trace_id, assessment_id, entity).assessment_id)
    except Exception as exc:
        raise _translate(exc) from exc


def trace_assessment_delete(*, tracking_uri: str, trace_id: str, assessment_id: str) -> None:
    try:
        client = _tracing_client(tracking_uri)
        client.delete_assessment(trace_id, assessment_id)
    except Exception as exc:
        if _missing(exc):
            return  # already gone: what we wanted
        raise _translate(exc) from exc


def evaluation_dataset_merge(
    *,
    tracking_uri: str,
    name: str,
    records: list[dict[str, Any]],
    tags: dict[str, str],
    key_tag: str,
    dataset_id: str = "",
    experiment_name: str | None = None,
    artifact_root: str | None = None,
) -> MlflowEvaluationDataset:
    """Create (or find) an MLflow evaluation dataset and upsert ``records`` into it.

    Idempotent: the dataset is found by ``dataset_id`` when given, else by the tag ``key_tag`` (set
    on creation, so an attempt that died after creating it is found again; a key without dots, as
    MLflow's dataset search does not match dotted tag keys); ``merge_records`` upserts by ``inputs``,
    so merging the same records again adds none. Needs a SQL-backed store.
    """
    try:
        import mlflow
        from mlflow import MlflowClient

        mlflow.set_tracking_uri(tracking_uri)  # merge_records reads the global store (see above)
        client = MlflowClient(tracking_uri=tracking_uri)
        experiment_ids = None
        if experiment_name:
            experiment_ids = [
                _experiment_id(client, experiment_name, tracking_uri=tracking_uri, artifact_root=artifact_root)
            ]
        dataset = None
        reused = False
        if dataset_id:
            try:
                dataset = client.get_dataset(dataset_id)
                reused = True
            except Exception as exc:
                if not _missing(exc):
                    raise
        if dataset is None:
            value = tags[key_tag].replace("'", "")
            found = client.search_datasets(filter_string=f"tags.{key_tag} = '{value}'", max_results=5)
            if len(found):
                dataset, reused = found[0], True
        if dataset is None:
            dataset = client.create_dataset(name=name, experiment_id=experiment_ids, tags=tags)
        if records:
            dataset.merge_records(records)
        count = len(dataset.to_df()) if records else 0
        return MlflowEvaluationDataset(
            dataset_id=str(dataset.dataset_id), name=str(dataset.name), records=count, reused=reused
        )
    except Exception as exc:
        raise _translate(exc) from exc


# --- traces read for ingest (RAG outputs into review) --------------------------------------------
#
# Used by pipelines.sources.traces. A trace becomes plain data in the Agent Evaluation shape:
#
# - ``request``: the root span's inputs. A ``messages`` list (also under ``request``) stays a chat;
#   a single text input (``question``, ``query``, ``request``, ``input``, ``prompt``, or the only
#   value) is that text; anything else is its JSON text. None when the root span has no inputs.
# - ``response``: the root span's outputs as text: a string as is; from a dict the first text of
#   ``response``, ``content``, ``choices[0].message.content``, ``output``, ``answer``, or the last
#   assistant message of ``messages``; else its JSON text. None when the root span has no outputs.
# - ``retrieved_context``: the outputs of the **last** RETRIEVER span (as Agent Evaluation and the
#   MLflow retrieval scorers read them), each MLflow ``Document`` as ``{content: page_content,
#   doc_uri: metadata.doc_uri}``.
# - ``model_name`` / ``model_version``: the trace tag, else metadata, ``model_name`` /
#   ``model_version`` (``mlflow.modelName`` / ``mlflow.modelVersion`` also count);
#   ``logged_model_id``: the metadata ``mlflow.modelId`` that ``mlflow.set_active_model`` records.
# - ``tags``: the trace's own tags and metadata, without MLflow's ``mlflow.*`` bookkeeping.

TRACE_PAGE_MAX = 100  # search_traces pages; spans are included, so keep pages small
_REQUEST_KEYS = ("question", "query", "request", "input", "prompt")
_RESPONSE_KEYS = ("response", "content", "choices", "output", "answer", "messages")
MODEL_NAME_KEYS = ("model_name", "mlflow.modelName")
MODEL_VERSION_KEYS = ("model_version", "mlflow.modelVersion")


@dataclass(frozen=True)
class TracePage:
    experiment_id: str
    traces: list[dict[str, Any]]
    next_page_token: str | None  # None: this was the last page


def _json_text(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _chat_messages(value: Any) -> list[dict[str, Any]] | None:
    if not isinstance(value, list) or not value or not all(isinstance(m, dict) for m in value):
        return None
    out = []
    for m in value:
        content = m.get("content")
        if isinstance(content, list):  # OpenAI content parts: keep the text ones
            content = "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("text"))
        out.append({"role": m.get("role"), "content": "" if content is None else content})
    return out


def trace_request(inputs: Any) -> str | dict[str, Any] | None:
    """The request of a root span's inputs (see the section comment); None when there is none."""
    if inputs is None or inputs == "" or inputs == {}:
        return None
    if isinstance(inputs, str):
        return inputs
    if isinstance(inputs, dict):
        nested = inputs.get("request")
        if isinstance(nested, dict) and "messages" in nested:
            inputs = nested
        messages = _chat_messages(inputs.get("messages"))
        if messages is not None:
            return {"messages": messages}
        for key in _REQUEST_KEYS:
            if isinstance(inputs.get(key), str) and inputs[key]:
                return str(inputs[key])
        if len(inputs) == 1:
            only = next(iter(inputs.values()))
            if isinstance(only, str) and only:
                return only
    return _json_text(inputs)


def trace_response(outputs: Any) -> str | None:
    """The answer text of a root span's outputs (see the section comment); None when there is none."""
    if outputs is None or outputs == "" or outputs == {}:
        return None
    if isinstance(outputs, str):
        return outputs
    if isinstance(outputs, dict):
        for key in _RESPONSE_KEYS:
            value = outputs.get(key)
            if key == "choices" and isinstance(value, list) and value and isinstance(value[0], dict):
                value = (value[0].get("message") or {}).get("content")
            elif key == "messages":
                messages = _chat_messages(value) or []
                value = next((m["content"] for m in reversed(messages) if m["role"] == "assistant"), None)
            if isinstance(value, str) and value:
                return value
    return _json_text(outputs)


def _retrieved_context(spans: list[Any]) -> list[dict[str, str]]:
    retrievers = [s for s in spans if str(getattr(s, "span_type", "")) == "RETRIEVER"]
    if not retrievers:
        return []
    last = max(retrievers, key=lambda s: s.start_time_ns or 0)
    docs = last.outputs if isinstance(last.outputs, list) else []
    chunks = []
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        content = doc.get("page_content", doc.get("content"))
        if content is None:
            continue
        meta = doc.get("metadata") or {}
        uri = meta.get("doc_uri") if isinstance(meta, dict) else None
        chunks.append({"content": str(content), "doc_uri": str(uri or doc.get("doc_uri") or "")})
    return chunks


def _first(keys: tuple[str, ...], *sources: dict[str, str]) -> str:
    for source in sources:
        for key in keys:
            if source.get(key):
                return str(source[key])
    return ""


def _trace_dict(trace: Any) -> dict[str, Any]:
    from mlflow.tracing.constant import TraceMetadataKey

    info = trace.info
    spans = list(trace.data.spans or [])
    root = next((s for s in spans if s.parent_id is None), None)
    tags = {str(k): str(v) for k, v in (info.tags or {}).items()}
    meta = {str(k): str(v) for k, v in (info.trace_metadata or {}).items()}
    state = getattr(info.state, "value", info.state)
    return {
        "trace_id": str(info.trace_id),
        "timestamp_ms": int(info.request_time),
        "latency_ms": info.execution_duration,
        "state": str(state),
        "name": tags.get("mlflow.traceName", root.name if root else ""),
        "request": trace_request(root.inputs) if root else None,
        "response": trace_response(root.outputs) if root else None,
        "retrieved_context": _retrieved_context(spans),
        "model_name": _first(MODEL_NAME_KEYS, tags, meta),
        "model_version": _first(MODEL_VERSION_KEYS, tags, meta),
        "logged_model_id": meta.get(TraceMetadataKey.MODEL_ID, ""),
        "tags": {k: v for k, v in {**meta, **tags}.items() if not k.startswith("mlflow.")},
        # Feedback and expectations on the trace (end users' HUMAN feedback among them).
        "assessments": [trace_assessment_data(a) for a in info.assessments or []],
    }


def _experiment_for_traces(client: Any, experiment: str) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(experiment)
    if found is None and experiment.isdigit():
        try:
            found = client.get_experiment(experiment)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
    if found is None or found.lifecycle_stage == "deleted":
        raise PermanentPipelineError(f"MLflow has no experiment named or numbered '{experiment}'.", system=SYSTEM)
    return str(found.experiment_id)


def traces_search(
    *,
    tracking_uri: str,
    experiment: str,
    filter_string: str = "",
    since_ms: int | None = None,
    page_token: str | None = None,
    max_results: int = TRACE_PAGE_MAX,
) -> TracePage:
    """One page of an experiment's traces, oldest first, as plain dicts (see the section comment).

    ``experiment`` is a name, or an id; ``filter_string`` is MLflow's trace search syntax
    (e.g. ``tag.env = 'prod'``); ``since_ms`` keeps traces that started at or after it.
    """
    try:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri)
        experiment_id = _experiment_for_traces(client, experiment)
        clauses = [
            c
            for c in (filter_string.strip(), f"trace.timestamp_ms >= {int(since_ms)}" if since_ms is not None else "")
            if c
        ]
        page = client.search_traces(
            locations=[experiment_id],
            filter_string=" AND ".join(clauses) or None,
            max_results=max(1, min(max_results, TRACE_PAGE_MAX)),
            order_by=["timestamp_ms ASC", "request_id ASC"],  # a total order, so offset pages are stable
            page_token=page_token,
            include_spans=True,
        )
        token = page.token
        if isinstance(token, bytes):
            token = token.decode()
        traces = [_trace_dict(t) for t in page]
        return TracePage(experiment_id=experiment_id, traces=traces, next_page_token=token if traces else None)
    except Exception as exc:
        raise _translate(exc) from exc


@dataclass(frozen=True)
class LoggedTrace:
    trace_id: str
    experiment_id: str


def trace_log(
    *,
    tracking_uri: str,
    artifact_root: str | None,
    experiment: str,
    name: str,
    inputs: dict[str, Any],
    outputs: dict[str, Any],
    retrieved: list[dict[str, str]],
    tags: dict[str, str],
    start_ms: int,
    duration_ms: int,
) -> LoggedTrace:
    """Log one RAG answer as a trace (a CHAIN root, a RETRIEVER child) started at ``start_ms``.

    The section comment above says how it reads back: ``tags`` carry ``model_name`` /
    ``model_version``; ``retrieved`` (``{content, doc_uri}``) become MLflow ``Document`` outputs.
    The start time is given so a backfill can log the past. Written before it returns when
    MLFLOW_ENABLE_ASYNC_TRACE_LOGGING is false (set at process start: ``http_limits_environ``).
    """
    try:
        import mlflow
        from mlflow import MlflowClient
        from mlflow.entities import SpanType

        # The span exporter writes to the global tracking URI, not to the client's.
        mlflow.set_tracking_uri(tracking_uri)
        client = MlflowClient(tracking_uri=tracking_uri)
        experiment_id = _experiment_id(client, experiment, tracking_uri=tracking_uri, artifact_root=artifact_root)
        start_ns = int(start_ms) * 1_000_000
        end_ns = start_ns + max(1, int(duration_ms)) * 1_000_000
        root = client.start_trace(
            name,
            span_type=SpanType.CHAIN,
            inputs=inputs,
            tags=tags,
            experiment_id=experiment_id,
            start_time_ns=start_ns,
        )
        child = client.start_span(
            "retrieve",
            trace_id=root.trace_id,
            parent_id=root.span_id,
            span_type=SpanType.RETRIEVER,
            inputs=inputs,
            start_time_ns=start_ns + 1_000,
        )
        documents = [{"page_content": r["content"], "metadata": {"doc_uri": r["doc_uri"]}} for r in retrieved]
        client.end_span(
            root.trace_id, child.span_id, outputs=documents, end_time_ns=start_ns + (end_ns - start_ns) // 3
        )
        client.end_trace(root.trace_id, outputs=outputs, end_time_ns=end_ns)
        return LoggedTrace(trace_id=str(root.trace_id), experiment_id=experiment_id)
    except Exception as exc:
        raise _translate(exc) from exc


def experiment_has_traces(*, tracking_uri: str, experiment: str) -> bool:
    """True when the experiment (a name) exists and holds at least one trace."""
    try:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri)
        found = client.get_experiment_by_name(experiment)
        if found is None or found.lifecycle_stage == "deleted":
            return False
        return bool(client.search_traces(locations=[str(found.experiment_id)], max_results=1, include_spans=False))
    except Exception as exc:
        raise _translate(exc) from exc
