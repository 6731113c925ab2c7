"""Items: ingest (one, a JSON list, or NDJSON) and a cursor-paginated list."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

from reviewapp.api.base import ApiRequest, BaseApi
from reviewapp.api.pagination import paginated_response
from reviewapp.api.schema import json_schema, paginated
from reviewapp.api.serializers import BlindItemSerializer, ItemSerializer, ValidationErrorSerializer
from reviewapp.blind import project_model_identity_visible
from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.jsoninput import JsonInputError, json_decode
from reviewapp.permissions import Capability
from reviewapp.selectors.items import item_list
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.services.ingest import ItemIn, items_ingest, items_validate
from reviewapp.typed_input import error_from, field_error

NDJSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
    }
)
PAGE_PARAMETERS = [
    OpenApiParameter("cursor", str, description="Opaque cursor from a previous page's `next` or `previous`."),
    OpenApiParameter("page_size", int, description="Rows per page (default 100, at most 1000)."),
]


def _too_many(count: int) -> ValidationFailed:
    limit = settings.INGEST_MAX_ITEMS
    return ValidationFailed(
        [field_error("", f"At most {limit} items per request.")],
        f"Too many items ({count}); send at most {limit} per request.",
    )


def _json_rows(body: bytes) -> list[Any]:
    try:
        # NUL is checked per row by items_validate, which names the row's index.
        data = json_decode(body, reject_nul=False)
    except JsonInputError as exc:
        raise ValidationFailed([error_from(exc)], f"The body is not valid JSON: {exc}") from None
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return data
    raise ValidationFailed(
        [field_error("", "Expected an object or a list of objects.")],
        "Send one item object, or a JSON list of them.",
    )


def _ndjson_rows(body: bytes) -> tuple[list[Any], list[int]]:
    """The rows and their 0-based line numbers; blank lines are skipped but still counted."""
    lines = body.split(b"\n")
    numbered = [(number, line) for number, line in enumerate(lines) if line.strip()]
    if len(numbered) > settings.INGEST_MAX_ITEMS:
        raise _too_many(len(numbered))
    rows: list[Any] = []
    positions: list[int] = []
    errors: list[FieldError] = []
    for number, line in numbered:
        try:
            rows.append(json_decode(line, reject_nul=False))
        except JsonInputError as exc:
            errors.append(error_from(exc, index=number))
            continue
        positions.append(number)
    if errors:
        # Report the other lines' problems too, so one round trip shows everything to fix.
        _, row_errors = items_validate(rows, positions=positions)
        errors = sorted([*errors, *row_errors], key=lambda e: e["index"] or 0)
        raise ValidationFailed(errors, f"{len(errors)} of {len(numbered)} lines are not valid; nothing was written.")
    return rows, positions


class ItemIngestApi(BaseApi):
    """Parses the raw body with msgspec, not DRF parsers: 10,000 items must take milliseconds, not seconds."""

    class OutputSerializer(serializers.Serializer):
        created = serializers.IntegerField()
        updated = serializers.IntegerField()

    @extend_schema(
        operation_id="items_ingest",
        tags=["items"],
        summary="Add or update items",
        description=(
            "Send one item, a JSON list of up to 10,000 items, or NDJSON (`Content-Type: application/x-ndjson`, "
            "one item per line). Items are matched on `external_id` (else `request_id`, else `trace_id`, else a "
            "hash of the content), so re-sending updates instead of duplicating. Every item is checked first; "
            "if any is invalid nothing is written and the 400 lists each problem as `{index, field, message}`, "
            "where `index` is the 0-based position in the list (for NDJSON, the 0-based line number). "
            "Needs the `ingest` capability (token scope `ingest`). 201 when any item was created, else 200."
        ),
        request={
            "application/json": {
                "oneOf": [
                    json_schema(ItemIn),
                    {"type": "array", "items": json_schema(ItemIn), "maxItems": settings.INGEST_MAX_ITEMS},
                ]
            },
            "application/x-ndjson": {"type": "string", "description": "One item object (as above) per line."},
        },
        responses={
            201: OutputSerializer,
            200: OutputSerializer,
            400: OpenApiResponse(ValidationErrorSerializer, description="Nothing was written; fix every listed row."),
            413: OpenApiResponse(description="The body is too large; split it."),
            415: OpenApiResponse(description="Use application/json or application/x-ndjson."),
        },
    )
    def post(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.INGEST, token=request.auth)
        # Check the type before reading: a form body may already have been consumed (CSRF check).
        media_type = (request.content_type or "").split(";")[0].strip().lower()
        ndjson = media_type in NDJSON_TYPES
        if not ndjson and media_type not in ("", "application/json") and not media_type.endswith("+json"):
            raise exceptions.UnsupportedMediaType(
                media_type,
                detail=f"Unsupported media type '{media_type}': send application/json or application/x-ndjson.",
            )
        try:
            body = request.body
        except RequestDataTooBig:
            return Response(
                {
                    "detail": f"The body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes; "
                    "split it into several requests."
                },
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        if not body or body.isspace():
            raise ValidationFailed(
                [field_error("", "The body is empty.")],
                "The body is empty; send an item, a JSON list of items, or NDJSON.",
            )
        positions = None
        if ndjson:
            rows, positions = _ndjson_rows(body)
        else:
            rows = _json_rows(body)
        result = items_ingest(project=project, rows=rows, actor=request.user, source="api", positions=positions)
        data = ItemIngestApi.OutputSerializer({"created": result.created, "updated": result.updated}).data
        return Response(data, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


class ItemListApi(BaseApi):
    class FilterSerializer(serializers.Serializer):
        model_version = serializers.CharField(required=False)
        source = serializers.CharField(required=False)  # type: ignore[assignment]  # DRF's metaclass moves declared fields off the class
        external_id = serializers.CharField(required=False)

    @extend_schema(
        operation_id="items_list",
        tags=["items"],
        summary="List a project's items",
        description=(
            "Oldest first, by cursor. Needs the `view` capability (any token scope). Reviewers of a project with "
            "`show_model_to_reviewers` off get blind items and cannot filter."
        ),
        parameters=[FilterSerializer, *PAGE_PARAMETERS],
        responses=paginated("PaginatedItemList", ItemSerializer(many=True)),
    )
    def get(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.VIEW, token=request.auth)
        filters = ItemListApi.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        visible = project_model_identity_visible(project)
        if not visible and filters.validated_data:
            # Filtering on a hidden field would tell a reviewer which items are which version.
            raise ValidationFailed(
                [
                    field_error(name, "Reviewers of this project cannot filter on it (blind).")
                    for name in filters.validated_data
                ],
                "This project hides models from reviewers.",
            )
        items = item_list(project=project).filter(**filters.validated_data)
        serializer_class = ItemSerializer if visible else BlindItemSerializer
        return paginated_response(queryset=items, serializer_class=serializer_class, request=request, view=self)


class ProjectItemsApi(ItemIngestApi, ItemListApi):
    """``/projects/{slug}/items/``: GET is ItemListApi, POST is ItemIngestApi."""
