"""A run's ``target`` as typed input: the kinds there are and the fields each takes.

The shape is checked here (one Struct per kind, through reviewapp.typed_input); what needs the
database or the endpoint registry (the project's registered models, an enabled endpoint) is
checked by ``evaluations.targets.target_validate``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec

from evaluations.models.endpoints import MODEL_URI_RE
from reviewapp.errors import ValidationFailed
from reviewapp.typed_input import TypedInput, field_error, says, struct_errors, value_convert

TARGET_KINDS = ("stored", "mlflow_model", "endpoint")
MODEL_URI_MESSAGE = (
    "Must be a registered model version, models:/<name>/<version> (a run pins the version; "
    "resolve an alias such as @champion to its version first)."
)
# MODEL_URI_RE with surrounding whitespace allowed: the canonical form strips it.
MODEL_URI_PATTERN = rf"^\s*{MODEL_URI_RE.pattern.removeprefix('^').removesuffix('$')}\s*$"

TargetKind = Annotated[Literal["stored", "mlflow_model", "endpoint"], says(f"Use one of: {', '.join(TARGET_KINDS)}.")]


class _Target(TypedInput):
    not_object_message: ClassVar[str] = (
        'Give an object: {"kind": "stored"}, {"kind": "mlflow_model", "model_uri": ...} '
        'or {"kind": "endpoint", "endpoint": ...}.'
    )


class StoredTarget(_Target):
    """Score the responses already stored on the items."""

    unknown_message: ClassVar[str] = "Unknown field: a stored target takes only kind."
    kind: Literal["stored"] = "stored"

    def canonical(self) -> dict[str, Any]:
        return {"kind": "stored"}


class ModelTarget(_Target):
    """A registered MLflow model version, loaded in the worker."""

    unknown_message: ClassVar[str] = "Unknown field: an mlflow_model target takes kind and model_uri."
    kind: Literal["mlflow_model"]
    model_uri: Annotated[str, msgspec.Meta(pattern=MODEL_URI_PATTERN), says(MODEL_URI_MESSAGE)]

    def canonical(self) -> dict[str, Any]:
        return {"kind": "mlflow_model", "model_uri": self.model_uri.strip()}


class EndpointTarget(_Target):
    """A chat (or mlflow_model) endpoint of the endpoint registry, by name."""

    unknown_message: ClassVar[str] = "Unknown field: an endpoint target takes kind and endpoint."
    kind: Literal["endpoint"]
    endpoint: Annotated[str, msgspec.Meta(pattern=r"\S"), says("Name an endpoint from the endpoint registry.")]

    def canonical(self) -> dict[str, Any]:
        return {"kind": "endpoint", "endpoint": self.endpoint.strip()}


Target = StoredTarget | ModelTarget | EndpointTarget
_BY_KIND: dict[str, type[StoredTarget] | type[ModelTarget] | type[EndpointTarget]] = {
    "stored": StoredTarget,
    "mlflow_model": ModelTarget,
    "endpoint": EndpointTarget,
}


def target_parse(raw: Any) -> Target:
    """``raw`` as the Struct of its kind, or ValidationFailed naming every bad field (``target.model_uri``, ...)."""
    if not isinstance(raw, dict):
        raise ValidationFailed([field_error("target", _Target.not_object_message)])
    kind = value_convert(raw.get("kind"), TargetKind, field="target.kind")
    target, errors = struct_errors(raw, _BY_KIND[kind], field="target")
    if errors or target is None:
        raise ValidationFailed(errors)
    return target
