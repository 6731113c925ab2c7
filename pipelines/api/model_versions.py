"""REST API: registered model versions, evidence and promotion gates.

Engineers and admins only (``Capability.PROMOTE``, token scope ``promote``); reviewers and
curators get 403, other projects 404. Changing gates needs the ``manage`` capability (admins).
"""

# ruff: noqa: RUF001 - text for people: en dashes and minus signs are intended

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from pipelines.adapters.errors import PermanentPipelineError, TransientPipelineError
from pipelines.models import ModelVersion, PromotionGate
from pipelines.releases.evidence import evidence_compare, versions_summary
from pipelines.releases.gates import gate_create, gate_delete, gate_title, gate_update, gates_evaluate_all
from pipelines.releases.registry import registry_sync
from pipelines.selectors.model_versions import (
    environments_serving,
    gate_get_for_user,
    gate_list,
    model_version_get_for_user,
    model_version_list,
    params_compare,
    project_for_models,
    template_diff,
)
from reviewapp.api.base import BaseApi
from reviewapp.api.pagination import IdCursorPagination
from reviewapp.api.schema import paginated
from reviewapp.api.serializers import ValidationErrorSerializer
from reviewapp.errors import ServiceError

TAGS = ["model versions"]


class ModelVersionListApi(BaseApi):
    class OutputSerializer(serializers.Serializer):
        version = serializers.CharField()
        registered_model = serializers.CharField()
        status = serializers.CharField(help_text="READY, PENDING_REGISTRATION, FAILED_REGISTRATION, or DELETED.")
        aliases = serializers.ListField(child=serializers.CharField())
        registered_at = serializers.DateTimeField(allow_null=True)
        synced_at = serializers.DateTimeField()
        run_id = serializers.CharField()
        uri = serializers.CharField()
        environments = serializers.ListField(child=serializers.CharField(), help_text="Serving it at 100%.")
        evidence = serializers.DictField(
            help_text="Per item: reviews, items, pass_rate, pass_low, pass_high, passes, judged (n items), "
            "judged_reviews, runs."
        )

    @extend_schema(
        operation_id="model_versions_list",
        tags=TAGS,
        summary="List the project's registered model versions",
        description=(
            "Versions synced from the MLflow registry, newest first (cursor-paginated), with the environments "
            "serving each and a short evidence summary (human reviews and items, the primary pass/fail question's "
            "pass rate over items — each item its curated label, else its reviews' mean — with a 95% interval over "
            "items and its n, evaluation runs). Needs the `promote` capability (token scope "
            "`promote`)."
        ),
        responses={200: paginated("ModelVersionPage", OutputSerializer(many=True))},
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_for_models(user=request.user, slug=slug, token=request.auth)
        paginator = IdCursorPagination()
        paginator.ordering = "-id"
        page: list[ModelVersion] = paginator.paginate_queryset(model_version_list(project=project), request, view=self)
        serving = environments_serving(project=project)
        summaries = versions_summary(project=project, versions=page)
        rows = [
            {
                "version": v.version,
                "registered_model": v.registered_model,
                "status": v.status,
                "aliases": v.aliases,
                "registered_at": v.registered_at,
                "synced_at": v.synced_at,
                "run_id": v.run_id,
                "uri": v.uri,
                "environments": serving.get(v.pk, []),
                "evidence": summaries[v.pk].as_dict(),
            }
            for v in page
        ]
        return paginator.get_paginated_response(ModelVersionListApi.OutputSerializer(rows, many=True).data)


class ModelVersionSyncApi(BaseApi):
    @extend_schema(
        operation_id="model_versions_sync",
        tags=TAGS,
        summary="Sync the project's model versions from the registry now",
        description=(
            "Reads every version of the project's registered model (aliases, tags, the logged run's params and "
            "prompt template) and upserts them; versions gone from the registry are marked `DELETED`. 503 when "
            "the registry is unreachable, 400 when the project names no model or the registry has none by that "
            "name; nothing is written in either case."
        ),
        request=None,
        responses={
            200: OpenApiTypes.OBJECT,
            400: OpenApiResponse(ValidationErrorSerializer, description="No such model."),
            503: None,
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        project = project_for_models(user=request.user, slug=slug, token=request.auth)
        try:
            result = registry_sync(project=project)
        except TransientPipelineError as exc:
            return Response({"detail": exc.message}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        except PermanentPipelineError as exc:
            raise ServiceError(exc.message) from None  # the documented 400 shape, with `errors`
        return Response(result.as_dict())


def model_version_detail(*, model_version: ModelVersion) -> dict[str, Any]:
    """Everything the version page shows, as JSON: one evidence computation shared with the page."""
    comparison = evidence_compare(model_version=model_version)
    champion = comparison.champion_version
    reports = gates_evaluate_all(model_version=model_version)
    serving = environments_serving(project=model_version.project)
    diff = None
    if champion is not None and not comparison.is_champion:
        diff = {
            "champion_version": champion.version,
            "params": [
                row.__dict__ for row in params_compare(params=model_version.params, champion_params=champion.params)
            ],
            "prompt_template": [
                {"kind": line.kind, "text": line.text}
                for line in template_diff(old=champion.prompt_template, new=model_version.prompt_template)
            ],
        }
    return {
        "version": model_version.version,
        "registered_model": model_version.registered_model,
        "uri": model_version.uri,
        "status": model_version.status,
        "aliases": model_version.aliases,
        "tags": model_version.tags,
        "description": model_version.description,
        "run_id": model_version.run_id,
        "source": model_version.source,
        "registered_at": model_version.registered_at.isoformat() if model_version.registered_at else None,
        "synced_at": model_version.synced_at.isoformat(),
        "environments": serving.get(model_version.pk, []),
        "params": model_version.params,
        "prompt_template": model_version.prompt_template,
        "champion": champion.version if champion else None,
        "is_champion": comparison.is_champion,
        "diff_against_champion": diff,
        "evidence": comparison.as_dict(),
        "gates": [{"environment": env.name if env else None, **report.as_dict()} for env, report in reports],
    }


class ModelVersionDetailApi(BaseApi):
    @extend_schema(
        operation_id="model_versions_get",
        tags=TAGS,
        summary="One model version: its pipeline, evidence, the champion's, and the gate checklist",
        description=(
            "The version's run params and prompt template, their diff against the champion's, its evidence "
            "(evaluation runs with judge–human alignment, human review results with Wilson intervals, pairwise "
            "wins against the champion) beside the champion's, and the gate report for every environment of the "
            "project. Needs the `promote` capability."
        ),
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, slug: str, version: str) -> Response:
        model_version = model_version_get_for_user(user=request.user, slug=slug, version=version, token=request.auth)
        return Response(model_version_detail(model_version=model_version))


# --- gates ------------------------------------------------------------------------------------


class GateOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    title = serializers.SerializerMethodField()
    environment = serializers.SerializerMethodField()
    params = serializers.DictField()
    enabled = serializers.BooleanField()
    created_at = serializers.DateTimeField()

    def get_title(self, gate: PromotionGate) -> str:
        return gate_title(gate)

    def get_environment(self, gate: PromotionGate) -> str | None:
        return gate.environment.name if gate.environment_id else None


GATE_DOC = (
    "Kinds: `suite_metric` {suite_id, metric, statistic mean|pass_rate, op >=|<=, threshold, max_age_days}; "
    "`min_items` {count}: reviewed items (a curated label or a complete set of reviews; the old name `min_reviews` "
    "is still accepted and stored as `min_items`, deprecated); `min_pass_rate` {question, threshold 0..1, confidence "
    "0.95}: the lower bound of the pass rate over items; `not_worse_than_champion` {metric (a scorer, or "
    "human_pass_rate), suite_id, statistic, question, margin 0, confidence 0.95, min_shared_items 20}: paired on "
    "the items (requests) both versions share, failing below min_shared_items. "
    "`environment` is an environment's name or id, or null for every environment."
)


class GateListApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        kind = serializers.CharField()
        params = serializers.JSONField(required=False, default=dict)
        environment = serializers.JSONField(required=False, default=None)
        enabled = serializers.BooleanField(required=False, default=True)

    @extend_schema(
        operation_id="gates_list",
        tags=TAGS,
        summary="List the project's promotion gates",
        responses={200: GateOutputSerializer(many=True)},
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_for_models(user=request.user, slug=slug, token=request.auth)
        return Response(GateOutputSerializer(gate_list(project=project), many=True).data)

    @extend_schema(
        operation_id="gates_create",
        tags=TAGS,
        summary="Add a promotion gate (admins)",
        description=GATE_DOC,
        request=InputSerializer,
        responses={201: GateOutputSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        project = project_for_models(user=request.user, slug=slug, token=request.auth, manage=True)
        serializer = GateListApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        gate = gate_create(project=project, actor=request.user, **serializer.validated_data)
        return Response(GateOutputSerializer(gate).data, status=status.HTTP_201_CREATED)


class GateDetailApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        params = serializers.JSONField(required=False)
        environment = serializers.JSONField(required=False)
        enabled = serializers.JSONField(required=False)

    @extend_schema(
        operation_id="gates_get", tags=TAGS, summary="One promotion gate", responses={200: GateOutputSerializer}
    )
    def get(self, request: Request, slug: str, pk: int) -> Response:
        gate = gate_get_for_user(user=request.user, slug=slug, pk=pk, token=request.auth)
        return Response(GateOutputSerializer(gate).data)

    @extend_schema(
        operation_id="gates_update",
        tags=TAGS,
        summary="Change a gate's params, environment or enabled flag (admins)",
        description=GATE_DOC,
        request=InputSerializer,
        responses={200: GateOutputSerializer},
    )
    def patch(self, request: Request, slug: str, pk: int) -> Response:
        gate = gate_get_for_user(user=request.user, slug=slug, pk=pk, token=request.auth, manage=True)
        serializer = GateDetailApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        gate = gate_update(gate=gate, actor=request.user, **serializer.validated_data)
        return Response(GateOutputSerializer(gate).data)

    @extend_schema(operation_id="gates_delete", tags=TAGS, summary="Remove a gate (admins)", responses={204: None})
    def delete(self, request: Request, slug: str, pk: int) -> Response:
        gate = gate_get_for_user(user=request.user, slug=slug, pk=pk, token=request.auth, manage=True)
        gate_delete(gate=gate, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


urlpatterns: list[URLPattern] = [
    path("projects/<slug:slug>/model-versions/", ModelVersionListApi.as_view(), name="api-model-versions"),
    path("projects/<slug:slug>/model-versions/sync/", ModelVersionSyncApi.as_view(), name="api-model-versions-sync"),
    path(
        "projects/<slug:slug>/model-versions/<str:version>/",
        ModelVersionDetailApi.as_view(),
        name="api-model-version-detail",
    ),
    path("projects/<slug:slug>/gates/", GateListApi.as_view(), name="api-gates"),
    path("projects/<slug:slug>/gates/<int:pk>/", GateDetailApi.as_view(), name="api-gate-detail"),
]
