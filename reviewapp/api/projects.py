from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from reviewapp.api.base import ApiRequest, BaseApi
from reviewapp.api.schema import json_schema
from reviewapp.api.serializers import QuestionSerializer, ValidationErrorSerializer
from reviewapp.models import ProjectSync, Role
from reviewapp.models.projects import QueueMode
from reviewapp.permissions import Capability, may_create_projects, token_may_read
from reviewapp.selectors.projects import (
    project_get_for_user,
    project_list_for_user,
    project_sync_get,
    project_sync_latest,
    questions_for_project,
)
from reviewapp.services.projects import ProjectFields, project_archive, project_restore, project_setup, project_update

INVALID = OpenApiResponse(ValidationErrorSerializer, description="Each bad field: {index, field, message}.")


def _may_create(request: ApiRequest) -> None:
    if request.auth is not None:
        raise PermissionDenied("API tokens cannot create projects; sign in.")
    if not may_create_projects(request.user):
        raise PermissionDenied(
            "Creating projects needs an instance admin, or the permission to add projects that an instance "
            "admin grants."
        )


class ProjectSyncSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reason = serializers.ChoiceField(choices=ProjectSync.Reason.choices)
    status = serializers.ChoiceField(choices=ProjectSync.Status.choices)
    items_total = serializers.IntegerField()
    items_done = serializers.IntegerField()
    percent = serializers.IntegerField()
    attempts = serializers.IntegerField()
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class ProjectSettingsSerializer(serializers.Serializer):
    """A project's settings, as an admin sets them (POST and PATCH answer with this)."""

    slug = serializers.SlugField()
    name = serializers.CharField()
    description = serializers.CharField()
    guidelines = serializers.CharField(help_text="Reviewer guidelines (markdown).")
    role = serializers.ChoiceField(source="user_role", choices=Role.choices, help_text="Your role on the project.")
    reviews_per_item = serializers.IntegerField()
    queue_mode = serializers.ChoiceField(choices=QueueMode.choices)
    lease_seconds = serializers.IntegerField()
    gold_rate = serializers.FloatField()
    show_model_to_reviewers = serializers.BooleanField()
    self_adjudication = serializers.BooleanField()
    archived_at = serializers.DateTimeField(allow_null=True, help_text="Set while the project is archived.")
    sync = ProjectSyncSerializer(
        allow_null=True,
        help_text="The background sync a change of reviews per item started (slots and curation), "
        "to follow at /projects/{slug}/syncs/{id}/; null when none was needed.",
    )


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
        archived = request.query_params.get("archived") in ("1", "true")
        rows = project_list_for_user(user=request.user, include_archived=archived)
        if token is not None and token.project_id is not None:
            rows = [row for row in rows if row.project.pk == token.project_id]
        return Response(ProjectListApi.OutputSerializer(rows, many=True).data)

    @extend_schema(
        operation_id="projects_create",
        tags=["projects"],
        summary="Create a project",
        description="Instance admins, and users an instance admin granted the `reviewapp.add_project` "
        "permission, create projects; the creator becomes the project's admin. Signed-in sessions only: "
        "an API token cannot create projects. Audited.",
        request={"application/json": json_schema(ProjectFields)},
        responses={201: ProjectSettingsSerializer, 400: INVALID},
    )
    def post(self, request: ApiRequest) -> Response:
        _may_create(request)
        project = project_setup(data=request.data, actor=request.user)
        project.user_role = Role.ADMIN  # type: ignore[attr-defined]
        project.sync = None  # type: ignore[attr-defined]
        return Response(ProjectSettingsSerializer(project).data, status=status.HTTP_201_CREATED)


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
        queue_mode = serializers.ChoiceField(choices=QueueMode.choices)
        gold_rate = serializers.FloatField()
        show_model_to_reviewers = serializers.BooleanField()
        archived_at = serializers.DateTimeField(allow_null=True, help_text="Set while the project is archived.")
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

    @extend_schema(
        operation_id="projects_update",
        tags=["projects"],
        summary="Change a project's settings (admins)",
        description="Any of the fields of `projects_create` except `slug`. A change of `reviews_per_item` on "
        "a project with items starts a background sync of its slots and curated labels (`sync`). Each change "
        "is in the audit log. 403 while the project is archived.",
        request={"application/json": json_schema(ProjectFields)},
        responses={200: ProjectSettingsSerializer, 400: INVALID},
    )
    def patch(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.MANAGE, token=request.auth)
        updated = project_update(project=project, data=request.data, actor=request.user)
        updated.user_role = project.user_role  # type: ignore[attr-defined]
        return Response(ProjectSettingsSerializer(updated).data)


def _settings_answer(project: Any, role: str) -> Response:
    project.user_role = role
    project.sync = project_sync_latest(project=project)
    return Response(ProjectSettingsSerializer(project).data)


class ProjectArchiveApi(BaseApi):
    @extend_schema(
        operation_id="projects_archive",
        tags=["projects"],
        summary="Archive a project (admins)",
        description="The project becomes read-only (no ingest, queue, reviews or edits) and leaves project "
        "lists unless `?archived=1`. Audited; archiving an archived project changes nothing.",
        request=None,
        responses=ProjectSettingsSerializer,
    )
    def post(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.MANAGE, token=request.auth)
        return _settings_answer(project_archive(project=project, actor=request.user), project.user_role)  # type: ignore[attr-defined]


class ProjectRestoreApi(BaseApi):
    @extend_schema(
        operation_id="projects_restore",
        tags=["projects"],
        summary="Restore an archived project (admins)",
        description="Writable and listed again; its slots are brought in line with its settings by a sync. Audited.",
        request=None,
        responses=ProjectSettingsSerializer,
    )
    def post(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.MANAGE, token=request.auth)
        return _settings_answer(project_restore(project=project, actor=request.user), project.user_role)  # type: ignore[attr-defined]


class ProjectSyncApi(BaseApi):
    @extend_schema(
        operation_id="projects_sync_retrieve",
        tags=["projects"],
        summary="Progress of a project sync",
        description="A sync brings every item's slots and curated label in line after a settings change; "
        "it runs in the background and resumes where it stopped if a worker dies.",
        responses=ProjectSyncSerializer,
    )
    def get(self, request: ApiRequest, slug: str, pk: int) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.VIEW, token=request.auth)
        return Response(ProjectSyncSerializer(project_sync_get(project=project, pk=pk)).data)
