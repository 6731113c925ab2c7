"""People over REST: a project's members and invitations (project admins), the instance's users
(instance admins). Bodies are read by the services' typed inputs (reviewapp/typed_input.py), so a
bad field is a 400 with ``{index, field, message}``; the last admin is a 409.

API tokens have no scope for managing people: these endpoints answer a token with 403, so a leaked
token cannot add members, mint invitations or deactivate users.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from reviewapp.api.base import ApiRequest, BaseApi, SessionOnly
from reviewapp.api.serializers import ValidationErrorSerializer
from reviewapp.models import Project, Role
from reviewapp.models.invitations import InvitationStatus
from reviewapp.permissions import Capability
from reviewapp.selectors.members import (
    instance_user_get,
    instance_user_list,
    invitation_get,
    invitation_list,
    member_get,
    member_list,
)
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.services.instance import instance_admin_set, user_set_active
from reviewapp.services.invitations import MAX_DAYS, invitation_create, invitation_path, invitation_revoke
from reviewapp.services.members import member_add, member_remove, member_role_change
from reviewapp.typed_input import refusal

INVALID = OpenApiResponse(ValidationErrorSerializer, description="Each bad field.")
LAST_ADMIN = OpenApiResponse(description="The project's (or instance's) last admin: `code` says which.")


def _managed_project(request: ApiRequest, slug: str) -> Project:
    return project_get_for_user(user=request.user, slug=slug, capability=Capability.MANAGE, token=request.auth)


# --- members --------------------------------------------------------------------------------


class MemberSerializer(serializers.Serializer):
    username = serializers.CharField(source="user.username")
    role = serializers.ChoiceField(choices=Role.choices)
    is_active = serializers.BooleanField(source="user.is_active")
    reviews = serializers.IntegerField(help_text="Current reviews on this project.")
    last_review = serializers.DateTimeField(allow_null=True, help_text="When they last submitted a review here.")
    created_at = serializers.DateTimeField()


class MemberInSerializer(serializers.Serializer):
    username = serializers.CharField(help_text="An existing, active user.")
    role = serializers.ChoiceField(choices=Role.choices, default=Role.REVIEWER)


class RoleInSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


def _member_row(project: Project, username: str) -> Any:
    return member_list(project=project).get(user__username=username)


class ProjectMembersApi(BaseApi):
    @extend_schema(
        operation_id="members_list",
        tags=["people"],
        summary="The project's members, with their role and review activity",
        description="Project admins, signed in (API tokens get 403).",
        responses=MemberSerializer(many=True),
    )
    def get(self, request: ApiRequest, slug: str) -> Response:
        project = _managed_project(request, slug)
        return Response(MemberSerializer(member_list(project=project), many=True).data)

    @extend_schema(
        operation_id="members_create",
        tags=["people"],
        summary="Add an existing user to the project",
        request=MemberInSerializer,
        responses={201: MemberSerializer, 400: INVALID},
    )
    def post(self, request: ApiRequest, slug: str) -> Response:
        project = _managed_project(request, slug)
        membership = member_add(project=project, data=request.data, actor=request.user)
        return Response(
            MemberSerializer(_member_row(project, membership.user.username)).data, status=status.HTTP_201_CREATED
        )


class MemberDetailApi(BaseApi):
    @extend_schema(
        operation_id="members_update",
        tags=["people"],
        summary="Change a member's role",
        description="The project's last admin cannot be demoted (409, `code` `last_admin`).",
        request=RoleInSerializer,
        responses={200: MemberSerializer, 400: INVALID, 409: LAST_ADMIN},
    )
    def patch(self, request: ApiRequest, slug: str, username: str) -> Response:
        project = _managed_project(request, slug)
        member_role_change(
            membership=member_get(project=project, username=username), data=request.data, actor=request.user
        )
        return Response(MemberSerializer(_member_row(project, username)).data)

    @extend_schema(
        operation_id="members_delete",
        tags=["people"],
        summary="Remove a member",
        description=(
            "Their reviews stay; they leave the project's reviewer groups and their open slots are assigned "
            "to nobody. The last admin cannot be removed (409, `code` `last_admin`)."
        ),
        responses={204: OpenApiResponse(description="Removed."), 409: LAST_ADMIN},
    )
    def delete(self, request: ApiRequest, slug: str, username: str) -> Response:
        project = _managed_project(request, slug)
        member_remove(membership=member_get(project=project, username=username), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- invitations ----------------------------------------------------------------------------


class InvitationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    prefix = serializers.CharField(help_text="The public part of the link (`inv_<prefix>_…`).")
    role = serializers.ChoiceField(choices=Role.choices)
    email = serializers.CharField()
    status = serializers.ChoiceField(choices=InvitationStatus.choices)
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    accepted_by = serializers.CharField(source="accepted_by.username", allow_null=True, default=None)
    accepted_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)


class InvitationInSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices, default=Role.REVIEWER)
    days = serializers.IntegerField(min_value=1, max_value=MAX_DAYS, default=7, help_text="Days until it expires.")
    email = serializers.EmailField(
        required=False, help_text="Mailed the link when the server has EMAIL_URL; anyone with the link may accept."
    )


class InvitationCreatedSerializer(InvitationSerializer):
    url = serializers.CharField(help_text="The one-time link. It is in this response only; the server keeps a hash.")
    mailed = serializers.BooleanField(help_text="Whether the server also mails it (EMAIL_URL set and email given).")


class ProjectInvitationsApi(BaseApi):
    @extend_schema(
        operation_id="invitations_list",
        tags=["people"],
        summary="The project's invitations, newest first",
        responses=InvitationSerializer(many=True),
    )
    def get(self, request: ApiRequest, slug: str) -> Response:
        project = _managed_project(request, slug)
        return Response(InvitationSerializer(invitation_list(project=project), many=True).data)

    @extend_schema(
        operation_id="invitations_create",
        tags=["people"],
        summary="Create a one-time invitation link",
        request=InvitationInSerializer,
        responses={201: InvitationCreatedSerializer, 400: INVALID},
    )
    def post(self, request: ApiRequest, slug: str) -> Response:
        project = _managed_project(request, slug)
        invitation, raw = invitation_create(
            project=project, data=request.data, actor=request.user, base_url=request.build_absolute_uri("/")
        )
        body = dict(InvitationSerializer(invitation).data)
        body["url"] = request.build_absolute_uri(invitation_path(raw))
        body["mailed"] = bool(invitation.email and settings.EMAIL_ENABLED)
        return Response(body, status=status.HTTP_201_CREATED)


class InvitationDetailApi(BaseApi):
    @extend_schema(
        operation_id="invitations_revoke",
        tags=["people"],
        summary="Revoke an invitation",
        description="A pending link stops working at once; an accepted one is left as it is.",
        responses={200: InvitationSerializer},
    )
    def delete(self, request: ApiRequest, slug: str, pk: int) -> Response:
        project = _managed_project(request, slug)
        invitation = invitation_revoke(invitation=invitation_get(project=project, pk=pk), actor=request.user)
        return Response(InvitationSerializer(invitation).data)


# --- instance users -------------------------------------------------------------------------


class ProjectRoleSerializer(serializers.Serializer):
    project = serializers.CharField(help_text="The project's slug.")
    role = serializers.ChoiceField(choices=Role.choices)


class UserSerializer(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.CharField()
    is_active = serializers.BooleanField()
    is_instance_admin = serializers.BooleanField()
    last_login = serializers.DateTimeField(allow_null=True)
    projects = ProjectRoleSerializer(many=True)


class UserInSerializer(serializers.Serializer):
    is_active = serializers.BooleanField(required=False, help_text="false: sessions and API tokens stop at once.")
    is_instance_admin = serializers.BooleanField(required=False)


def _user_body(user: Any, projects: list[tuple[Project, str]]) -> dict[str, Any]:
    return {
        "username": user.username,
        "email": user.email,
        "is_active": user.is_active,
        "is_instance_admin": user.is_superuser,
        "last_login": user.last_login,
        "projects": [{"project": p.slug, "role": role} for p, role in projects],
    }


class InstanceAdminOnly(SessionOnly):
    message = "Only instance admins manage users, signed in (API tokens cannot)."

    def has_permission(self, request: Any, view: Any) -> bool:
        return super().has_permission(request, view) and bool(request.user.is_superuser and request.user.is_active)


class UsersApi(BaseApi):
    permission_classes = [InstanceAdminOnly]

    @extend_schema(
        operation_id="users_list",
        tags=["people"],
        summary="Every user, with their projects and roles",
        description="Instance admins, signed in.",
        responses=UserSerializer(many=True),
    )
    def get(self, request: ApiRequest) -> Response:
        return Response(UserSerializer([_user_body(r.user, r.projects) for r in instance_user_list()], many=True).data)


class UserDetailApi(BaseApi):
    permission_classes = [InstanceAdminOnly]

    @extend_schema(
        operation_id="users_update",
        tags=["people"],
        summary="Deactivate or reactivate a user; grant or revoke instance admin",
        description="The last active instance admin cannot be deactivated or revoked (409).",
        request=UserInSerializer,
        responses={200: UserSerializer, 400: INVALID, 409: LAST_ADMIN},
    )
    def patch(self, request: ApiRequest, username: str) -> Response:
        user = instance_user_get(username=username)
        data = request.data if isinstance(request.data, dict) else None
        if data is None:
            raise refusal("", "Give an object.")
        for key, value in data.items():
            if key not in {"is_active", "is_instance_admin"}:
                raise refusal(str(key), "Unknown field.")
            if not isinstance(value, bool):
                raise refusal(str(key), "Give true or false.")
        if "is_active" in data:
            user_set_active(user=user, active=data["is_active"], actor=request.user)
        if "is_instance_admin" in data:
            instance_admin_set(user=user, admin=data["is_instance_admin"], actor=request.user)
        row = next((r for r in instance_user_list() if r.user.pk == user.pk), None)
        if row is None:  # pragma: no cover  deleted meanwhile
            raise Http404("No such user.")
        return Response(UserSerializer(_user_body(row.user, row.projects)).data)
