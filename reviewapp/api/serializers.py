"""Output serializers shared by several APIs (an item, a question, a review)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from reviewapp.api.schema import json_schema
from reviewapp.models import ApiToken, Question
from reviewapp.services.ingest import ChatRequest, ContextChunk


@extend_schema_field(json_schema(str | ChatRequest))
class RequestField(serializers.JSONField):
    """Text, or a chat ``{"messages": [{"role", "content"}, ...]}``."""


@extend_schema_field(json_schema(list[ContextChunk]))
class ContextField(serializers.JSONField):
    """The retrieved chunks: ``[{"doc_uri", "content"}, ...]``."""


class ItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    request = RequestField()
    response = serializers.CharField(help_text="Markdown.")
    retrieved_context = ContextField()
    model_name = serializers.CharField()
    model_version = serializers.CharField()
    trace_id = serializers.CharField()
    source = serializers.CharField()
    metadata = serializers.DictField()
    priority = serializers.IntegerField()
    review_count = serializers.IntegerField(help_text="Submitted reviews so far.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class QuestionSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The key of this question's answer in a review's `answers`.")
    title = serializers.CharField()
    instructions = serializers.CharField()
    kind = serializers.ChoiceField(choices=Question.Kind.choices)
    assessment_type = serializers.ChoiceField(choices=Question.AssessmentType.choices)
    required = serializers.BooleanField()
    order = serializers.IntegerField()
    options = serializers.DictField(
        help_text='rating / context_relevance: {"min", "max", "min_label", "max_label"}; '
        'choice / multi_choice: {"choices": [...]}.'
    )


class ReviewSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.CharField(source="project.slug")
    item = serializers.IntegerField(source="item_id")
    item_external_id = serializers.CharField(source="item.external_id")
    assignment = serializers.IntegerField(source="assignment_id", allow_null=True)
    reviewer = serializers.CharField(source="reviewer.username")
    answers = serializers.DictField(help_text="Keyed by question key.")
    comment = serializers.CharField()
    time_on_task_ms = serializers.IntegerField(allow_null=True)
    schema_version = serializers.IntegerField(help_text="The version of the question set this review answered.")
    submitted_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    returned_at = serializers.DateTimeField(
        allow_null=True, help_text="Set when a curator sent it back for re-review: kept as history, no longer counts."
    )


class RevisionSerializer(serializers.Serializer):
    answers = serializers.DictField()
    comment = serializers.CharField()
    edited_by = serializers.CharField(source="edited_by.username")
    replaced_at = serializers.DateTimeField()


class ReviewWithHistorySerializer(ReviewSerializer):
    revisions = RevisionSerializer(source="revisions_list", many=True, help_text="Earlier answers, newest first.")


class TokenSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The public part of the token: rd_<prefix>_…")
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ApiToken.Scope.choices))
    project = serializers.CharField(source="project.slug", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)


class FieldErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(allow_null=True, help_text="Which item (0-based), when the body has several.")
    field = serializers.CharField(help_text='A dotted path, e.g. "retrieved_context[1].content"; "" for the whole row.')
    message = serializers.CharField()


class ValidationErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = FieldErrorSerializer(many=True)


class ConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.ChoiceField(
        choices=["lease_lost", "already_submitted", "item_removed", "review_returned", "conflict"]
    )
