"""The review queue: lease the next item, keep the lease alive, or skip it."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from reviewapp.api.base import ApiRequest, BaseApi
from reviewapp.api.serializers import ConflictSerializer, ItemSerializer, QuestionSerializer
from reviewapp.blind import project_model_identity_visible
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user, questions_for_project
from reviewapp.selectors.queue import assignment_get_for_user
from reviewapp.services.queue import REVIEW_SLOTS, queue_next
from reviewapp.services.slots import slot_renew, slot_skip

CONFLICT = OpenApiResponse(ConflictSerializer, description="The lease is no longer yours; take the next item.")


class LeaseSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The assignment id: send it with the review.")
    token = serializers.CharField(
        source="lease_token",
        help_text="Send it with the review, as `token`: a review for an earlier lease of this slot is then refused.",
    )
    expires_at = serializers.DateTimeField(help_text="Renew before this, or another reviewer may take the item.")


class QueueNextApi(BaseApi):
    class OutputSerializer(serializers.Serializer):
        assignment = LeaseSerializer()
        item = ItemSerializer()
        questions = QuestionSerializer(many=True)

    @extend_schema(
        operation_id="queue_next",
        tags=["queue"],
        summary="Lease the next item to review",
        description=(
            "Returns the item you already hold (renewed), else leases a free review slot of an item you have not "
            "reviewed or skipped. 204 when nothing is left for you. Needs the `review` capability (token scope "
            "`review`). Blind review: a reviewer does not get the item's model, version, trace id, source, external "
            "id or version-identifying metadata unless the project sets `show_model_to_reviewers`; answers to the "
            "same request come at least `sibling_spacing` items apart."
        ),
        request=None,
        responses={200: OutputSerializer, 204: OpenApiResponse(description="Nothing left to review.")},
    )
    def post(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.REVIEW, token=request.auth)
        lease = queue_next(project=project, user=request.user)
        if lease is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        data = QueueNextApi.OutputSerializer(
            {"assignment": lease, "item": lease.item, "questions": questions_for_project(project=project)},
            context={"blind": not project_model_identity_visible(project)},
        ).data
        return Response(data)


class AssignmentRenewApi(BaseApi):
    @extend_schema(
        operation_id="assignments_renew",
        tags=["queue"],
        summary="Keep your lease alive",
        request=None,
        responses={200: LeaseSerializer, 409: CONFLICT},
    )
    def post(self, request: ApiRequest, pk: int) -> Response:
        assignment = assignment_get_for_user(user=request.user, pk=pk, token=request.auth)
        assignment = slot_renew(REVIEW_SLOTS, slot=assignment, user=request.user)
        return Response(LeaseSerializer(assignment).data)


class AssignmentSkipApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)

    @extend_schema(
        operation_id="assignments_skip",
        tags=["queue"],
        summary="Give the item back and never be offered it again",
        request=InputSerializer,
        responses={204: OpenApiResponse(description="Skipped."), 409: CONFLICT},
    )
    def post(self, request: ApiRequest, pk: int) -> Response:
        assignment = assignment_get_for_user(user=request.user, pk=pk, token=request.auth)
        serializer = AssignmentSkipApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        slot_skip(REVIEW_SLOTS, slot=assignment, user=request.user, reason=serializer.validated_data["reason"])
        return Response(status=status.HTTP_204_NO_CONTENT)
