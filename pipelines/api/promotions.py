"""REST API: promotion requests, approvals, rollouts and rollbacks; environments.

Every operation needs ``Capability.PROMOTE`` (engineers and admins; an API token needs the
``promote`` scope); reviewers get 403, non-members 404. Environments are changed with
``Capability.MANAGE`` (admins, signed in). Refusals: 400 (bad input, naming the field), 403
(approving one's own request, overriding without being an admin), 409 (approving twice, gates no
longer pass, another rollout active on the environment, wrong state).
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.urls import URLPattern, path
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from pipelines.models import Environment, ModelVersion
from pipelines.releases.promotion import (
    environment_create,
    environment_update,
    promotion_approve,
    promotion_cancel,
    promotion_reject,
    promotion_request,
    promotion_retry,
    rollback_request,
)
from pipelines.releases.serving import serving_describe
from pipelines.selectors.promotions import environment_list, promotion_get_for_user, promotion_list
from reviewapp.api.base import BaseApi
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.typed_input import refusal

TAGS = ["promotions"]


class EnvironmentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    alias = serializers.CharField()
    serving_kind = serializers.CharField()
    serving_endpoint = serializers.CharField()
    local_port = serializers.IntegerField(allow_null=True)
    canary_stages = serializers.ListField(child=serializers.IntegerField())
    required_approvals = serializers.IntegerField()
    ready_timeout_seconds = serializers.IntegerField()
    health_check_queries = serializers.IntegerField()
    soak_seconds = serializers.IntegerField()
    max_error_rate = serializers.FloatField()
    max_p95_ms = serializers.IntegerField()
    current_version = serializers.CharField(source="current_version.version", allow_null=True, default=None)
    previous_version = serializers.CharField(source="previous_version.version", allow_null=True, default=None)
    endpoint = serializers.SerializerMethodField()

    def get_endpoint(self, env: Environment) -> str:
        return serving_describe(environment=env)


class StepSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    key = serializers.CharField()
    title = serializers.CharField()
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    detail = serializers.DictField()
    error = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class RolloutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    status = serializers.CharField()
    stages = serializers.ListField(child=serializers.IntegerField())
    to_version = serializers.CharField(source="to_version.version")
    from_version = serializers.CharField(source="from_version.version", allow_null=True, default=None)
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField()
    steps = StepSerializer(many=True, source="steps.all")


class ApprovalSerializer(serializers.Serializer):
    user = serializers.CharField(source="user.username")
    decision = serializers.CharField()
    comment = serializers.CharField()
    gates_passed = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_gates_passed(self, approval: Any) -> bool | None:
        return approval.gate_report.get("passed") if approval.gate_report else None


class PromotionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.CharField(source="project.slug")
    model = serializers.CharField(source="model_version.registered_model")
    version = serializers.CharField(source="model_version.version")
    environment = serializers.CharField(source="environment.name")
    status = serializers.CharField()
    status_display = serializers.CharField(source="get_status_display")
    reason = serializers.CharField()
    requested_by = serializers.CharField(source="requested_by.username")
    gate_report = serializers.DictField()
    override_justification = serializers.CharField()
    overridden_by = serializers.CharField(source="overridden_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    approvals = ApprovalSerializer(many=True, source="approvals.all")


class PromotionDetailSerializer(PromotionSerializer):
    rollouts = RolloutSerializer(many=True, source="rollouts.all")


def _detail(request: Request, pk: int) -> Response:
    promotion = promotion_get_for_user(user=request.user, pk=pk, token=request.auth)
    return Response(PromotionDetailSerializer(promotion).data)


class ProjectPromotionsApi(BaseApi):
    @extend_schema(
        tags=TAGS,
        responses=inline_serializer("PromotionList", {"results": PromotionSerializer(many=True)}),
        summary="Promotion requests of a project",
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.PROMOTE, token=request.auth)
        items = promotion_list(project=project).prefetch_related("approvals__user")
        status_filter = request.query_params.get("status")
        if status_filter:
            items = items.filter(status=status_filter)
        return Response({"results": PromotionSerializer(items[:200], many=True).data})


class PromotionCreateApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        project = serializers.SlugField()
        model_version = serializers.CharField(help_text="The version number (e.g. '2') or 'id:<ModelVersion id>'.")
        registered_model = serializers.CharField(required=False, help_text="Needed when the project has several.")
        environment = serializers.CharField(help_text="The environment's name, e.g. 'production'.")
        reason = serializers.CharField(allow_blank=True)

    @extend_schema(tags=TAGS, request=InputSerializer, responses={201: PromotionDetailSerializer}, summary="Request")
    def post(self, request: Request) -> Response:
        data = _valid(self.InputSerializer, request.data)
        project = project_get_for_user(
            user=request.user, slug=data["project"], capability=Capability.PROMOTE, token=request.auth
        )
        versions = ModelVersion.objects.filter(project=project)
        ref = data["model_version"]
        if ref.startswith("id:"):
            versions = versions.filter(pk=int(ref[3:]) if ref[3:].isdigit() else -1)
        else:
            versions = versions.filter(version=ref)
        if data.get("registered_model"):
            versions = versions.filter(registered_model=data["registered_model"])
        found = list(versions[:2])
        if len(found) != 1:
            why = "No such model version in this project." if not found else "Several models have this version."
            raise refusal("model_version", why)
        environment = Environment.objects.filter(project=project, name=data["environment"]).first()
        if environment is None:
            raise refusal("environment", f"The project has no environment named {data['environment']!r}.")
        promotion = promotion_request(
            actor=request.user, model_version=found[0], environment=environment, reason=data["reason"]
        )
        promotion = promotion_get_for_user(user=request.user, pk=promotion.pk, token=request.auth)
        return Response(PromotionDetailSerializer(promotion).data, status=status.HTTP_201_CREATED)


class PromotionDetailApi(BaseApi):
    @extend_schema(tags=TAGS, responses=PromotionDetailSerializer, summary="A request with its gates and rollouts")
    def get(self, request: Request, pk: int) -> Response:
        return _detail(request, pk)


class PromotionApproveApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        comment = serializers.CharField(required=False, allow_blank=True, default="")
        override_justification = serializers.CharField(
            required=False, allow_blank=True, default="", help_text="Admins only: why failing gates may be overridden."
        )

    @extend_schema(tags=TAGS, request=InputSerializer, responses=PromotionDetailSerializer, summary="Approve")
    def post(self, request: Request, pk: int) -> Response:
        promotion_get_for_user(user=request.user, pk=pk, token=request.auth)
        data = _valid(self.InputSerializer, request.data)
        promotion_approve(
            actor=request.user,
            request_id=pk,
            comment=data["comment"],
            override_justification=data["override_justification"],
        )
        return _detail(request, pk)


class PromotionRejectApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(allow_blank=True)

    @extend_schema(tags=TAGS, request=InputSerializer, responses=PromotionDetailSerializer, summary="Reject")
    def post(self, request: Request, pk: int) -> Response:
        promotion_get_for_user(user=request.user, pk=pk, token=request.auth)
        data = _valid(self.InputSerializer, request.data)
        promotion_reject(actor=request.user, request_id=pk, reason=data["reason"])
        return _detail(request, pk)


class PromotionCancelApi(BaseApi):
    @extend_schema(tags=TAGS, request=None, responses=PromotionDetailSerializer, summary="Cancel a pending request")
    def post(self, request: Request, pk: int) -> Response:
        promotion_get_for_user(user=request.user, pk=pk, token=request.auth)
        promotion_cancel(actor=request.user, request_id=pk)
        return _detail(request, pk)


class PromotionRollbackApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(
            required=False, allow_blank=True, default="", help_text="Required: why the live version is rolled back."
        )

    @extend_schema(tags=TAGS, request=InputSerializer, responses={202: PromotionDetailSerializer}, summary="Roll back")
    def post(self, request: Request, pk: int) -> Response:
        promotion_get_for_user(user=request.user, pk=pk, token=request.auth)
        data = _valid(self.InputSerializer, request.data)
        rollback_request(actor=request.user, request_id=pk, reason=data["reason"])
        response = _detail(request, pk)
        response.status_code = status.HTTP_202_ACCEPTED
        return response


class PromotionRetryApi(BaseApi):
    @extend_schema(
        tags=TAGS, request=None, responses={202: PromotionDetailSerializer}, summary="Retry a failed rollout"
    )
    def post(self, request: Request, pk: int) -> Response:
        promotion_get_for_user(user=request.user, pk=pk, token=request.auth)
        promotion_retry(actor=request.user, request_id=pk)
        response = _detail(request, pk)
        response.status_code = status.HTTP_202_ACCEPTED
        return response


class EnvironmentInputSerializer(serializers.Serializer):
    name = serializers.CharField(required=False)
    alias = serializers.CharField(required=False)
    serving_kind = serializers.ChoiceField(choices=Environment.ServingKind.choices, required=False)
    serving_endpoint = serializers.CharField(required=False, allow_blank=True)
    local_port = serializers.IntegerField(required=False, allow_null=True)
    canary_stages = serializers.ListField(child=serializers.IntegerField(), required=False)
    required_approvals = serializers.IntegerField(required=False)
    ready_timeout_seconds = serializers.IntegerField(required=False)
    health_check_queries = serializers.IntegerField(required=False, min_value=1, max_value=20)
    soak_seconds = serializers.IntegerField(required=False, min_value=0, max_value=3600)
    max_error_rate = serializers.FloatField(required=False, min_value=0, max_value=1)
    max_p95_ms = serializers.IntegerField(required=False, min_value=1, max_value=600_000)


class ProjectEnvironmentsApi(BaseApi):
    @extend_schema(
        tags=TAGS,
        responses=inline_serializer("EnvironmentList", {"results": EnvironmentSerializer(many=True)}),
        summary="Environments of a project",
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.PROMOTE, token=request.auth)
        return Response({"results": EnvironmentSerializer(environment_list(project=project), many=True).data})

    @extend_schema(tags=TAGS, request=EnvironmentInputSerializer, responses={201: EnvironmentSerializer})
    def post(self, request: Request, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.MANAGE, token=request.auth)
        data = _valid(EnvironmentInputSerializer, request.data)
        name = data.pop("name", "")
        environment = environment_create(project=project, actor=request.user, name=name, **data)
        return Response(EnvironmentSerializer(environment).data, status=status.HTTP_201_CREATED)


class EnvironmentDetailApi(BaseApi):
    @extend_schema(tags=TAGS, request=EnvironmentInputSerializer, responses=EnvironmentSerializer)
    def patch(self, request: Request, slug: str, name: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.MANAGE, token=request.auth)
        environment = Environment.objects.filter(project=project, name=name).first()
        if environment is None:
            raise Http404("No such environment.")
        data = _valid(EnvironmentInputSerializer, request.data, partial=True)
        data.pop("name", None)
        environment = environment_update(environment=environment, actor=request.user, **data)
        return Response(EnvironmentSerializer(environment).data)


def _valid(serializer_class: type[serializers.Serializer], data: Any, partial: bool = False) -> dict[str, Any]:
    serializer = serializer_class(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


urlpatterns: list[URLPattern] = [
    path("projects/<slug:slug>/promotions/", ProjectPromotionsApi.as_view(), name="api-project-promotions"),
    path("projects/<slug:slug>/environments/", ProjectEnvironmentsApi.as_view(), name="api-project-environments"),
    path(
        "projects/<slug:slug>/environments/<str:name>/", EnvironmentDetailApi.as_view(), name="api-environment-detail"
    ),
    path("promotions/", PromotionCreateApi.as_view(), name="api-promotions"),
    path("promotions/<int:pk>/", PromotionDetailApi.as_view(), name="api-promotion-detail"),
    path("promotions/<int:pk>/approve/", PromotionApproveApi.as_view(), name="api-promotion-approve"),
    path("promotions/<int:pk>/reject/", PromotionRejectApi.as_view(), name="api-promotion-reject"),
    path("promotions/<int:pk>/cancel/", PromotionCancelApi.as_view(), name="api-promotion-cancel"),
    path("promotions/<int:pk>/rollback/", PromotionRollbackApi.as_view(), name="api-promotion-rollback"),
    path("promotions/<int:pk>/retry/", PromotionRetryApi.as_view(), name="api-promotion-retry"),
]
