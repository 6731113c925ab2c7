"""Curation over REST: the adjudication queue and decisions, curated labels, schema versions."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from reviewapp.api.base import BaseApi
from reviewapp.api.items import PAGE_PARAMETERS
from reviewapp.api.pagination import paginated_response
from reviewapp.api.schema import paginated
from reviewapp.api.serializers import ItemSerializer, QuestionSerializer, ValidationErrorSerializer
from reviewapp.models import Adjudication, CuratedLabel, Question
from reviewapp.permissions import Capability
from reviewapp.selectors.curation import (
    adjudication_detail,
    adjudication_get_for_user,
    adjudication_list,
    curated_label_list,
    schema_version_list,
)
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.services.curation import adjudication_decide

STATUS_FILTERS = [*Adjudication.Status.values, "all"]


class AdjudicationDisagreementSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The question key.")
    reason = serializers.CharField(help_text='Why the reviews do not combine, e.g. "tie: 1 x pass, 1 x fail".')


class AdjudicationSerializer(serializers.Serializer):
    item = serializers.IntegerField(source="item_id")
    item_external_id = serializers.CharField(source="item.external_id")
    status = serializers.ChoiceField(choices=Adjudication.Status.choices)
    reason = serializers.ChoiceField(choices=Adjudication.Reason.choices)
    disagreements = AdjudicationDisagreementSerializer(many=True, help_text="The questions the reviewers disagree on.")
    schema_version = serializers.IntegerField(
        allow_null=True, help_text="The schema version of the reviews; null when they answered different versions."
    )
    version = serializers.IntegerField(help_text="Send it back with a decision; it changes whenever this row does.")
    review_count = serializers.IntegerField(source="item.review_count")
    decidable_by_you = serializers.BooleanField(
        default=True,
        help_text="False when you reviewed the item and the project does not allow self-adjudication.",
    )
    opened_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)


@extend_schema_field({"type": "array", "items": {"type": "integer"}})
class ReviewIdsField(serializers.Field):
    """A many-to-many of reviews as their ids (uses the prefetched rows)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value: Any) -> list[int]:
        return sorted(review.pk for review in value.all())


class CuratedLabelSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    item = serializers.IntegerField(source="item_id")
    item_external_id = serializers.CharField(source="item.external_id")
    answers = serializers.DictField(help_text="Final answers, keyed by question key.")
    expected_response = serializers.CharField()
    expected_facts = serializers.ListField(child=serializers.CharField())
    method = serializers.ChoiceField(choices=CuratedLabel.Method.choices)
    decided_by = serializers.CharField(
        source="decided_by.username", allow_null=True, default=None, help_text="The curator; null for a consensus."
    )
    rationale = serializers.CharField()
    reviews = ReviewIdsField(help_text="The ids of the reviews the label rests on.")
    agreement = serializers.DictField(
        help_text="Snapshot at decision time: per question the rule, each review's value, and whether they agreed."
    )
    schema_version = serializers.IntegerField()
    reviews_changed_at = serializers.DateTimeField(
        allow_null=True, help_text="Set when the reviews changed after a curator decided (the label stays)."
    )
    self_adjudicated = serializers.BooleanField(
        help_text="The deciding curator had reviewed the item (allowed by the project's self_adjudication)."
    )
    version = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class CurationConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.ChoiceField(choices=["already_decided", "reviews_changed", "item_removed"])


class AdjudicationListApi(BaseApi):
    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(
            choices=STATUS_FILTERS, required=False, default=Adjudication.Status.OPEN, help_text="Default: open."
        )

    @extend_schema(
        operation_id="adjudications_list",
        tags=["curation"],
        summary="The adjudication queue",
        description=(
            "Items whose reviews disagree (or answered different question versions), oldest first, by cursor, "
            "with the questions they disagree on. Needs the `curate` capability (token scope `curate`)."
        ),
        parameters=[FilterSerializer, *PAGE_PARAMETERS],
        responses=paginated("PaginatedAdjudicationList", AdjudicationSerializer(many=True)),
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE, token=request.auth)
        filters = AdjudicationListApi.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        status = filters.validated_data["status"]
        rows = adjudication_list(project=project, status=None if status == "all" else status, user=request.user)
        return paginated_response(queryset=rows, serializer_class=AdjudicationSerializer, request=request, view=self)


class AdjudicationReviewSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reviewer = serializers.CharField(source="reviewer.username")
    answers = serializers.DictField()
    comment = serializers.CharField()
    time_on_task_ms = serializers.IntegerField(allow_null=True)
    schema_version = serializers.IntegerField()
    submitted_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ComparisonSerializer(serializers.Serializer):
    key = serializers.CharField()
    title = serializers.CharField()
    kind = serializers.ChoiceField(choices=Question.Kind.choices)
    rule = serializers.CharField(help_text="The consensus rule; empty when the question is not combined.")
    agreed = serializers.BooleanField(allow_null=True, help_text="null: the question is not combined.")
    reason = serializers.CharField(help_text="Why the reviews disagree; empty when they agree.")
    suggestion = serializers.JSONField(allow_null=True, help_text="The consensus, or the majority/median if any.")


class AdjudicationDetailApi(BaseApi):
    class OutputSerializer(serializers.Serializer):
        adjudication = AdjudicationSerializer()
        item = ItemSerializer()
        questions = QuestionSerializer(many=True, help_text="Today's questions: what a decision answers.")
        reviews = AdjudicationReviewSerializer(many=True, help_text="Every current review of the item.")
        comparison = ComparisonSerializer(source="rows", many=True, help_text="Each question across the reviews.")
        suggested_answers = serializers.DictField(
            source="prefill", help_text="The decided answers, else the consensus or majority/median where one exists."
        )
        curated_label = CuratedLabelSerializer(source="label", allow_null=True)

    @extend_schema(
        operation_id="adjudications_retrieve",
        tags=["curation"],
        summary="An item to adjudicate, with all its reviews",
        description="Reviewer names, answers, comments and time on task, side by side. Needs `curate`.",
        responses=OutputSerializer,
    )
    def get(self, request: Request, slug: str, item_id: int) -> Response:
        adjudication = adjudication_get_for_user(user=request.user, slug=slug, item_id=item_id, token=request.auth)
        detail = adjudication_detail(adjudication=adjudication)
        return Response(AdjudicationDetailApi.OutputSerializer(detail).data)


class AdjudicationDecideApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        version = serializers.IntegerField(
            min_value=1, help_text="The adjudication `version` you loaded: a stale one is refused with 409."
        )
        answers = serializers.JSONField(help_text="The final answers, keyed by question key (like a review's).")
        expected_response = serializers.CharField(
            required=False, allow_blank=True, max_length=20_000, trim_whitespace=False
        )
        expected_facts = serializers.ListField(
            child=serializers.CharField(max_length=2_000), required=False, max_length=200
        )
        rationale = serializers.CharField(required=False, allow_blank=True, default="", max_length=20_000)

    @extend_schema(
        operation_id="adjudications_decide",
        tags=["curation"],
        summary="Decide an item's curated label",
        description=(
            "Writes the item's curated label (method `adjudicated`, decided by you) from the answers, checked "
            "like a review's. `expected_response` / `expected_facts` set the label's expectations (and the "
            "answers of questions of those kinds). 409 `already_decided` when someone decided since you loaded "
            "`version`, `reviews_changed` when the reviews changed. Deciding a decided item again replaces the "
            "label and keeps the old one in its history. An `expected_response` that repeats the response "
            "the answers fail is refused with 400. A curator who reviewed the item gets 403 unless the project "
            "allows `self_adjudication` (the label is then marked `self_adjudicated`). Needs `curate`."
        ),
        request=InputSerializer,
        responses={
            200: CuratedLabelSerializer,
            400: OpenApiResponse(ValidationErrorSerializer, description="Each bad field, e.g. `answers.correct`."),
            403: OpenApiResponse(
                description="You reviewed this item and the project does not allow self-adjudication."
            ),
            409: OpenApiResponse(CurationConflictSerializer, description="Reload the item and decide again."),
        },
    )
    def post(self, request: Request, slug: str, item_id: int) -> Response:
        adjudication = adjudication_get_for_user(user=request.user, slug=slug, item_id=item_id, token=request.auth)
        serializer = AdjudicationDecideApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        label = adjudication_decide(
            item=adjudication.item,
            user=request.user,
            expected_version=data["version"],
            answers=data["answers"],
            expected_response=data.get("expected_response"),
            expected_facts=data.get("expected_facts"),
            rationale=data["rationale"],
        )
        return Response(CuratedLabelSerializer(label).data)


class AdjudicationApi(AdjudicationDecideApi, AdjudicationDetailApi):
    """``/projects/{slug}/adjudications/{item_id}/``: GET is AdjudicationDetailApi, POST AdjudicationDecideApi."""


class CuratedLabelListApi(BaseApi):
    class FilterSerializer(serializers.Serializer):
        method = serializers.ChoiceField(choices=CuratedLabel.Method.choices, required=False)
        updated_since = serializers.DateTimeField(
            required=False, help_text="Only labels written or changed at or after this time (ISO 8601)."
        )
        item = serializers.IntegerField(required=False, help_text="An item id.")

    @extend_schema(
        operation_id="curated_labels_list",
        tags=["curation"],
        summary="A project's curated labels",
        description=(
            "The final label of every curated item, with how it was reached and the reviews behind it, by "
            "cursor. Needs the `export` capability (token scope `export`)."
        ),
        parameters=[FilterSerializer, *PAGE_PARAMETERS],
        responses=paginated("PaginatedCuratedLabelList", CuratedLabelSerializer(many=True)),
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.EXPORT, token=request.auth)
        filters = CuratedLabelListApi.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        lookups = {"method": "method", "updated_since": "updated_at__gte", "item": "item_id"}
        labels = curated_label_list(project=project).filter(
            **{lookups[key]: value for key, value in filters.validated_data.items()}
        )
        return paginated_response(queryset=labels, serializer_class=CuratedLabelSerializer, request=request, view=self)


class QuestionSnapshotSerializer(QuestionSerializer):
    consensus_rule = serializers.ChoiceField(choices=Question.ConsensusRule.choices)
    max_spread = serializers.IntegerField()


class SchemaVersionListApi(BaseApi):
    class OutputSerializer(serializers.Serializer):
        version = serializers.IntegerField()
        current = serializers.BooleanField(help_text="The version new reviews answer.")
        questions = QuestionSnapshotSerializer(many=True, help_text="The questions of this version.")
        created_at = serializers.DateTimeField()
        updated_at = serializers.DateTimeField()

    @extend_schema(
        operation_id="schema_versions_list",
        tags=["projects"],
        summary="A project's question-set versions",
        description=(
            "Each version of the questions, oldest first. A review's `schema_version` names the one it answered; "
            "adding or changing questions after reviews exist starts a new version. Needs `view`."
        ),
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.VIEW, token=request.auth)
        rows = list(schema_version_list(project=project))
        for row in rows:
            row.current = row.version == project.schema_version  # type: ignore[attr-defined]
        return Response(SchemaVersionListApi.OutputSerializer(rows, many=True).data)
