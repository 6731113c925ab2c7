"""REST API: monitoring buckets of one metric per model version over time.

Curators, engineers and admins (``Capability.EXPORT``, token scope ``export``); reviewers get 403,
other projects 404. Reads only precomputed buckets (kept up to date by the worker).
"""

# ruff: noqa: RUF001 - text for people: en dashes and minus signs are intended

from __future__ import annotations

from django.urls import URLPattern, path
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from pipelines.sources.monitoring import (
    FIXED_METRICS,
    INTERVALS,
    SCORE_PREFIX,
    monitoring_query_parse,
    monitoring_series,
    project_for_monitoring,
)
from reviewapp.api.base import ApiRequest, BaseApi
from reviewapp.api.serializers import ValidationErrorSerializer

TAGS = ["monitoring"]


class MonitoringBucketSerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="The bucket's start (UTC); it covers one hour or one day.")
    model_version = serializers.CharField()
    n = serializers.IntegerField(help_text="Items in the bucket (each item counts once).")
    value = serializers.FloatField(
        allow_null=True, help_text="The rate or mean over the items (volume: n); null without items."
    )
    low = serializers.FloatField(allow_null=True, help_text="95% interval, low end (null when not computable).")
    high = serializers.FloatField(allow_null=True)


class MonitoringApi(BaseApi):
    class OutputSerializer(serializers.Serializer):
        metric = serializers.CharField()
        title = serializers.CharField()
        kind = serializers.ChoiceField(choices=["count", "rate", "mean"])
        unit = serializers.CharField()
        interval = serializers.CharField(help_text="How the 95% interval is computed.")
        bucket = serializers.ChoiceField(choices=["hour", "day"])
        since = serializers.DateTimeField()
        until = serializers.DateTimeField(help_text="Exclusive.")
        model_version = serializers.CharField(allow_null=True)
        buckets = serializers.ListField(
            child=MonitoringBucketSerializer(), help_text="Oldest first, then by model version."
        )

    @extend_schema(
        operation_id="monitoring_series",
        tags=TAGS,
        summary="One metric per model version over time, in hour or day buckets",
        description=(
            "Precomputed monitoring buckets. Every figure is over items: an item's human value is its curated "
            "label, else the mean of its reviews; n is the number of items. Rates (human_pass_rate, "
            "retrieval_precision, thumbs_down_rate) carry a Wilson interval over items, means (latency_ms, "
            f"tokens, {SCORE_PREFIX}<scorer>) a normal interval; volume is n. Items are placed at their trace's "
            "timestamp, else when they were ingested. Needs the `export` capability (token scope `export`)."
        ),
        parameters=[
            OpenApiParameter(
                "metric",
                str,
                required=True,
                description=f"One of {', '.join(FIXED_METRICS)}, or {SCORE_PREFIX}<scorer name> "
                "(a judge or code scorer).",
            ),
            OpenApiParameter("bucket", str, enum=["hour", "day"], description="Bucket size (default day)."),
            OpenApiParameter("model_version", str, description="Only this model version (default: every version)."),
            OpenApiParameter(
                "since",
                str,
                description="Start, a date (UTC midnight) or an ISO 8601 date-time (default: until − 30 days).",
            ),
            OpenApiParameter(
                "until",
                str,
                description="End (exclusive), a date (that day included) or an ISO 8601 date-time (default: now).",
            ),
        ],
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(ValidationErrorSerializer, description="A bad parameter, each named."),
        },
    )
    def get(self, request: ApiRequest, slug: str) -> Response:
        project = project_for_monitoring(user=request.user, slug=slug, token=request.auth)
        query = monitoring_query_parse(request.query_params.dict(), metric_required=True)
        assert query.metric is not None  # metric_required
        points = monitoring_series(
            project=project,
            granularity=query.granularity,
            since=query.since,
            until=query.until,
            metrics=[query.metric],
            model_version=query.model_version,
        )[query.metric.name]
        data = {
            "metric": query.metric.name,
            "title": query.metric.title,
            "kind": query.metric.kind,
            "unit": query.metric.unit,
            "interval": INTERVALS[query.metric.kind],
            "bucket": query.granularity,
            "since": query.since,
            "until": query.until,
            "model_version": query.model_version,
            "buckets": [
                {
                    "start": p.start,
                    "model_version": p.model_version,
                    "n": p.n,
                    "value": p.value,
                    "low": p.low,
                    "high": p.high,
                }
                for p in points
            ],
        }
        return Response(self.OutputSerializer(data).data)


urlpatterns: list[URLPattern] = [
    path("projects/<slug:slug>/monitoring/", MonitoringApi.as_view(), name="api-monitoring"),
]
