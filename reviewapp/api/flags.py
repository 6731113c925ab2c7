"""Flags: a reviewer flags an item they hold or reviewed; curators read every flag."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from reviewapp.api.base import ApiRequest, BaseApi
from reviewapp.api.items import PAGE_PARAMETERS
from reviewapp.api.pagination import paginated_response
from reviewapp.api.schema import paginated
from reviewapp.api.serializers import BLIND, ValidationErrorSerializer
from reviewapp.blind import project_model_identity_visible
from reviewapp.models import Flag
from reviewapp.permissions import Capability
from reviewapp.selectors.items import flag_list, flaggable_item_get_for_user
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.services.flags import flag_create


class FlagSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    item = serializers.IntegerField(source="item_id")
    item_external_id = serializers.CharField(source="item.external_id", required=False, help_text=BLIND)
    kind = serializers.ChoiceField(choices=Flag.Kind.choices)
    note = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=Flag.Status.choices, help_text="A curator resolves or dismisses it.")
    resolution = serializers.CharField(help_text="The curator's comment when closing it.")
    resolved_by = serializers.CharField(source="resolved_by.username", allow_null=True, default=None)
    resolved_at = serializers.DateTimeField(allow_null=True)


class FlagCreateApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        item = serializers.IntegerField(help_text="An item you hold (from queue/next) or reviewed.")
        kind = serializers.ChoiceField(choices=Flag.Kind.choices)
        note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)

    @extend_schema(
        operation_id="flags_create",
        tags=["flags"],
        summary="Flag an item for curators",
        description=(
            "Flag an item you hold or reviewed (e.g. unsafe, needs an expert). A flag does not block the review; "
            "flagging again with the same kind replaces the note (200). Needs `review` (token scope `review`); "
            "any other item is a 404."
        ),
        request=InputSerializer,
        responses={201: FlagSerializer, 200: FlagSerializer, 400: OpenApiResponse(ValidationErrorSerializer)},
    )
    def post(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.REVIEW, token=request.auth)
        serializer = FlagCreateApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        item = flaggable_item_get_for_user(user=request.user, project=project, pk=data["item"])
        flag, created = flag_create(item=item, user=request.user, kind=data["kind"], note=data["note"])
        blind = not project_model_identity_visible(project)
        data = FlagSerializer(flag).data
        if blind:
            data.pop("item_external_id", None)
        return Response(data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class FlagListApi(BaseApi):
    class FilterSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=Flag.Kind.choices, required=False)
        item = serializers.IntegerField(required=False, help_text="An item id.")
        status = serializers.ChoiceField(choices=Flag.Status.choices, required=False)

    @extend_schema(
        operation_id="flags_list",
        tags=["flags"],
        summary="Every flag of the project",
        description="Newest first, by cursor. Needs `curate` (token scope `curate`).",
        parameters=[FilterSerializer, *PAGE_PARAMETERS],
        responses=paginated("PaginatedFlagList", FlagSerializer(many=True)),
    )
    def get(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE, token=request.auth)
        filters = FlagListApi.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        lookups = {"kind": "kind", "item": "item_id", "status": "status"}
        flags = flag_list(project=project).filter(**{lookups[k]: v for k, v in filters.validated_data.items()})
        return paginated_response(
            queryset=flags, serializer_class=FlagSerializer, request=request, view=self, ordering="-id"
        )


class ProjectFlagsApi(FlagCreateApi, FlagListApi):
    """``/projects/{slug}/flags/``: GET is FlagListApi, POST is FlagCreateApi."""
