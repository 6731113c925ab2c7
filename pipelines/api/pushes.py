"""REST API: deliveries to Delta tables and Unity Catalog.

Reading targets and pushes needs ``Capability.EXPORT`` (token scope ``export``); creating targets,
turning the feed on or off and pushing need ``Capability.CURATE`` (token scope ``curate``).
A push is queued at once and runs on a worker; poll ``GET /api/v1/pushes/{id}/`` for its outcome.
"""

from __future__ import annotations

from django.urls import URLPattern, path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from pipelines.datasets.pushes import delivery_target_create, delivery_target_set_feed, feed_push_create, push_create
from pipelines.models import DeliveryTarget, Push, TargetKind
from pipelines.selectors.datasets import dataset_version_get_for_user
from pipelines.selectors.pushes import (
    delivery_target_get_for_user,
    delivery_target_list,
    push_get_for_user,
    push_list,
)
from reviewapp.api.base import ApiRequest, BaseApi
from reviewapp.api.items import PAGE_PARAMETERS
from reviewapp.api.pagination import paginated_response
from reviewapp.api.schema import paginated
from reviewapp.api.serializers import ValidationErrorSerializer
from reviewapp.errors import Conflict, ValidationFailed
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.typed_input import field_error

TAGS = ["deliveries"]


class DeliveryTargetSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.CharField(source="project.slug")
    kind = serializers.ChoiceField(choices=TargetKind.choices)
    target = serializers.CharField(help_text="Delta table URI, or catalog.schema.table in Unity Catalog.")
    feed_enabled = serializers.BooleanField(help_text="Newly curated labels are pushed every few minutes.")
    watermark_at = serializers.DateTimeField(
        allow_null=True, help_text="updated_at of the last curated label the feed delivered."
    )
    created_at = serializers.DateTimeField()


class PushSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.CharField(source="project.slug")
    target_id = serializers.IntegerField(source="delivery_target_id")
    target_kind = serializers.ChoiceField(choices=TargetKind.choices)
    target = serializers.CharField()
    dataset = serializers.IntegerField(source="dataset_version.dataset_id", allow_null=True, default=None)
    dataset_version = serializers.IntegerField(source="dataset_version.number", allow_null=True, default=None)
    feed = serializers.BooleanField(source="is_feed", help_text="A micro-batch of the continuous feed.")
    batch_id = serializers.CharField(help_text="Deterministic; the Delta application transaction id.")
    status = serializers.ChoiceField(choices=Push.Status.choices)
    rows_total = serializers.IntegerField()
    rows_written = serializers.IntegerField(help_text="Rows inserted or updated by this push.")
    rows_deleted = serializers.IntegerField(
        help_text="Rows of the dataset that the pushed version no longer holds, deleted from the table (feed: 0)."
    )
    skipped = serializers.BooleanField(help_text="The batch had already been delivered; nothing was written.")
    table_version = serializers.IntegerField(allow_null=True, help_text="Delta table version holding the batch.")
    duration_seconds = serializers.FloatField(allow_null=True)
    attempts = serializers.IntegerField()
    error = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class DeliveryTargetsApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=TargetKind.choices)
        target = serializers.CharField(
            required=False,
            allow_blank=True,
            default="",
            help_text="Delta: a local path or s3:// abfss:// gs:// URI (blank: DELTA_ROOT/<project>/curated). "
            "Unity Catalog: catalog.schema.table.",
        )
        feed_enabled = serializers.BooleanField(required=False, default=False)

    @extend_schema(operation_id="delivery_targets_list", tags=TAGS, responses=DeliveryTargetSerializer(many=True))
    def get(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.EXPORT, token=request.auth)
        return Response(DeliveryTargetSerializer(delivery_target_list(project=project), many=True).data)

    @extend_schema(
        operation_id="delivery_targets_create",
        tags=TAGS,
        request=InputSerializer,
        responses={201: DeliveryTargetSerializer, 400: OpenApiResponse(ValidationErrorSerializer)},
    )
    def post(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE, token=request.auth)
        data = DeliveryTargetsApi.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        target = delivery_target_create(project=project, user=request.user, **data.validated_data)
        return Response(DeliveryTargetSerializer(target).data, status=status.HTTP_201_CREATED)


class DeliveryTargetDetailApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        feed_enabled = serializers.BooleanField()

    @extend_schema(operation_id="delivery_targets_retrieve", tags=TAGS, responses=DeliveryTargetSerializer)
    def get(self, request: ApiRequest, pk: int) -> Response:
        target = delivery_target_get_for_user(user=request.user, pk=pk, token=request.auth)
        return Response(DeliveryTargetSerializer(target).data)

    @extend_schema(
        operation_id="delivery_targets_update", tags=TAGS, request=InputSerializer, responses=DeliveryTargetSerializer
    )
    def patch(self, request: ApiRequest, pk: int) -> Response:
        target = delivery_target_get_for_user(
            user=request.user, pk=pk, capability=Capability.CURATE, token=request.auth
        )
        data = DeliveryTargetDetailApi.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        target = delivery_target_set_feed(
            delivery_target=target, enabled=data.validated_data["feed_enabled"], user=request.user
        )
        return Response(DeliveryTargetSerializer(target).data)


class PushesApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        dataset = serializers.IntegerField(required=False, help_text="Dataset id (with version).")
        version = serializers.IntegerField(required=False, help_text="Dataset version number.")
        target = serializers.IntegerField(
            required=False,
            help_text="Delivery target id. Default for a version: the Delta table DELTA_ROOT/<project>/<dataset>.",
        )
        feed = serializers.BooleanField(
            required=False, default=False, help_text="Push the target's newly curated labels now (needs target)."
        )

    @extend_schema(
        operation_id="pushes_list",
        tags=TAGS,
        summary="The project's pushes, newest first",
        parameters=PAGE_PARAMETERS,
        responses=paginated("PaginatedPushList", PushSerializer(many=True)),
    )
    def get(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.EXPORT, token=request.auth)
        return paginated_response(
            queryset=push_list(project=project),
            serializer_class=PushSerializer,
            request=request,
            view=self,
            ordering="-id",
        )

    @extend_schema(
        operation_id="pushes_create",
        tags=TAGS,
        summary="Push a dataset version, or the feed's new labels, to a target",
        request=InputSerializer,
        responses={201: PushSerializer, 400: OpenApiResponse(ValidationErrorSerializer)},
    )
    def post(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE, token=request.auth)
        data = PushesApi.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        target: DeliveryTarget | None = None
        if values.get("target") is not None:
            target = delivery_target_get_for_user(
                user=request.user, pk=values["target"], capability=Capability.CURATE, token=request.auth
            )
            if target.project_id != project.pk:
                raise ValidationFailed([field_error("target", "Not a target of this project.")])
        if values["feed"]:
            if target is None:
                raise ValidationFailed([field_error("target", "Name the target to feed.")])
            push = feed_push_create(delivery_target=target, user=request.user)
            if push is None:
                raise Conflict("Nothing to push: no newly curated labels, or the previous feed batch is unfinished.")
        else:
            if values.get("dataset") is None or values.get("version") is None:
                raise ValidationFailed([field_error("version", "Give dataset and version, or feed with a target.")])
            version = dataset_version_get_for_user(
                user=request.user,
                dataset_pk=values["dataset"],
                number=values["version"],
                capability=Capability.CURATE,
                token=request.auth,
            )
            if version.dataset.project_id != project.pk:
                raise ValidationFailed([field_error("dataset", "Not a dataset of this project.")])
            push = push_create(project=project, dataset_version=version, delivery_target=target, user=request.user)
        push = push_get_for_user(user=request.user, pk=push.pk, capability=Capability.CURATE, token=request.auth)
        return Response(PushSerializer(push).data, status=status.HTTP_201_CREATED)


class PushDetailApi(BaseApi):
    @extend_schema(operation_id="pushes_retrieve", tags=TAGS, responses=PushSerializer)
    def get(self, request: ApiRequest, pk: int) -> Response:
        push = push_get_for_user(user=request.user, pk=pk, token=request.auth)
        return Response(PushSerializer(push).data)


urlpatterns: list[URLPattern] = [
    path("projects/<slug:slug>/delivery-targets/", DeliveryTargetsApi.as_view(), name="api-delivery-targets"),
    path("delivery-targets/<int:pk>/", DeliveryTargetDetailApi.as_view(), name="api-delivery-target-detail"),
    path("projects/<slug:slug>/pushes/", PushesApi.as_view(), name="api-pushes"),
    path("pushes/<int:pk>/", PushDetailApi.as_view(), name="api-push-detail"),
]
