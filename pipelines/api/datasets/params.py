"""Export query parameters and response helpers shared by the export views: format, shape, compression, live filter."""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request

from pipelines.datasets.exports import COMPRESSIONS, CONTENT_TYPES, FORMATS, SHAPES
from pipelines.datasets.versions import FILTER_KEYS, dataset_filter_validate
from reviewapp.api.serializers import ValidationErrorSerializer
from reviewapp.errors import ValidationFailed
from reviewapp.jsoninput import JsonInputError, json_decode
from reviewapp.typed_input import field_error

# --- export parameters ---------------------------------------------------------------------------


class IgnoreFormatNegotiation(DefaultContentNegotiation):
    """``?format=`` names the export format here, not a DRF renderer; errors are always JSON."""

    def select_renderer(self, request: Any, renderers: Any, format_suffix: Any = None) -> Any:
        return renderers[0], renderers[0].media_type


def bad_parameter(field: str, message: str) -> ValidationFailed:
    """The refusal of one query parameter (its summary names the parameter)."""
    return ValidationFailed([field_error(field, message)], f"Bad parameter '{field}': {message}")


def export_params(request: Request) -> tuple[str, str, str]:
    """(format, shape, compression) from the query string; ValidationFailed names a bad parameter."""
    params = request.query_params
    fmt = params.get("format", "jsonl")
    shape = params.get("shape", "mlflow")
    if fmt not in FORMATS:
        raise bad_parameter("format", f"Give one of: {', '.join(FORMATS)}.")
    if shape not in SHAPES:
        raise bad_parameter("shape", f"Give one of: {', '.join(SHAPES)}.")
    compression = params.get("compression")
    if compression is None:
        accepted = request.META.get("HTTP_ACCEPT_ENCODING", "")
        compression = "gzip" if "gzip" in [p.split(";")[0].strip() for p in accepted.split(",")] else ""
    elif compression in ("none", "identity"):
        compression = ""
    elif compression not in COMPRESSIONS:
        raise bad_parameter("compression", "Give gzip or none.")
    return fmt, shape, compression


LIVE_PARAMS = {"format", "shape", "compression", *FILTER_KEYS}


def _query_value(text: str) -> Any:
    """``4`` -> 4, ``true`` -> True, ``"x"`` -> "x"; anything else stays text."""
    try:
        return json_decode(text)
    except JsonInputError:
        return text


def live_filter_from_query(request: Request, *, project: Any) -> dict[str, Any]:
    """The live-export filter from query parameters: ``model_version``, ``source``, ``created_from``,
    ``created_to``, ``gold``, ``method``, ``tags`` (repeat or comma-separate), ``metadata.<key>=value``
    and ``answers.<question key>=value`` (repeat for any-of)."""
    raw: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        head, _, rest = key.partition(".")
        if head in ("answers", "metadata") and rest:
            parsed = [_query_value(v) for v in values]
            raw.setdefault(head, {})[rest] = parsed if head == "answers" and len(parsed) > 1 else parsed[0]
        elif key not in LIVE_PARAMS or key in ("answers", "metadata"):
            raise bad_parameter(key, "Unknown parameter.")
        elif key == "tags":
            raw["tags"] = [t for v in values for t in v.split(",") if t]
        elif key == "gold":
            raw["gold"] = {"true": True, "false": False}.get(values[0].lower(), values[0])
        elif key == "curated_only":
            raw["curated_only"] = {"true": True}.get(values[0].lower(), values[0])
        elif key not in ("format", "shape", "compression"):
            raw[key] = values[0]
    try:
        return dataset_filter_validate(project=project, filter=raw)
    except ValidationFailed as exc:
        for error in exc.errors:
            error["field"] = error["field"].removeprefix("filter.")
        raise


def _streaming(chunks: Any, *, fmt: str, compression: str, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Vary"] = "Accept-Encoding"
    if compression == "gzip":
        response["Content-Encoding"] = "gzip"
    return response


def _etag_matches(request: Request, etag: str) -> bool:
    header = request.META.get("HTTP_IF_NONE_MATCH", "")
    tags = [t.strip() for t in header.split(",") if t.strip()]
    return "*" in tags or etag in tags


FORMAT_PARAMETERS = [
    OpenApiParameter("format", str, enum=list(FORMATS), description="jsonl (default), csv or parquet."),
    OpenApiParameter("shape", str, enum=list(SHAPES), description="mlflow (default), agent-eval, sft or preference."),
    OpenApiParameter(
        "compression", str, enum=["gzip", "none"], description="gzip: Content-Encoding gzip. Default: Accept-Encoding."
    ),
]
STREAM_RESPONSES = {
    (200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.BINARY, description="The rows, streamed."),
    (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="The rows, streamed."),
    (200, "application/vnd.apache.parquet"): OpenApiResponse(OpenApiTypes.BINARY, description="The rows, streamed."),
    400: ValidationErrorSerializer,
}
