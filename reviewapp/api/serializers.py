"""Output serializers shared by several APIs (an item, a question, a review)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from reviewapp.api.schema import json_schema
from reviewapp.blind import item_data_for_reviewer
from reviewapp.models import ApiToken, Question
from reviewapp.services.ingest import ChatRequest, ContextChunk


@extend_schema_field(json_schema(str | ChatRequest))
class RequestField(serializers.JSONField):
    """Text, or a chat ``{"messages": [{"role", "content"}, ...]}``."""


@extend_schema_field(json_schema(list[ContextChunk]))
class ContextField(serializers.JSONField):
    """The retrieved chunks: ``[{"doc_uri", "content"}, ...]``."""


BLIND = "Left out for reviewers while the project hides models from them (`show_model_to_reviewers` off)."


class ItemSerializer(serializers.Serializer):
    """An item. With ``context={"blind": True}`` (a reviewer of a blind project, ``reviewapp.blind``)
    its model name, version, trace id, source and external id are left out and its metadata loses
    the keys that identify a version."""

    id = serializers.IntegerField()
    external_id = serializers.CharField(required=False, help_text=BLIND)
    request = RequestField()
    response = serializers.CharField(help_text="Markdown.")
    retrieved_context = ContextField()
    model_name = serializers.CharField(required=False, help_text=BLIND)
    model_version = serializers.CharField(required=False, help_text=BLIND)
    trace_id = serializers.CharField(required=False, help_text=BLIND)
    source = serializers.CharField(required=False, help_text=BLIND)  # type: ignore[assignment]  # DRF's metaclass moves declared fields off the class
    metadata = serializers.DictField(help_text="Keys naming a model, version, endpoint, trace or run: " + BLIND)
    priority = serializers.IntegerField()
    review_count = serializers.IntegerField(help_text="Submitted reviews so far.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        return item_data_for_reviewer(data) if self.context.get("blind") else data


class BlindItemSerializer(ItemSerializer):
    """ItemSerializer for reviewers of a blind project, where a serializer class is passed (pages)."""

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return item_data_for_reviewer(super().to_representation(instance))


class QuestionSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The key of this question's answer in a review's `answers`.")
    title = serializers.CharField()
    instructions = serializers.CharField()
    kind = serializers.ChoiceField(choices=Question.Kind.choices)
    assessment_type = serializers.ChoiceField(choices=Question.AssessmentType.choices)
    required = serializers.BooleanField()  # type: ignore[assignment]  # DRF's metaclass moves declared fields off the class
    order = serializers.IntegerField()
    options = serializers.DictField(
        help_text='rating / context_relevance: {"min", "max", "min_label", "max_label"}; '
        'choice / multi_choice: {"choices": [...]}.'
    )


class ReviewSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.CharField(source="project.slug")
    item = serializers.IntegerField(source="item_id")
    item_external_id = serializers.CharField(source="item.external_id", required=False, help_text=BLIND)
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

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        if self.context.get("blind"):
            data.pop("item_external_id", None)
        return data


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
    errors = FieldErrorSerializer(many=True)  # type: ignore[assignment]  # DRF's metaclass moves declared fields off the class


class ConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.ChoiceField(
        choices=["lease_lost", "already_submitted", "item_removed", "review_returned", "conflict"]
    )
