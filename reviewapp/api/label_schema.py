"""Schemas as code: read and replace a project's label schema as one JSON or YAML document.

``GET`` gives the document (``Accept: application/yaml`` or ``?format=yaml`` for YAML); ``PUT`` makes
the project's questions what a document says (``services.schema.schema_apply``). Errors are JSON
whatever was asked for, in the API's one 400 shape.
"""

from __future__ import annotations

from typing import IO, Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import renderers, serializers
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response

from reviewapp.api.base import ApiRequest, BaseApi
from reviewapp.api.parsers import BadJson, StrictJSONParser
from reviewapp.api.schema import json_schema
from reviewapp.api.serializers import ValidationErrorSerializer
from reviewapp.jsoninput import JsonInputError
from reviewapp.models import Question
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.services.schema import MAX_QUESTIONS, QuestionIn, schema_apply, schema_export
from reviewapp.yamlinput import yaml_decode, yaml_encode

YAML = "application/yaml"


class YamlParser(BaseParser):
    media_type = YAML

    def parse(self, stream: IO[bytes], media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return yaml_decode(stream.read())
        except JsonInputError as exc:
            raise BadJson(exc.message, exc.path) from None


class YamlRenderer(renderers.BaseRenderer):
    media_type = YAML
    format = "yaml"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return yaml_encode(data).encode() if data is not None else b""


class SchemaQuestionSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="Names the stored answers; a new key is a new question.")
    title = serializers.CharField()
    kind = serializers.ChoiceField(choices=Question.Kind.choices)
    instructions = serializers.CharField(help_text="Help text shown under the title.")
    assessment_type = serializers.ChoiceField(choices=Question.AssessmentType.choices)
    required = serializers.BooleanField()  # type: ignore[assignment]  # DRF's metaclass moves declared fields off the class
    options = serializers.DictField(
        help_text='rating / context_relevance: {"min", "max", "min_label", "max_label"}; '
        'choice / multi_choice: {"choices": [...]}.'
    )
    consensus_rule = serializers.ChoiceField(choices=Question.ConsensusRule.choices)
    max_spread = serializers.IntegerField()


class SchemaDocumentSerializer(serializers.Serializer):
    project = serializers.SlugField()
    schema_version = serializers.IntegerField(help_text="The version new reviews answer.")
    questions = SchemaQuestionSerializer(many=True, help_text="In display order.")


class SchemaChangesSerializer(serializers.Serializer):
    added = serializers.ListField(child=serializers.CharField(), help_text="Keys of new questions.")
    removed = serializers.ListField(child=serializers.CharField(), help_text="Keys of removed questions.")
    changed = serializers.ListField(child=serializers.CharField(), help_text="Keys of changed questions.")
    reordered = serializers.BooleanField()
    new_version = serializers.BooleanField(help_text="Reviews existed: the change started a new schema version.")


class SchemaApplyOutputSerializer(SchemaDocumentSerializer):
    changes = SchemaChangesSerializer()


_DOCUMENT_IN = {
    "type": "object",
    "properties": {
        "questions": {"type": "array", "items": json_schema(QuestionIn), "maxItems": MAX_QUESTIONS},
        "project": {
            "type": "string",
            "nullable": True,
            "description": "When given, it must be this project's slug (a file meant for another project is refused).",
        },
        "schema_version": {"type": "integer", "nullable": True, "description": "Informational; ignored."},
    },
    "required": ["questions"],
    "additionalProperties": False,
}
_FORMAT = OpenApiParameter(
    "format", str, enum=["json", "yaml"], description="The response's format (instead of an Accept header)."
)


class ProjectSchemaApi(BaseApi):
    parser_classes = [StrictJSONParser, YamlParser]
    renderer_classes = [renderers.JSONRenderer, YamlRenderer]

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(response, "status_code", 200) >= 400:
            # One error shape for every client: a YAML-speaking CI job still gets the documented JSON errors.
            request.accepted_renderer = renderers.JSONRenderer()
            request.accepted_media_type = "application/json"
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        operation_id="project_schema_retrieve",
        tags=["projects"],
        summary="A project's label schema as a document",
        description=(
            "The questions in display order with every field explicit, as JSON or YAML (`Accept: application/yaml` "
            "or `?format=yaml`). Keep it in Git and `PUT` it back. Needs `view`."
        ),
        parameters=[_FORMAT],
        responses=SchemaDocumentSerializer,
    )
    def get(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.VIEW, token=request.auth)
        return Response(schema_export(project=project))

    @extend_schema(
        operation_id="project_schema_apply",
        tags=["projects"],
        summary="Replace a project's label schema",
        description=(
            "Makes the questions exactly what the document lists, in its order: new keys are added, missing ones "
            "removed (reviews keep their answers), others changed. Once reviews exist, a change to what a question "
            "asks starts a new schema version (old reviews keep theirs). A document equal to the schema changes "
            "nothing: no new version, no audit event. A bad document writes nothing; the 400 lists every problem "
            "as `{index, field, message}`, `index` being the question's position. JSON or YAML "
            "(`Content-Type: application/yaml`; aliases refused). Needs `curate` (token scope `curate`)."
        ),
        parameters=[_FORMAT],
        request={"application/json": _DOCUMENT_IN, YAML: _DOCUMENT_IN},
        responses={
            200: SchemaApplyOutputSerializer,
            400: OpenApiResponse(ValidationErrorSerializer, description="Nothing was written; fix every problem."),
        },
    )
    def put(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE, token=request.auth)
        result = schema_apply(project=project, raw=request.data, actor=request.user)
        changes = {
            "added": result.added,
            "removed": result.removed,
            "changed": result.changed,
            "reordered": result.reordered,
            "new_version": result.new_version,
        }
        return Response({**schema_export(project=project), "changes": changes})
