"""REST API views: background export jobs (create, list, status, download) and their serializer."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from pipelines.api.datasets.params import IgnoreFormatNegotiation, bad_parameter
from pipelines.datasets.export_jobs import export_job_create, export_job_download_name, export_job_file
from pipelines.datasets.exports import CONTENT_TYPES, FORMATS, SHAPES
from pipelines.datasets.versions import dataset_filter_validate
from pipelines.models import ExportJob
from pipelines.selectors.datasets import dataset_version_get_for_user, export_job_get_for_user, export_jobs_recent
from reviewapp.api.base import BaseApi
from reviewapp.api.serializers import ValidationErrorSerializer
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user


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
                raise bad_parameter("version" if "dataset" in given else "dataset", "Give both dataset and version.")
            version = dataset_version_get_for_user(
                user=request.user, dataset_pk=given["dataset"], number=given["version"], token=request.auth
            )
            if version.dataset.project_id != project.pk:
                raise bad_parameter("dataset", "No such dataset in this project.")
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


class JobStateSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.ChoiceField(choices=["not_ready", "expired"])


class ExportJobDownloadApi(BaseApi):
    content_negotiation_class = IgnoreFormatNegotiation

    @extend_schema(
        operation_id="export_jobs_download",
        tags=["datasets"],
        summary="Download a finished export's file",
        responses={
            # The file's type is the job's format, or gzip when the job was compressed.
            **{
                (200, media_type.split(";")[0]): OpenApiResponse(OpenApiTypes.BINARY, description="The file.")
                for media_type in [*CONTENT_TYPES.values(), "application/gzip"]
            },
            (409, "application/json"): OpenApiResponse(JobStateSerializer, description="Not finished yet."),
            (410, "application/json"): OpenApiResponse(
                JobStateSerializer, description="The file expired (EXPORT_RETENTION_HOURS)."
            ),
        },
    )
    def get(self, request: Request, pk: int) -> Any:
        job = export_job_get_for_user(user=request.user, pk=pk, token=request.auth)
        path = export_job_file(job)
        if job.status == ExportJob.Status.EXPIRED:
            return Response(
                {
                    "detail": f"This export's file was deleted {settings.EXPORT_RETENTION_HOURS} hours after it "
                    "finished; start a new export.",
                    "code": "expired",
                },
                status=410,
            )
        if path is None:
            return Response(
                {"detail": f"The export is {job.get_status_display().lower()}, not ready.", "code": "not_ready"},
                status=409,
            )
        content_type = "application/gzip" if job.compression == "gzip" else CONTENT_TYPES[job.format]
        return FileResponse(
            path.open("rb"), as_attachment=True, filename=export_job_download_name(job), content_type=content_type
        )
