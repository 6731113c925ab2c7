"""REST API: a project's alert rules on monitoring (issue 14 §4), with their state and history.

Reading needs ``Capability.EXPORT`` (what the monitoring figures need: curators, engineers, admins;
token scope ``export``); creating, changing and deleting a rule needs ``Capability.PROMOTE``
(engineers and admins; token scope ``promote``), since a rule may roll an environment back.
Bad input: 400 with ``{index, field, message}`` errors (``reviewapp.typed_input``).
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.urls import URLPattern, path
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from pipelines.models import AlertEvent, AlertRule
from pipelines.sources.alerts import alert_rule_as_dict, alert_rule_create, alert_rule_delete, alert_rule_update
from reviewapp.api.base import ApiRequest, BaseApi
from reviewapp.api.serializers import ValidationErrorSerializer
from reviewapp.models import Project
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user

TAGS = ["alerts"]

RuleSerializer = inline_serializer(
    "AlertRule",
    {
        "id": serializers.IntegerField(),
        "name": serializers.CharField(),
        "metric": serializers.CharField(),
        "scope": serializers.ChoiceField(choices=AlertRule.Scope.values),
        "model_version": serializers.CharField(),
        "environment": serializers.CharField(allow_null=True),
        "window_hours": serializers.IntegerField(),
        "comparison": serializers.ChoiceField(choices=AlertRule.Comparison.values),
        "threshold": serializers.FloatField(allow_null=True),
        "delta": serializers.FloatField(allow_null=True),
        "min_n": serializers.IntegerField(),
        "rollback": serializers.BooleanField(),
        "enabled": serializers.BooleanField(),
        "state": serializers.ChoiceField(choices=AlertRule.State.values),
        "last_evaluated_at": serializers.DateTimeField(allow_null=True),
        "last_fired_at": serializers.DateTimeField(allow_null=True),
        "last_figures": serializers.DictField(help_text="The numbers behind the last verdict (n per side)."),
    },
)
ERRORS = OpenApiResponse(ValidationErrorSerializer, description="Bad fields, each named.")


def _project(request: ApiRequest, slug: str, capability: Capability) -> Project:
    return project_get_for_user(user=request.user, slug=slug, capability=capability, token=request.auth)


def _rule(project: Project, pk: int) -> AlertRule:
    rule = AlertRule.objects.select_related("environment", "project").filter(project=project, pk=pk).first()
    if rule is None:
        raise Http404("No such alert rule.")
    return rule


def _with_history(rule: AlertRule) -> dict[str, Any]:
    events = AlertEvent.objects.filter(rule=rule).order_by("-at", "-id")[:50]
    return {
        **alert_rule_as_dict(rule),
        "history": [
            {"kind": e.kind, "at": e.at.isoformat(), "detail": e.detail, "rollout": e.rollout_id} for e in events
        ],
    }


class AlertListApi(BaseApi):
    @extend_schema(
        operation_id="alerts_list",
        tags=TAGS,
        summary="The project's alert rules and their state",
        responses={200: inline_serializer("AlertRuleList", {"results": serializers.ListField(child=RuleSerializer)})},
    )
    def get(self, request: ApiRequest, slug: str) -> Response:
        project = _project(request, slug, Capability.EXPORT)
        rules = AlertRule.objects.filter(project=project).select_related("environment").order_by("name")
        return Response({"results": [alert_rule_as_dict(r) for r in rules]})

    @extend_schema(
        operation_id="alerts_create",
        tags=TAGS,
        summary="Create an alert rule",
        request=inline_serializer("AlertRuleInput", {"name": serializers.CharField()}),
        responses={201: RuleSerializer, 400: ERRORS},
    )
    def post(self, request: ApiRequest, slug: str) -> Response:
        project = _project(request, slug, Capability.PROMOTE)
        rule = alert_rule_create(project=project, actor=request.user, values=request.data)
        return Response(alert_rule_as_dict(rule), status=status.HTTP_201_CREATED)


class AlertDetailApi(BaseApi):
    @extend_schema(
        operation_id="alerts_read",
        tags=TAGS,
        summary="One alert rule with its history",
        responses={200: RuleSerializer},  # plus "history": its fired/resolved events, newest first
    )
    def get(self, request: ApiRequest, slug: str, pk: int) -> Response:
        return Response(_with_history(_rule(_project(request, slug, Capability.EXPORT), pk)))

    @extend_schema(
        operation_id="alerts_update",
        tags=TAGS,
        summary="Replace an alert rule's settings",
        request=inline_serializer("AlertRuleUpdate", {"name": serializers.CharField()}),
        responses={200: RuleSerializer, 400: ERRORS},
    )
    def put(self, request: ApiRequest, slug: str, pk: int) -> Response:
        rule = _rule(_project(request, slug, Capability.PROMOTE), pk)
        return Response(alert_rule_as_dict(alert_rule_update(rule=rule, actor=request.user, values=request.data)))

    @extend_schema(operation_id="alerts_delete", tags=TAGS, summary="Delete an alert rule", responses={204: None})
    def delete(self, request: ApiRequest, slug: str, pk: int) -> Response:
        alert_rule_delete(rule=_rule(_project(request, slug, Capability.PROMOTE), pk), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


urlpatterns: list[URLPattern] = [
    path("projects/<slug:slug>/alerts/", AlertListApi.as_view(), name="api-alerts"),
    path("projects/<slug:slug>/alerts/<int:pk>/", AlertDetailApi.as_view(), name="api-alert"),
]
