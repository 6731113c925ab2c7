"""REST API: end users' feedback on answers (thumbs, ratings, comments), sent by the app that serves them.

Sending needs the ``feedback`` capability (token scope ``feedback``: a token with only that scope
can send feedback and read nothing, so it may live inside the end users' app). Reading the list or
the per-item summary needs ``export`` (curators, engineers, admins).
"""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, path
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from pipelines.models import Feedback
from pipelines.sources.feedback import (
    FEEDBACK_VALUES,
    MAX_BATCH,
    FeedbackIn,
    feedback_ingest,
    feedback_list,
    feedback_summary_for_items,
)
from reviewapp.api.base import ApiRequest, BaseApi
from reviewapp.api.items import PAGE_PARAMETERS
from reviewapp.api.pagination import paginated_response
from reviewapp.api.schema import json_schema, paginated
from reviewapp.api.serializers import ValidationErrorSerializer
from reviewapp.errors import ValidationFailed
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.typed_input import field_error

TAGS = ["feedback"]
MAX_ID = 2**63 - 1  # a larger number is no id (and PostgreSQL's bigint would refuse it)


class FeedbackSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    client_id = serializers.CharField()
    kind = serializers.ChoiceField(choices=Feedback.Kind.choices)
    value = serializers.CharField(
        source="value_label", help_text='"up" or "down" (thumbs), "1".."5" (rating), "" (comment).'
    )
    comment = serializers.CharField(help_text="Untrusted text from an end user.")
    trace_id = serializers.CharField()
    external_id = serializers.CharField()
    user = serializers.CharField(source="user_ref")
    origin = serializers.ChoiceField(choices=Feedback.Origin.choices)
    item = serializers.IntegerField(
        source="item_id", allow_null=True, help_text="The item it joined; null while it waits."
    )
    created_at = serializers.DateTimeField()
    received_at = serializers.DateTimeField()
    joined_at = serializers.DateTimeField(allow_null=True)


class FeedbackSendApi(BaseApi):
    class RowSerializer(serializers.Serializer):
        index = serializers.IntegerField(help_text="The row's 0-based position in the request.")
        id = serializers.IntegerField()
        client_id = serializers.CharField()
        status = serializers.ChoiceField(choices=["created", "duplicate"])
        item = serializers.IntegerField(allow_null=True, help_text="The item it joined; null while it waits for it.")
        joined = serializers.BooleanField()

    class OutputSerializer(serializers.Serializer):
        created = serializers.IntegerField()
        duplicates = serializers.IntegerField()
        rows = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        operation_id="feedback_send",
        tags=TAGS,
        summary="Send end users' feedback",
        description=(
            f"A JSON list of up to {MAX_BATCH} feedback objects (or one object). Each names its answer by `trace_id` "
            'and/or `external_id` (the item\'s), and is a `thumbs` (`value` "up"/"down"), a `rating` (`value` 1 '
            "to 5) or a `comment` (text in `comment`; thumbs and ratings may carry one too). `client_id` is your id "
            "for the feedback: sending one again stores nothing and answers the stored row (`duplicate`). "
            "Feedback whose item has not arrived yet waits and joins it when it is ingested. Every row is checked "
            "first; when any is bad nothing is written and the 400 lists each problem as `{index, field, message}`. "
            "Needs the `feedback` capability (token scope `feedback`). 201 when any row was created, else 200."
        ),
        request={
            "application/json": {
                "oneOf": [
                    json_schema(FeedbackIn),
                    {"type": "array", "items": json_schema(FeedbackIn), "maxItems": MAX_BATCH},
                ]
            }
        },
        responses={
            201: OutputSerializer,
            200: OutputSerializer,
            400: OpenApiResponse(ValidationErrorSerializer, description="Nothing was written; fix every listed row."),
        },
    )
    def post(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.FEEDBACK, token=request.auth)
        data: Any = request.data
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise ValidationFailed(
                [field_error("", "Expected an object or a list of objects.")],
                "Send one feedback object, or a JSON list of them.",
            )
        result = feedback_ingest(project=project, rows=data, actor=request.user)
        rows = [
            {
                "index": o.index,
                "id": o.feedback.pk,
                "client_id": o.feedback.client_id,
                "status": "created" if o.created else "duplicate",
                "item": o.feedback.item_id,
                "joined": o.feedback.item_id is not None,
            }
            for o in result.outcomes
        ]
        body = {
            "created": result.created,
            "duplicates": result.duplicates,
            "rows": FeedbackSendApi.RowSerializer(rows, many=True).data,
        }
        return Response(body, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


class FeedbackListApi(BaseApi):
    class FilterSerializer(serializers.Serializer):
        item = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID, help_text="An item's id.")
        trace_id = serializers.CharField(required=False, max_length=200)
        kind = serializers.ChoiceField(required=False, choices=Feedback.Kind.choices)
        value = serializers.ChoiceField(required=False, choices=FEEDBACK_VALUES, help_text="up, down, or a rating.")

    @extend_schema(
        operation_id="feedback_list",
        tags=TAGS,
        summary="List end users' feedback",
        description=(
            "Oldest first, by cursor; `item` null means it waits for its item. Comments are untrusted end-user "
            "text. Needs the `export` capability (token scope `export`)."
        ),
        parameters=[FilterSerializer, *PAGE_PARAMETERS],
        responses={200: paginated("PaginatedFeedbackList", FeedbackSerializer(many=True))},
    )
    def get(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.EXPORT, token=request.auth)
        filters = FeedbackListApi.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        rows = feedback_list(
            project=project,
            item_id=data.get("item"),
            trace_id=data.get("trace_id", ""),
            kind=data.get("kind", ""),
            value=data.get("value", ""),
        )
        return paginated_response(queryset=rows, serializer_class=FeedbackSerializer, request=request, view=self)


class ProjectFeedbackApi(FeedbackSendApi, FeedbackListApi):
    """``/projects/{slug}/feedback/``: GET is FeedbackListApi, POST is FeedbackSendApi."""


def _id(text: str) -> bool:
    text = text.strip()
    return text.isascii() and text.isdigit() and 0 < int(text) <= MAX_ID


class FeedbackSummaryApi(BaseApi):
    MAX_ITEMS = 1000

    @extend_schema(
        operation_id="feedback_summary",
        tags=TAGS,
        summary="End users' feedback per item",
        description=(
            "For each item named (`item`, repeated or comma-separated, at most 1,000) that has feedback: thumbs up "
            "and down, ratings and their mean, comments and the latest three (untrusted text). Items without "
            "feedback are absent. Needs the `export` capability (token scope `export`)."
        ),
        parameters=[OpenApiParameter("item", int, many=True, description="Item ids.")],
        responses={200: OpenApiResponse(description="`{item id: summary}`"), 400: ValidationErrorSerializer},
    )
    def get(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.EXPORT, token=request.auth)
        raw = [part for value in request.query_params.getlist("item") for part in value.split(",") if part.strip()]
        if len(raw) > self.MAX_ITEMS or not all(_id(part) for part in raw):
            raise ValidationFailed(
                [field_error("item", f"Item ids (whole numbers), at most {self.MAX_ITEMS}.")], "Bad item ids."
            )
        ids = sorted({int(part) for part in raw})  # every part checked by _id
        # Only this project's items: another project's id answers nothing.
        owned = list(project.items.filter(pk__in=ids).values_list("id", flat=True)) if ids else []
        summaries = feedback_summary_for_items(owned)
        return Response({str(item_id): summary.as_dict() for item_id, summary in summaries.items()})


urlpatterns: list[URLPattern] = [
    path("projects/<slug:slug>/feedback/", ProjectFeedbackApi.as_view(), name="api-feedback"),
    path("projects/<slug:slug>/feedback/summary/", FeedbackSummaryApi.as_view(), name="api-feedback-summary"),
]
