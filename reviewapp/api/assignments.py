"""Curators run the queue: slot assignments (list, bulk assign by filter), reviewer groups,
queue settings, and sending an item back for re-review. Every operation needs CURATE
(token scope ``curate``)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from reviewapp.api.base import BaseApi
from reviewapp.api.fields import Int32Field, NumberField
from reviewapp.api.items import PAGE_PARAMETERS
from reviewapp.api.pagination import paginated_response
from reviewapp.api.schema import paginated
from reviewapp.api.serializers import ValidationErrorSerializer
from reviewapp.errors import ValidationFailed
from reviewapp.models import Assignment
from reviewapp.models.projects import QueueMode
from reviewapp.permissions import Capability, role_allows
from reviewapp.selectors.items import ItemQuery, item_get_for_user
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.selectors.queue import assignment_list
from reviewapp.selectors.team import reviewer_group_get, reviewer_group_list, reviewers_by_username
from reviewapp.services.assignments import (
    ADMIN_QUEUE_SETTINGS,
    MAX_SIBLING_SPACING,
    assignments_bulk_assign,
    item_send_back,
    project_queue_settings_set,
    reviewer_group_create,
    reviewer_group_delete,
    reviewer_group_update,
)
from reviewapp.typed_input import field_error

INVALID = OpenApiResponse(ValidationErrorSerializer, description="Each bad field.")


def _curated_project(request: Request, slug: str) -> Any:
    return project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE, token=request.auth)


def _reviewers(project: Any, usernames: list[str], field: str) -> list[Any]:
    users, missing = reviewers_by_username(project=project, usernames=usernames)
    if missing:
        raise ValidationFailed(
            [field_error(field, f"Not a reviewer of this project: {', '.join(missing)}.")],
            "Some reviewers are unknown.",
        )
    return users


# --- assignments -------------------------------------------------------------------------------


class AssignmentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    item = serializers.IntegerField(source="item_id")
    item_external_id = serializers.CharField(source="item.external_id")
    slot = serializers.IntegerField()
    state = serializers.SerializerMethodField(help_text="free, leased or submitted.")
    assigned_to = serializers.CharField(source="assigned_to.username", allow_null=True, default=None)
    assigned_group = serializers.IntegerField(source="assigned_group_id", allow_null=True)
    priority = serializers.IntegerField()
    is_gold = serializers.BooleanField(help_text="A slot of a gold item (never shown to reviewers).")
    reviewer = serializers.CharField(
        source="reviewer.username", allow_null=True, default=None, help_text="Who holds or filled the slot."
    )
    expires_at = serializers.DateTimeField(allow_null=True)
    submitted_at = serializers.DateTimeField(allow_null=True)

    def get_state(self, slot: Assignment) -> str:
        if slot.submitted_at is not None:
            return "submitted"
        if slot.reviewer_id is not None and slot.expires_at is not None and slot.expires_at >= timezone.now():
            return "leased"
        return "free"


class AssignmentListApi(BaseApi):
    class FilterSerializer(serializers.Serializer):
        item = serializers.IntegerField(required=False, help_text="An item id.")
        assigned_to = serializers.CharField(required=False, help_text="A reviewer's username.")
        group = serializers.IntegerField(required=False, help_text="A reviewer group id.")
        unassigned = serializers.BooleanField(required=False, help_text="Only slots assigned to nobody.")
        state = serializers.ChoiceField(required=False, choices=["free", "leased", "submitted"])

    @extend_schema(
        operation_id="assignments_list",
        tags=["assignments"],
        summary="The project's review slots and who they are assigned to",
        description="Oldest first, by cursor. Needs the `curate` capability (token scope `curate`).",
        parameters=[FilterSerializer, *PAGE_PARAMETERS],
        responses=paginated("PaginatedAssignmentList", AssignmentSerializer(many=True)),
    )
    def get(self, request: Request, slug: str) -> Response:
        project = _curated_project(request, slug)
        filters = AssignmentListApi.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        slots = assignment_list(project=project)
        if "item" in data:
            slots = slots.filter(item_id=data["item"])
        if "assigned_to" in data:
            slots = slots.filter(assigned_to__username=data["assigned_to"])
        if "group" in data:
            slots = slots.filter(assigned_group_id=data["group"])
        if data.get("unassigned"):
            slots = slots.filter(assigned_to__isnull=True, assigned_group__isnull=True)
        now = timezone.now()
        state = data.get("state")
        if state == "submitted":
            slots = slots.filter(submitted_at__isnull=False)
        elif state == "leased":
            slots = slots.filter(submitted_at__isnull=True, reviewer__isnull=False, expires_at__gte=now)
        elif state == "free":
            slots = slots.filter(submitted_at__isnull=True).exclude(reviewer__isnull=False, expires_at__gte=now)
        return paginated_response(queryset=slots, serializer_class=AssignmentSerializer, request=request, view=self)


class ItemFilterSerializer(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(), required=False, max_length=100_000)
    model_version = serializers.CharField(required=False, max_length=100)
    source = serializers.CharField(required=False, max_length=100)
    metadata = serializers.DictField(required=False, help_text='Exact match on each key, e.g. {"channel": "chat"}.')
    created_from = serializers.DateTimeField(required=False, help_text="Items created at or after (ISO 8601).")
    created_to = serializers.DateTimeField(required=False, help_text="Items created before (ISO 8601).")
    extra = serializers.DictField(
        required=False, help_text="Filters other apps register by name (e.g. judge scores once evaluations exist)."
    )


def item_query_from(data: dict[str, Any]) -> ItemQuery:
    """An ItemFilterSerializer's validated data (the bulk assignment names) as the one ItemQuery."""
    return ItemQuery(
        ids=tuple(data["ids"]) if "ids" in data else None,
        model_version=data.get("model_version"),
        source=data.get("source"),
        metadata=dict(data.get("metadata") or {}),
        created_from=data.get("created_from"),
        created_to=data.get("created_to"),
        extra=dict(data.get("extra") or {}),
    )


class AssignmentBulkAssignApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        filter = ItemFilterSerializer(help_text="Which items; every given field must match. {} is every item.")
        reviewers = serializers.ListField(
            child=serializers.CharField(), required=False, default=list, help_text="Usernames; one slot each per item."
        )
        group = serializers.IntegerField(
            required=False, allow_null=True, default=None, help_text="A group id: gets the items' other open slots."
        )
        priority = Int32Field(
            required=False, allow_null=True, default=None, help_text="Set the items' priority (higher first)."
        )
        unassign = serializers.BooleanField(
            required=False, default=False, help_text="Make the items' open slots assigned to nobody."
        )

    class OutputSerializer(serializers.Serializer):
        items = serializers.IntegerField(help_text="Items the filter matched.")
        slots_to_reviewers = serializers.IntegerField()
        slots_to_group = serializers.IntegerField()
        slots_unassigned = serializers.IntegerField()
        priority_set = serializers.IntegerField(help_text="Items whose priority was set.")

    @extend_schema(
        operation_id="assignments_bulk_assign",
        tags=["assignments"],
        summary="Assign, prioritise or unassign the items matching a filter",
        description=(
            "Replaces the assignment of every open (unsubmitted) slot of the matched items: each named reviewer "
            "gets one slot per item, in rotation and never two of one item or one they already saw; the other open "
            "slots go to `group`, or to nobody. Without reviewers, group or `unassign`, only `priority` is set. "
            "Leases in progress are left to finish. Needs `curate`."
        ),
        request=InputSerializer,
        responses={200: OutputSerializer, 400: INVALID},
    )
    def post(self, request: Request, slug: str) -> Response:
        project = _curated_project(request, slug)
        serializer = AssignmentBulkAssignApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data["unassign"] and (data["reviewers"] or data["group"] is not None):
            raise ValidationFailed([field_error("unassign", "Give reviewers or a group, or unassign; not both.")])
        reviewers = _reviewers(project, data["reviewers"], "reviewers")
        group = None
        if data["group"] is not None:
            group = _group_or_400(project, data["group"])
        assign = bool(reviewers or group is not None or data["unassign"])
        result = assignments_bulk_assign(
            project=project,
            query=item_query_from(data["filter"]),
            actor=request.user,
            reviewers=reviewers,
            group=group,
            priority=data["priority"],
            assign=assign,
        )
        return Response(AssignmentBulkAssignApi.OutputSerializer(result).data)


def _group_or_400(project: Any, pk: int) -> Any:
    try:
        return reviewer_group_get(project=project, pk=pk)
    except Http404:
        raise ValidationFailed([field_error("group", "No such group in this project.")]) from None


class ProjectAssignmentsApi(AssignmentBulkAssignApi, AssignmentListApi):
    """``/projects/{slug}/assignments/``: GET is AssignmentListApi, POST is AssignmentBulkAssignApi."""


# --- reviewer groups ---------------------------------------------------------------------------


class GroupSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    members = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_members(self, group: Any) -> list[str]:
        return sorted(m.username for m in group.members.all())


class GroupListApi(BaseApi):
    @extend_schema(
        operation_id="groups_list",
        tags=["assignments"],
        summary="The project's reviewer groups",
        description="Needs `curate`: group members are reviewers' identities.",
        responses=GroupSerializer(many=True),
    )
    def get(self, request: Request, slug: str) -> Response:
        project = _curated_project(request, slug)
        return Response(GroupSerializer(reviewer_group_list(project=project), many=True).data)


class GroupCreateApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        members = serializers.ListField(child=serializers.CharField(), required=False, default=list)

    @extend_schema(
        operation_id="groups_create",
        tags=["assignments"],
        summary="Create a reviewer group",
        request=InputSerializer,
        responses={201: GroupSerializer, 400: INVALID},
    )
    def post(self, request: Request, slug: str) -> Response:
        project = _curated_project(request, slug)
        serializer = GroupCreateApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        members = _reviewers(project, data["members"], "members")
        group = reviewer_group_create(project=project, name=data["name"], members=members, actor=request.user)
        return Response(GroupSerializer(group).data, status=status.HTTP_201_CREATED)


class ProjectGroupsApi(GroupCreateApi, GroupListApi):
    """``/projects/{slug}/groups/``: GET is GroupListApi, POST is GroupCreateApi."""


class GroupDetailApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100, required=False)
        members = serializers.ListField(
            child=serializers.CharField(), required=False, help_text="Replaces the members."
        )

    @extend_schema(
        operation_id="groups_retrieve", tags=["assignments"], summary="A reviewer group", responses=GroupSerializer
    )
    def get(self, request: Request, slug: str, pk: int) -> Response:
        project = _curated_project(request, slug)
        return Response(GroupSerializer(reviewer_group_get(project=project, pk=pk)).data)

    @extend_schema(
        operation_id="groups_update",
        tags=["assignments"],
        summary="Rename a group or replace its members",
        request=InputSerializer,
        responses={200: GroupSerializer, 400: INVALID},
    )
    def patch(self, request: Request, slug: str, pk: int) -> Response:
        project = _curated_project(request, slug)
        group = reviewer_group_get(project=project, pk=pk)
        serializer = GroupDetailApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        members = _reviewers(project, data["members"], "members") if "members" in data else None
        group = reviewer_group_update(group=group, actor=request.user, name=data.get("name"), members=members)
        return Response(GroupSerializer(group).data)

    @extend_schema(
        operation_id="groups_delete",
        tags=["assignments"],
        summary="Delete a group",
        description="Its open slots become assigned to nobody.",
        responses={204: OpenApiResponse(description="Deleted.")},
    )
    def delete(self, request: Request, slug: str, pk: int) -> Response:
        project = _curated_project(request, slug)
        reviewer_group_delete(group=reviewer_group_get(project=project, pk=pk), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- queue settings ---------------------------------------------------------------------------


class QueueSettingsSerializer(serializers.Serializer):
    queue_mode = serializers.ChoiceField(choices=QueueMode.choices)
    gold_rate = serializers.FloatField(min_value=0.0, max_value=1.0, help_text="Share of leases that are gold items.")
    lease_seconds = serializers.IntegerField(min_value=30, max_value=24 * 3600)
    reviews_per_item = serializers.IntegerField(read_only=True)
    show_model_to_reviewers = serializers.BooleanField(
        help_text="Blind review off: reviewers see each item's model, version, trace id, source and metadata."
    )
    sibling_spacing = serializers.IntegerField(
        min_value=0,
        max_value=MAX_SIBLING_SPACING,
        help_text="Other items a reviewer gets between two answers to the same request (0: off).",
    )


class QueueSettingsApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        queue_mode = serializers.ChoiceField(choices=QueueMode.choices, required=False)
        gold_rate = NumberField(min_value=0.0, max_value=1.0, required=False)
        lease_seconds = serializers.IntegerField(min_value=30, max_value=24 * 3600, required=False)
        show_model_to_reviewers = serializers.BooleanField(required=False, help_text="Admins only.")
        sibling_spacing = serializers.IntegerField(
            min_value=0, max_value=MAX_SIBLING_SPACING, required=False, help_text="Admins only."
        )

    @extend_schema(
        operation_id="queue_settings_retrieve",
        tags=["assignments"],
        summary="How the project's queue hands out items",
        responses=QueueSettingsSerializer,
    )
    def get(self, request: Request, slug: str) -> Response:
        return Response(QueueSettingsSerializer(_curated_project(request, slug)).data)

    @extend_schema(
        operation_id="queue_settings_update",
        tags=["assignments"],
        summary="Change the queue mode, gold rate, lease length, or (admins) blind review settings",
        description=(
            "Curators change `queue_mode`, `gold_rate` and `lease_seconds`; `show_model_to_reviewers` and "
            "`sibling_spacing` need the admin role (403 otherwise). Each change is in the audit log."
        ),
        request=InputSerializer,
        responses={200: QueueSettingsSerializer, 400: INVALID},
    )
    def patch(self, request: Request, slug: str) -> Response:
        project = _curated_project(request, slug)
        serializer = QueueSettingsApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        admin_only = [name for name in ADMIN_QUEUE_SETTINGS if name in serializer.validated_data]
        if admin_only and not role_allows(project.user_role, Capability.MANAGE):
            raise PermissionDenied(f"Only admins change {' and '.join(admin_only)}.")
        project = project_queue_settings_set(project=project, actor=request.user, **serializer.validated_data)
        return Response(QueueSettingsSerializer(project).data)


# --- send back ----------------------------------------------------------------------------------


class ItemSendBackApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        reviews = serializers.ListField(
            child=serializers.IntegerField(),
            required=False,
            allow_null=True,
            default=None,
            help_text="Review ids of this item; omit to send back every current review.",
        )
        reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)

    class OutputSerializer(serializers.Serializer):
        returned = serializers.ListField(child=serializers.IntegerField(), help_text="Reviews now marked returned.")
        reopened = serializers.IntegerField(help_text="Slots open again for another reviewer.")

    @extend_schema(
        operation_id="items_send_back",
        tags=["assignments"],
        summary="Send an item back for re-review",
        description=(
            "The chosen reviews are kept but marked returned (they no longer count and cannot be edited) and their "
            "slots reopen for another reviewer; the original reviewers are not offered the item again. Needs `curate`."
        ),
        request=InputSerializer,
        responses={200: OutputSerializer, 400: INVALID},
    )
    def post(self, request: Request, slug: str, pk: int) -> Response:
        project = _curated_project(request, slug)
        item = item_get_for_user(user=request.user, project=project, pk=pk)
        serializer = ItemSendBackApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = item_send_back(item=item, actor=request.user, review_ids=data["reviews"], reason=data["reason"])
        return Response(ItemSendBackApi.OutputSerializer(result).data)
