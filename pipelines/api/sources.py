"""REST API: a project's sources (where production traffic comes from) and their pulls.

Every operation needs ``Capability.INGEST`` (curators, engineers, admins; token scope ``ingest``):
sources decide what enters the review queue. A pull is queued at once and runs on a worker; poll
``GET /api/v1/projects/{slug}/sources/{id}/pulls/`` for its progress.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.urls import URLPattern, path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from pipelines.models import Source, SourceKind, SourcePull
from pipelines.sources.pulls import source_pull_request
from pipelines.sources.selectors import (
    source_get_for_user,
    source_list,
    source_online,
    source_pull_list,
    source_volume,
)
from pipelines.sources.services import EDITABLE, source_create, source_delete, source_update
from reviewapp.api.base import ApiRequest, BaseApi
from reviewapp.api.items import PAGE_PARAMETERS
from reviewapp.api.pagination import paginated_response
from reviewapp.api.schema import paginated
from reviewapp.api.serializers import ValidationErrorSerializer
from reviewapp.errors import ValidationFailed
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.typed_input import field_error

TAGS = ["sources"]


class SourceRunSerializer(serializers.Serializer):
    run_id = serializers.IntegerField(help_text="The evaluation run (evaluations API: /runs/{id}/).")
    pull_id = serializers.IntegerField(allow_null=True)
    status = serializers.CharField(source="run.status", help_text="queued, running, succeeded, failed, cancelled.")
    items = serializers.IntegerField(help_text="Items the pull's batch newly took, all scored by the code scorers.")
    judged_items = serializers.IntegerField(help_text="Of those, items the LLM judges score (within the budget).")
    judges_skipped = serializers.IntegerField(help_text="Items over the hourly judge budget (judges recorded skipped).")
    judge_calls = serializers.IntegerField(help_text="LLM-judge calls granted to this run.")
    created_at = serializers.DateTimeField()


class SourcePullSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source_id = serializers.IntegerField()
    trigger = serializers.CharField(help_text="manual, beat (the source's interval) or command.")
    status = serializers.ChoiceField(choices=SourcePull.Status.choices)
    scanned = serializers.IntegerField(help_text="Rows read from the source.")
    taken = serializers.IntegerField(help_text="Valid rows a rule took.")
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField(help_text="Taken, but already ingested with the same content.")
    skipped = serializers.IntegerField(
        help_text="Not an item (no response, in progress, invalid); see skipped_reasons."
    )
    sampled_out = serializers.IntegerField(help_text="No rule took the row.")
    capped = serializers.IntegerField(help_text="A rule matched but its hourly or daily cap was full.")
    skipped_reasons = serializers.DictField(child=serializers.CharField(), help_text="Row id -> reason (the first 50).")
    batches = serializers.IntegerField(help_text="Batches committed (each with the watermark).")
    watermark_from = serializers.DictField()
    watermark_to = serializers.DictField()
    attempts = serializers.IntegerField()
    error = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    runs = serializers.SerializerMethodField(help_text="Evaluation runs this pull started (online evaluation).")

    def get_runs(self, pull: SourcePull) -> list[dict[str, Any]]:
        runs = pull.runs.select_related("run").order_by("id")
        return list(SourceRunSerializer(runs, many=True).data)


class SourceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.CharField(source="project.slug")
    name = serializers.CharField(help_text="For a REST source: the items' `source` value it counts.")
    kind = serializers.ChoiceField(choices=SourceKind.choices)
    settings = serializers.DictField(help_text="Per kind: mlflow_traces {experiment, filter, since}, ...")
    column_mapping = serializers.DictField(help_text="Table kinds: item field -> column.")
    rules = serializers.ListField(child=serializers.DictField(), help_text="Sampling rules, in order.")
    interval_seconds = serializers.IntegerField()
    enabled = serializers.BooleanField()
    watermark = serializers.DictField()
    last_pull_at = serializers.DateTimeField(allow_null=True)
    next_due_at = serializers.DateTimeField(allow_null=True)
    last_status = serializers.CharField()
    last_summary = serializers.DictField()
    last_error = serializers.CharField()
    volume = serializers.SerializerMethodField(help_text="Items brought in: total, last_hour, last_day.")
    suite = serializers.IntegerField(
        source="suite_id", allow_null=True, help_text="The suite scoring new items (its latest version), or null."
    )
    judge_calls_per_hour = serializers.IntegerField(help_text="LLM-judge calls allowed per rolling hour.")
    online = serializers.SerializerMethodField(
        help_text="Online evaluation: suite name and version, judge calls used this hour, the latest runs."
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_online(self, source: Source) -> dict[str, Any]:
        online = source_online(source=source)
        return {
            "suite_name": online.suite_name,
            "suite_version": online.suite_version,
            "judge_calls_used_last_hour": online.judge_calls_used,
            "runs": SourceRunSerializer(online.runs, many=True).data,
        }

    def get_volume(self, source: Source) -> dict[str, int]:
        volume = source_volume(source=source)
        return {"total": volume.total, "last_hour": volume.last_hour, "last_day": volume.last_day}


class SourceInputSerializer(serializers.Serializer):
    """For the schema; the service validates (every bad field at once, settings per kind)."""

    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=SourceKind.choices)
    settings = serializers.DictField(required=False)
    column_mapping = serializers.DictField(required=False)
    rules = serializers.ListField(child=serializers.DictField(), required=False)
    interval_seconds = serializers.IntegerField(required=False, default=300)
    enabled = serializers.BooleanField(required=False, default=True)
    suite = serializers.IntegerField(required=False, allow_null=True, help_text="A suite id of the project.")
    judge_calls_per_hour = serializers.IntegerField(required=False, default=100)


class SourcePatchSerializer(serializers.Serializer):
    name = serializers.CharField(required=False)
    settings = serializers.DictField(required=False)
    column_mapping = serializers.DictField(required=False)
    rules = serializers.ListField(child=serializers.DictField(), required=False)
    interval_seconds = serializers.IntegerField(required=False)
    enabled = serializers.BooleanField(required=False)
    suite = serializers.IntegerField(required=False, allow_null=True, help_text="A suite id of the project, or null.")
    judge_calls_per_hour = serializers.IntegerField(required=False)
    reset_watermark = serializers.BooleanField(required=False, help_text="Read from the start on the next pull.")


def _values(data: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValidationFailed([field_error("", "Give a JSON object.")])
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValidationFailed([field_error(str(name), "Unknown field.") for name in unknown])
    return dict(data)


def _source_in_project(request: ApiRequest, slug: str, pk: int) -> Source:
    source = source_get_for_user(user=request.user, pk=pk, token=request.auth)
    if source.project.slug != slug:
        raise Http404("No such source.")
    return source


class SourcesApi(BaseApi):
    @extend_schema(operation_id="sources_list", tags=TAGS, responses=SourceSerializer(many=True))
    def get(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.INGEST, token=request.auth)
        return Response(SourceSerializer(source_list(project=project), many=True).data)

    @extend_schema(
        operation_id="sources_create",
        tags=TAGS,
        request=SourceInputSerializer,
        responses={201: SourceSerializer, 400: OpenApiResponse(ValidationErrorSerializer)},
    )
    def post(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.INGEST, token=request.auth)
        values = _values(request.data, {*EDITABLE, "kind"})
        source = source_create(project=project, values=values, actor=request.user)
        return Response(SourceSerializer(source).data, status=status.HTTP_201_CREATED)


class SourceDetailApi(BaseApi):
    @extend_schema(operation_id="sources_retrieve", tags=TAGS, responses=SourceSerializer)
    def get(self, request: ApiRequest, slug: str, pk: int) -> Response:
        return Response(SourceSerializer(_source_in_project(request, slug, pk)).data)

    @extend_schema(
        operation_id="sources_update",
        tags=TAGS,
        request=SourcePatchSerializer,
        responses={200: SourceSerializer, 400: OpenApiResponse(ValidationErrorSerializer)},
    )
    def patch(self, request: ApiRequest, slug: str, pk: int) -> Response:
        source = _source_in_project(request, slug, pk)
        values = _values(request.data, {*EDITABLE, "kind", "reset_watermark"})
        source = source_update(source=source, values=values, actor=request.user)
        return Response(SourceSerializer(source).data)

    @extend_schema(operation_id="sources_destroy", tags=TAGS, responses={204: None})
    def delete(self, request: ApiRequest, slug: str, pk: int) -> Response:
        source_delete(source=_source_in_project(request, slug, pk), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SourcePullsApi(BaseApi):
    @extend_schema(
        operation_id="source_pulls_list",
        tags=TAGS,
        summary="The source's pulls, newest first",
        parameters=PAGE_PARAMETERS,
        responses=paginated("PaginatedSourcePullList", SourcePullSerializer(many=True)),
    )
    def get(self, request: ApiRequest, slug: str, pk: int) -> Response:
        source = _source_in_project(request, slug, pk)
        return paginated_response(
            queryset=source_pull_list(source=source),
            serializer_class=SourcePullSerializer,
            request=request,
            view=self,
            ordering="-id",
        )


class SourcePullApi(BaseApi):
    @extend_schema(
        operation_id="sources_pull",
        tags=TAGS,
        summary="Pull the source now (or get the pull already queued or running)",
        request=None,
        responses={202: SourcePullSerializer, 400: OpenApiResponse(ValidationErrorSerializer)},
    )
    def post(self, request: ApiRequest, slug: str, pk: int) -> Response:
        source = _source_in_project(request, slug, pk)
        pull = source_pull_request(source=source, actor=request.user)
        return Response(SourcePullSerializer(pull).data, status=status.HTTP_202_ACCEPTED)


urlpatterns: list[URLPattern] = [
    path("projects/<slug:slug>/sources/", SourcesApi.as_view(), name="api-sources"),
    path("projects/<slug:slug>/sources/<int:pk>/", SourceDetailApi.as_view(), name="api-source-detail"),
    path("projects/<slug:slug>/sources/<int:pk>/pull/", SourcePullApi.as_view(), name="api-source-pull"),
    path("projects/<slug:slug>/sources/<int:pk>/pulls/", SourcePullsApi.as_view(), name="api-source-pulls"),
]
