"""REST API: curated datasets, versions, diffs, row listings and exports (streamed or as a background job).

Exports are streamed (StreamingHttpResponse over a server-side cursor) in ``jsonl``, ``csv`` or
``parquet`` and in the ``mlflow``, ``agent-eval``, ``sft`` or ``preference`` shape (pipelines.exports).
Compression: ``?compression=gzip`` (or ``Accept-Encoding: gzip`` when ``compression`` is not given)
sends ``Content-Encoding: gzip``; ``?compression=none`` never compresses. A version's export has a
strong ``ETag`` per (version, shape, format, compression) and answers ``If-None-Match`` with 304.
"""

from __future__ import annotations

from typing import Any

from django.http import FileResponse, HttpResponseNotModified, StreamingHttpResponse
from django.urls import URLPattern, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response

from pipelines.datasets import (
    FILTER_KEYS,
    dataset_create,
    dataset_filter_validate,
    dataset_update,
    dataset_version_create,
    dataset_versions_diff,
)
from pipelines.export_jobs import export_job_create, export_job_download_name, export_job_file
from pipelines.exports import (
    COMPRESSIONS,
    CONTENT_TYPES,
    FORMATS,
    SHAPES,
    export_filename,
    export_stream,
    live_export_rows,
    live_question_keys,
    version_etag,
    version_export_rows,
)
from pipelines.models import ExportJob
from pipelines.selectors.datasets import (
    dataset_get_for_user,
    dataset_list,
    dataset_rows,
    dataset_version_get_for_user,
    dataset_versions,
    export_job_get_for_user,
    export_jobs_recent,
)
from reviewapp.api.base import BaseApi
from reviewapp.api.items import PAGE_PARAMETERS
from reviewapp.api.pagination import paginated_response
from reviewapp.api.schema import paginated
from reviewapp.api.serializers import ValidationErrorSerializer
from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.permissions import Capability
from reviewapp.selectors import project_get_for_user

# --- export parameters ---------------------------------------------------------------------------


class IgnoreFormatNegotiation(DefaultContentNegotiation):
    """``?format=`` names the export format here, not a DRF renderer; errors are always JSON."""

    def select_renderer(self, request: Any, renderers: Any, format_suffix: Any = None) -> Any:
        return renderers[0], renderers[0].media_type


def _bad(field: str, message: str) -> ValidationFailed:
    error: FieldError = {"index": None, "field": field, "message": message}
    return ValidationFailed([error], f"Bad parameter '{field}': {message}")


def export_params(request: Request) -> tuple[str, str, str]:
    """(format, shape, compression) from the query string; ValidationFailed names a bad parameter."""
    params = request.query_params
    fmt = params.get("format", "jsonl")
    shape = params.get("shape", "mlflow")
    if fmt not in FORMATS:
        raise _bad("format", f"Give one of: {', '.join(FORMATS)}.")
    if shape not in SHAPES:
        raise _bad("shape", f"Give one of: {', '.join(SHAPES)}.")
    compression = params.get("compression")
    if compression is None:
        accepted = request.META.get("HTTP_ACCEPT_ENCODING", "")
        compression = "gzip" if "gzip" in [p.split(";")[0].strip() for p in accepted.split(",")] else ""
    elif compression in ("none", "identity"):
        compression = ""
    elif compression not in COMPRESSIONS:
        raise _bad("compression", "Give gzip or none.")
    return fmt, shape, compression


LIVE_PARAMS = {"format", "shape", "compression", *FILTER_KEYS}


def _query_value(text: str) -> Any:
    """``4`` -> 4, ``true`` -> True, ``"x"`` -> "x"; anything else stays text."""
    import json

    try:
        return json.loads(text)
    except ValueError:
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
            raise _bad(key, "Unknown parameter.")
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

# --- serializers ---------------------------------------------------------------------------------


class DatasetSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.CharField(source="project.slug")
    name = serializers.CharField()
    description = serializers.CharField()
    filter = serializers.DictField(help_text="The validated filter (curated labels only).")
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()


class DatasetListItemSerializer(DatasetSerializer):
    versions = serializers.IntegerField(source="n_versions")
    latest_version = serializers.IntegerField(source="latest_number", allow_null=True)


class DatasetVersionSerializer(serializers.Serializer):
    dataset = serializers.IntegerField(source="dataset_id")
    number = serializers.IntegerField()
    row_count = serializers.IntegerField()
    content_hash = serializers.CharField(help_text="sha256 over (row id, row hash) in row order.")
    question_keys = serializers.ListField(child=serializers.CharField(), help_text="Feedback columns, in order.")
    filter = serializers.DictField(help_text="The filter the snapshot was taken with.")
    note = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()


class DatasetRowSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    row_id = serializers.CharField()
    item_id = serializers.IntegerField()
    content_hash = serializers.CharField()
    data = serializers.DictField(help_text="The canonical row (see pipelines.datasets).")


class ExportJobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.CharField(source="project.slug")
    dataset = serializers.IntegerField(source="version.dataset_id", allow_null=True, default=None)
    version = serializers.IntegerField(source="version.number", allow_null=True, default=None)
    filter = serializers.DictField()
    format = serializers.CharField()
    shape = serializers.CharField()
    compression = serializers.CharField()
    status = serializers.ChoiceField(choices=ExportJob.Status.choices)
    rows_done = serializers.IntegerField()
    rows_total = serializers.IntegerField(allow_null=True)
    percent = serializers.IntegerField()
    file_size = serializers.IntegerField(allow_null=True)
    error = serializers.CharField()
    download_url = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_download_url(self, job: ExportJob) -> str | None:
        return f"/api/v1/exports/{job.pk}/download/" if job.status == ExportJob.Status.DONE else None


# --- datasets ------------------------------------------------------------------------------------


class ProjectDatasetsApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        filter = serializers.JSONField(required=False, default=dict, help_text="See dataset_filter_validate.")

    @extend_schema(
        operation_id="datasets_list",
        tags=["datasets"],
        summary="The project's curated datasets",
        description="Needs `export` (token scope `export`).",
        responses=DatasetListItemSerializer(many=True),
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.EXPORT, token=request.auth)
        return Response(DatasetListItemSerializer(dataset_list(project=project), many=True).data)

    @extend_schema(
        operation_id="datasets_create",
        tags=["datasets"],
        summary="Create a dataset (a named filter over curated labels)",
        description=(
            "Filter keys: `curated_only` (true), `answers` ({question: value or [values]}), `model_version`, "
            "`source`, `created_from`, `created_to`, `gold`, `tags`, `metadata`, `method`. Needs `curate`."
        ),
        request=InputSerializer,
        responses={201: DatasetSerializer, 400: ValidationErrorSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE, token=request.auth)
        data = ProjectDatasetsApi.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = dataset_create(project=project, user=request.user, **data.validated_data)
        return Response(DatasetSerializer(dataset).data, status=201)


class DatasetDetailApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False)
        description = serializers.CharField(required=False, allow_blank=True)
        filter = serializers.JSONField(required=False)

    @extend_schema(operation_id="datasets_retrieve", tags=["datasets"], responses=DatasetSerializer)
    def get(self, request: Request, pk: int) -> Response:
        dataset = dataset_get_for_user(user=request.user, pk=pk, token=request.auth)
        return Response(DatasetSerializer(dataset).data)

    @extend_schema(
        operation_id="datasets_update",
        tags=["datasets"],
        summary="Change a dataset's name, description or filter (versions keep theirs)",
        request=InputSerializer,
        responses={200: DatasetSerializer, 400: ValidationErrorSerializer},
    )
    def patch(self, request: Request, pk: int) -> Response:
        dataset = dataset_get_for_user(user=request.user, pk=pk, capability=Capability.CURATE, token=request.auth)
        data = DatasetDetailApi.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = dataset_update(dataset=dataset, user=request.user, **data.validated_data)
        return Response(DatasetSerializer(dataset).data)


class DatasetVersionsApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        note = serializers.CharField(required=False, allow_blank=True, default="")
        allow_unchanged = serializers.BooleanField(
            required=False, default=False, help_text="Keep a version even when it equals the latest one."
        )

    @extend_schema(
        operation_id="dataset_versions_list", tags=["datasets"], responses=DatasetVersionSerializer(many=True)
    )
    def get(self, request: Request, pk: int) -> Response:
        dataset = dataset_get_for_user(user=request.user, pk=pk, token=request.auth)
        return Response(DatasetVersionSerializer(dataset_versions(dataset=dataset), many=True).data)

    @extend_schema(
        operation_id="dataset_versions_create",
        tags=["datasets"],
        summary="Snapshot the matching curated rows as the next version",
        description=(
            "409 `unchanged` when the rows equal the latest version's (unless `allow_unchanged`). Needs `curate`."
        ),
        request=InputSerializer,
        responses={201: DatasetVersionSerializer, 409: OpenApiResponse(description="No changes since the latest.")},
    )
    def post(self, request: Request, pk: int) -> Response:
        dataset = dataset_get_for_user(user=request.user, pk=pk, capability=Capability.CURATE, token=request.auth)
        data = DatasetVersionsApi.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = dataset_version_create(dataset=dataset, user=request.user, **data.validated_data)
        return Response(DatasetVersionSerializer(version).data, status=201)


class DatasetVersionDetailApi(BaseApi):
    @extend_schema(operation_id="dataset_versions_retrieve", tags=["datasets"], responses=DatasetVersionSerializer)
    def get(self, request: Request, pk: int, number: int) -> Response:
        version = dataset_version_get_for_user(user=request.user, dataset_pk=pk, number=number, token=request.auth)
        return Response(DatasetVersionSerializer(version).data)


class DatasetVersionDiffApi(BaseApi):
    @extend_schema(
        operation_id="dataset_versions_diff",
        tags=["datasets"],
        summary="Rows added, removed and changed since another version",
        parameters=[OpenApiParameter("against", int, required=True, description="The older version's number.")],
        responses={200: OpenApiTypes.OBJECT, 400: ValidationErrorSerializer},
    )
    def get(self, request: Request, pk: int, number: int) -> Response:
        version = dataset_version_get_for_user(user=request.user, dataset_pk=pk, number=number, token=request.auth)
        against = request.query_params.get("against", "")
        if not against.isdigit():
            raise _bad("against", "Give the number of a version of this dataset.")
        old = dataset_version_get_for_user(user=request.user, dataset_pk=pk, number=int(against), token=request.auth)
        return Response(dataset_versions_diff(old=old, new=version))


class DatasetVersionRowsApi(BaseApi):
    @extend_schema(
        operation_id="dataset_version_rows",
        tags=["datasets"],
        summary="The version's canonical rows, by cursor (for small pulls; use export for files)",
        parameters=PAGE_PARAMETERS,
        responses=paginated("PaginatedDatasetRowList", DatasetRowSerializer(many=True)),
    )
    def get(self, request: Request, pk: int, number: int) -> Response:
        version = dataset_version_get_for_user(user=request.user, dataset_pk=pk, number=number, token=request.auth)
        rows = dataset_rows(version=version)
        return paginated_response(
            queryset=rows, serializer_class=DatasetRowSerializer, request=request, view=self, ordering="position"
        )


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


class ProjectExportJobsApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        format = serializers.ChoiceField(choices=FORMATS, default="jsonl")
        shape = serializers.ChoiceField(choices=SHAPES, default="mlflow")
        compression = serializers.ChoiceField(choices=["gzip", "none"], default="none")
        dataset = serializers.IntegerField(required=False, help_text="With `version`: export that version.")
        version = serializers.IntegerField(required=False)
        filter = serializers.JSONField(required=False, help_text="Without a version: the live curated labels.")

    @extend_schema(operation_id="export_jobs_list", tags=["datasets"], responses=ExportJobSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.EXPORT, token=request.auth)
        return Response(ExportJobSerializer(export_jobs_recent(project=project, limit=50), many=True).data)

    @extend_schema(
        operation_id="export_jobs_create",
        tags=["datasets"],
        summary="Start a background export (a file to download when done)",
        request=InputSerializer,
        responses={202: ExportJobSerializer, 400: ValidationErrorSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.EXPORT, token=request.auth)
        data = ProjectExportJobsApi.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        given = data.validated_data
        version = None
        filter_ = None
        if "dataset" in given or "version" in given:
            if "dataset" not in given or "version" not in given:
                raise _bad("version" if "dataset" in given else "dataset", "Give both dataset and version.")
            version = dataset_version_get_for_user(
                user=request.user, dataset_pk=given["dataset"], number=given["version"], token=request.auth
            )
            if version.dataset.project_id != project.pk:
                raise _bad("dataset", "No such dataset in this project.")
        else:
            filter_ = dataset_filter_validate(project=project, filter=given.get("filter") or {})
        job = export_job_create(
            project=project,
            user=request.user,
            fmt=given["format"],
            shape=given["shape"],
            compression="" if given["compression"] == "none" else "gzip",
            version=version,
            filter=filter_,
        )
        return Response(ExportJobSerializer(job).data, status=202)


class ExportJobApi(BaseApi):
    @extend_schema(operation_id="export_jobs_retrieve", tags=["datasets"], responses=ExportJobSerializer)
    def get(self, request: Request, pk: int) -> Response:
        job = export_job_get_for_user(user=request.user, pk=pk, token=request.auth)
        return Response(ExportJobSerializer(job).data)


class ExportJobDownloadApi(BaseApi):
    content_negotiation_class = IgnoreFormatNegotiation

    @extend_schema(
        operation_id="export_jobs_download",
        tags=["datasets"],
        summary="Download a finished export's file",
        responses={200: OpenApiResponse(OpenApiTypes.BINARY), 409: OpenApiResponse(description="Not finished yet.")},
    )
    def get(self, request: Request, pk: int) -> Any:
        job = export_job_get_for_user(user=request.user, pk=pk, token=request.auth)
        path = export_job_file(job)
        if path is None:
            return Response(
                {"detail": f"The export is {job.get_status_display().lower()}, not ready.", "code": "not_ready"},
                status=409,
            )
        content_type = "application/gzip" if job.compression == "gzip" else CONTENT_TYPES[job.format]
        return FileResponse(
            path.open("rb"), as_attachment=True, filename=export_job_download_name(job), content_type=content_type
        )


urlpatterns: list[URLPattern] = [
    path("projects/<slug:slug>/datasets/", ProjectDatasetsApi.as_view(), name="api-datasets"),
    path("projects/<slug:slug>/curated/export/", CuratedExportApi.as_view(), name="api-curated-export"),
    path("projects/<slug:slug>/exports/", ProjectExportJobsApi.as_view(), name="api-export-jobs"),
    path("datasets/<int:pk>/", DatasetDetailApi.as_view(), name="api-dataset"),
    path("datasets/<int:pk>/versions/", DatasetVersionsApi.as_view(), name="api-dataset-versions"),
    path("datasets/<int:pk>/versions/<int:number>/", DatasetVersionDetailApi.as_view(), name="api-dataset-version"),
    path(
        "datasets/<int:pk>/versions/<int:number>/diff/",
        DatasetVersionDiffApi.as_view(),
        name="api-dataset-version-diff",
    ),
    path(
        "datasets/<int:pk>/versions/<int:number>/rows/",
        DatasetVersionRowsApi.as_view(),
        name="api-dataset-version-rows",
    ),
    path(
        "datasets/<int:pk>/versions/<int:number>/export/",
        DatasetVersionExportApi.as_view(),
        name="api-dataset-version-export",
    ),
    path("exports/<int:pk>/", ExportJobApi.as_view(), name="api-export-job"),
    path("exports/<int:pk>/download/", ExportJobDownloadApi.as_view(), name="api-export-job-download"),
]
