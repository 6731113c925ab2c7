"""REST API views: streamed exports of a dataset version or of the live curated labels."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponseNotModified
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request

from pipelines.api.datasets.params import (
    FORMAT_PARAMETERS,
    STREAM_RESPONSES,
    IgnoreFormatNegotiation,
    _etag_matches,
    _streaming,
    export_params,
    live_filter_from_query,
)
from pipelines.datasets.exports import (
    export_filename,
    export_stream,
    live_export_rows,
    live_question_keys,
    version_etag,
    version_export_rows,
)
from pipelines.selectors.datasets import dataset_version_get_for_user
from reviewapp.api.base import BaseApi
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user

# --- exports ---------------------------------------------------------------------------------------


class DatasetVersionExportApi(BaseApi):
    content_negotiation_class = IgnoreFormatNegotiation

    @extend_schema(
        operation_id="dataset_versions_export",
        tags=["datasets"],
        summary="Export a version, streamed",
        description="Stable order (row position). Strong ETag; send If-None-Match for 304. Needs `export`.",
        parameters=FORMAT_PARAMETERS,
        responses={**STREAM_RESPONSES, 304: OpenApiResponse(description="Not modified.")},
    )
    def get(self, request: Request, pk: int, number: int) -> Any:
        version = dataset_version_get_for_user(user=request.user, dataset_pk=pk, number=number, token=request.auth)
        fmt, shape, compression = export_params(request)
        etag = version_etag(version=version, shape=shape, fmt=fmt, compression=compression)
        if _etag_matches(request, etag):
            not_modified = HttpResponseNotModified()
            not_modified["ETag"] = etag
            return not_modified
        rows = version_export_rows(version=version, shape=shape)
        chunks = export_stream(
            rows, fmt=fmt, shape=shape, question_keys=list(version.question_keys or []), compression=compression
        )
        stem = f"{version.dataset.project.slug}-{version.dataset.name}-v{version.number}"
        response = _streaming(
            chunks,
            fmt=fmt,
            compression=compression,
            filename=export_filename(stem=_safe(stem), shape=shape, fmt=fmt, compression=""),
        )
        response["ETag"] = etag
        return response


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


class CuratedExportApi(BaseApi):
    content_negotiation_class = IgnoreFormatNegotiation

    @extend_schema(
        operation_id="curated_export",
        tags=["datasets"],
        summary="Export the project's live curated labels, streamed",
        description=(
            "Filters as query parameters: `model_version`, `source`, `created_from`, `created_to`, `gold`, `method`, "
            "`tags`, `metadata.<key>=value`, `answers.<question>=value` (repeat for any of several). "
            "Ordered by item id. No ETag: the labels change. Needs `export`."
        ),
        parameters=FORMAT_PARAMETERS,
        responses=STREAM_RESPONSES,
    )
    def get(self, request: Request, slug: str) -> Any:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.EXPORT, token=request.auth)
        fmt, shape, compression = export_params(request)
        filter_ = live_filter_from_query(request, project=project)
        rows = live_export_rows(project=project, filter=filter_, shape=shape)
        chunks = export_stream(
            rows, fmt=fmt, shape=shape, question_keys=live_question_keys(project=project), compression=compression
        )
        response = _streaming(
            chunks,
            fmt=fmt,
            compression=compression,
            filename=export_filename(stem=f"{project.slug}-curated", shape=shape, fmt=fmt, compression=""),
        )
        response["Cache-Control"] = "no-store"
        return response
