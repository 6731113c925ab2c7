"""REST API views: curated datasets, their versions, diffs and row listings."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from pipelines.api.datasets.params import bad_parameter
from pipelines.datasets.versions import dataset_create, dataset_update, dataset_version_create, dataset_versions_diff
from pipelines.selectors.datasets import (
    dataset_get_for_user,
    dataset_list,
    dataset_rows,
    dataset_version_get_for_user,
    dataset_versions,
)
from reviewapp.api.base import BaseApi
from reviewapp.api.items import PAGE_PARAMETERS
from reviewapp.api.pagination import paginated_response
from reviewapp.api.schema import paginated
from reviewapp.api.serializers import ValidationErrorSerializer
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user

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
    failed_expectation_rows = serializers.IntegerField(
        help_text="Rows whose expected response repeats the response their label fails (frozen before that "
        "was refused; the labels are corrected)."
    )
    needs_new_version = serializers.BooleanField(
        help_text="True when failed_expectation_rows > 0: take a new version from the corrected labels."
    )
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()


class DatasetRowSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    row_id = serializers.CharField()
    item_id = serializers.IntegerField()
    content_hash = serializers.CharField()
    data = serializers.DictField(help_text="The canonical row (see pipelines.datasets.versions).")


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
            raise bad_parameter("against", "Give the number of a version of this dataset.")
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
