"""Generation targets: where a run's responses come from before they are scored.

``target`` is one of

- ``{"kind": "stored"}``: the responses already stored on the items (no generation);
- ``{"kind": "mlflow_model", "model_uri": "models:/<name>/<version>"}``: a registered MLflow model
  loaded in the worker (once per process) and asked for each row's request;
- ``{"kind": "endpoint", "endpoint": "<name>"}``: a chat endpoint of the registry (Databricks
  serving or OpenAI-compatible), or an ``mlflow_model`` endpoint, which is the same as the
  model target.

Contract for the run executor: :func:`responses_generate` returns one :class:`GeneratedResponse`
per row, in order. A row that fails (the model raised on it, the endpoint timed out or answered
garbage after its retries) gets ``error`` and an empty response; one bad row never raises. Only
a target that cannot work at all raises: ``PermanentPipelineError`` (the model version does not
exist or cannot be loaded, the endpoint was removed or disabled) or ``TransientPipelineError``
(the registry is unreachable; retry the chunk later).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evaluations.models.endpoints import MODEL_URI_RE
from evaluations.scorers.registry import ScoreInput
from evaluations.target_input import EndpointTarget, ModelTarget, target_parse
from reviewapp.errors import ValidationFailed
from reviewapp.typed_input import field_error

if TYPE_CHECKING:
    from pipelines.adapters.llm_client import EndpointConfig
    from reviewapp.models import Project

GENERATION_MAX_TOKENS = 1024


@dataclass
class GeneratedResponse:
    response: str
    retrieved_context: list[dict[str, Any]] | None
    latency_ms: float | None
    error: str = ""


def model_uri_problem(*, project: Project, model_uri: str) -> str | None:
    """Why ``project`` may not load ``model_uri`` (a version of another registered model), or None."""
    match = MODEL_URI_RE.match(model_uri.strip())
    if match is None:
        return None  # the form is checked elsewhere
    allowed = project.registered_models()
    if match.group("name") in allowed:
        return None
    if not allowed:
        return "This project names no registered model; an admin sets it on the project before models are evaluated."
    return f"Only versions of this project's registered model ({', '.join(sorted(allowed))}) may be used here."


def target_validate(target: Any, *, project: Project | None = None) -> dict[str, Any]:
    """The target in canonical form, or ValidationFailed naming the bad field (``target.model_uri``, ...).

    The shape is :func:`evaluations.target_input.target_parse`'s; with ``project``, a model must be a
    version of one of the project's registered models. An endpoint must be enabled in the registry."""
    parsed = target_parse(target)
    problem: str | None = None
    if isinstance(parsed, ModelTarget) and project is not None:
        problem = model_uri_problem(project=project, model_uri=parsed.model_uri)
        field = "model_uri"
    elif isinstance(parsed, EndpointTarget):
        from evaluations.endpoints import EndpointNotFound, endpoint_get

        field = "endpoint"
        try:
            endpoint = endpoint_get(name=parsed.endpoint.strip())
        except EndpointNotFound as exc:
            problem = exc.message
        else:
            if endpoint.kind == "mlflow_model" and project is not None:
                problem = model_uri_problem(project=project, model_uri=endpoint.model)
    if problem:
        raise ValidationFailed([field_error(f"target.{field}", problem)])
    return parsed.canonical()


def responses_generate(
    *, target: dict[str, Any], rows: list[ScoreInput], project: Project | None = None
) -> list[GeneratedResponse]:
    """One response per row from the target (see the module docstring for the error contract)."""
    from evaluations.endpoints import endpoint_get
    from pipelines.adapters.errors import PermanentPipelineError

    try:
        # Checked again at execution: the endpoint may have been disabled since the run started.
        target = target_validate(target, project=project)
    except ValidationFailed as exc:
        reasons = "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
        raise PermanentPipelineError(f"the run's target cannot be used: {reasons}", system="targets") from None
    if not rows:
        return []
    if target["kind"] == "stored":
        return [_stored(row) for row in rows]
    if target["kind"] == "mlflow_model":
        return _from_model(target["model_uri"], rows)
    endpoint = endpoint_get(name=target["endpoint"])
    if endpoint.kind == "mlflow_model":
        return _from_model(endpoint.model, rows)
    return _from_chat(endpoint, rows)


def _stored(row: ScoreInput) -> GeneratedResponse:
    latency = row.metadata.get("latency_ms")
    return GeneratedResponse(
        response=row.response,
        retrieved_context=list(row.retrieved_context),
        latency_ms=float(latency) if isinstance(latency, int | float) else None,
    )


def _from_model(model_uri: str, rows: list[ScoreInput]) -> list[GeneratedResponse]:
    from django.conf import settings

    from pipelines.adapters import mlflow_registry
    from pipelines.adapters.errors import PermanentPipelineError
    from pipelines.adapters.mlflow_common import MlflowConfig

    config = MlflowConfig.from_settings(settings)
    # Load up front: a model that cannot load fails the whole target (raises), not row by row.
    mlflow_registry.pyfunc_model_load(config, model_uri)
    out = []
    for row in rows:  # one row per predict: honest per-row latency, and one bad row cannot sink the others
        started = time.perf_counter()
        try:
            [prediction] = mlflow_registry.pyfunc_predict(
                config, model_uri=model_uri, inputs=[{"request": row.request}]
            )
        except PermanentPipelineError as exc:
            out.append(GeneratedResponse("", None, None, error=exc.message))
            continue
        latency_ms = (time.perf_counter() - started) * 1000
        out.append(_from_prediction(prediction, latency_ms, model_uri))
    return out


def _from_prediction(prediction: Any, latency_ms: float, model_uri: str) -> GeneratedResponse:
    """Read a model's output: a string, ``{"response", "retrieved_context"}``, or a chat completion."""
    if isinstance(prediction, str):
        return GeneratedResponse(prediction, None, latency_ms)
    if isinstance(prediction, dict):
        context = prediction.get("retrieved_context")
        if context is not None and not (isinstance(context, list) and all(isinstance(c, dict) for c in context)):
            context = None
        response = prediction.get("response")
        if response is None:
            choices = prediction.get("choices")
            if isinstance(choices, list) and choices and isinstance(choices[0], dict):
                response = (choices[0].get("message") or {}).get("content")
        if isinstance(response, str):
            return GeneratedResponse(response, context, latency_ms)
    return GeneratedResponse(
        "", None, latency_ms, error=f"{model_uri} returned an output without a response: {str(prediction)[:200]!r}"
    )


def _messages(row: ScoreInput) -> list[dict[str, str]]:
    if isinstance(row.request, dict):
        messages = [
            {"role": str(m.get("role", "user")), "content": str(m.get("content", ""))}
            for m in row.request.get("messages") or []
            if isinstance(m, dict)
        ]
        if messages:
            return messages
    return [{"role": "user", "content": row.request_text}]


def _from_chat(endpoint: EndpointConfig, rows: list[ScoreInput]) -> list[GeneratedResponse]:
    from django.conf import settings

    from pipelines.adapters.errors import PipelineError
    from pipelines.adapters.llm_client import chat_complete
    from pipelines.adapters.outbound import OutboundRules

    rules = OutboundRules.from_settings(settings)

    def generate(row: ScoreInput) -> GeneratedResponse:
        try:
            reply = chat_complete(
                endpoint, _messages(row), rules=rules, temperature=0.0, max_tokens=GENERATION_MAX_TOKENS
            )
        except PipelineError as exc:
            return GeneratedResponse("", None, None, error=exc.message)
        return GeneratedResponse(reply.content, None, reply.latency_ms)

    if len(rows) == 1:
        return [generate(rows[0])]
    with ThreadPoolExecutor(max_workers=min(endpoint.max_concurrency, len(rows))) as pool:
        return list(pool.map(generate, rows))
