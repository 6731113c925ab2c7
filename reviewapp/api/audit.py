"""The audit log of a project, for curators."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from reviewapp.api.base import BaseApi
from reviewapp.api.items import PAGE_PARAMETERS
from reviewapp.api.pagination import paginated_response
from reviewapp.api.schema import paginated
from reviewapp.permissions import Capability
from reviewapp.selectors.audit import audit_event_list
from reviewapp.selectors.projects import project_get_for_user


class AuditEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    action = serializers.CharField(help_text='e.g. "review.submit", "assignments.assign", "item.send_back".')
    actor = serializers.CharField(source="actor.username", allow_null=True, default=None)
    target_type = serializers.CharField()
    target_id = serializers.CharField()
    data = serializers.DictField()
    created_at = serializers.DateTimeField()


class AuditListApi(BaseApi):
    class FilterSerializer(serializers.Serializer):
        action = serializers.CharField(required=False, max_length=64, help_text="Only events of this action.")

    @extend_schema(
        operation_id="audit_list",
        tags=["audit"],
        summary="The project's audit log",
        description=(
            "Every state change (submit, edit, skip, flag, assign, send back, gold, groups, ...) with actor and time, "
            "newest first, by cursor. Append-only. Needs `curate` (token scope `curate`)."
        ),
        parameters=[FilterSerializer, *PAGE_PARAMETERS],
        responses=paginated("PaginatedAuditEventList", AuditEventSerializer(many=True)),
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE, token=request.auth)
        filters = AuditListApi.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        events = audit_event_list(project=project, action=filters.validated_data.get("action"))
        return paginated_response(
            queryset=events, serializer_class=AuditEventSerializer, request=request, view=self, ordering="-id"
        )
