from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from reviewapp.api.base import ApiRequest, BaseApi
from reviewapp.api.serializers import QuestionSerializer
from reviewapp.models import Role
from reviewapp.permissions import Capability, token_may_read
from reviewapp.selectors.projects import project_get_for_user, project_list_for_user, questions_for_project


class ProjectListApi(BaseApi):
    class OutputSerializer(serializers.Serializer):
        slug = serializers.SlugField(source="project.slug")
        name = serializers.CharField(source="project.name")
        description = serializers.CharField(source="project.description")
        role = serializers.ChoiceField(choices=Role.choices, help_text="Your role on the project.")
        reviews_per_item = serializers.IntegerField(source="project.reviews_per_item")
        items = serializers.IntegerField()
        reviews = serializers.IntegerField(help_text="Submitted reviews, by everyone.")
        my_reviews = serializers.IntegerField(help_text="Reviews you submitted.")
        percent = serializers.IntegerField(help_text="Share of review slots filled.")

    @extend_schema(
        operation_id="projects_list",
        tags=["projects"],
        summary="Your projects",
        description="The projects you are a member of, with review progress. "
        "A token pinned to one project sees only that project.",
        responses=OutputSerializer(many=True),
    )
    def get(self, request: ApiRequest) -> Response:
        token = request.auth
        if token is not None and not token_may_read(token.scopes):
            raise PermissionDenied(f"This API token's scopes ({', '.join(token.scopes)}) read nothing.")
        rows = project_list_for_user(user=request.user)
        if token is not None and token.project_id is not None:
            rows = [row for row in rows if row.project.pk == token.project_id]
        return Response(ProjectListApi.OutputSerializer(rows, many=True).data)


class ProjectDetailApi(BaseApi):
    class OutputSerializer(serializers.Serializer):
        slug = serializers.SlugField()
        name = serializers.CharField()
        description = serializers.CharField()
        guidelines = serializers.CharField(help_text="Reviewer guidelines (markdown).")
        role = serializers.ChoiceField(source="user_role", choices=Role.choices, help_text="Your role on the project.")
        reviews_per_item = serializers.IntegerField()
        lease_seconds = serializers.IntegerField(help_text="How long a reviewer holds an item from queue/next.")
        schema_version = serializers.IntegerField(help_text="Bumped when the questions change after reviews exist.")
        self_adjudication = serializers.BooleanField(
            help_text="Whether a curator may decide an item they reviewed (off by default)."
        )
        questions = QuestionSerializer(
            source="questions_list", many=True, help_text="The label schema: what a review answers."
        )

    @extend_schema(
        operation_id="projects_retrieve",
        tags=["projects"],
        summary="A project and its questions",
        responses=OutputSerializer,
    )
    def get(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.VIEW, token=request.auth)
        project.questions_list = questions_for_project(project=project)  # type: ignore[attr-defined]
        data = ProjectDetailApi.OutputSerializer(project).data
        return Response(data)
