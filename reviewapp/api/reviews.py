"""Reviews: submit a leased item, read them back (export), and edit your own."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from reviewapp.api.base import BaseApi
from reviewapp.api.fields import Int32Field
from reviewapp.api.items import PAGE_PARAMETERS
from reviewapp.api.pagination import paginated_response
from reviewapp.api.queue import CONFLICT
from reviewapp.api.schema import paginated
from reviewapp.api.serializers import ReviewSerializer, ReviewWithHistorySerializer, ValidationErrorSerializer
from reviewapp.blind import project_model_identity_visible
from reviewapp.models import Review
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.selectors.reviews import review_get_for_user, review_list
from reviewapp.services.reviews import review_edit, review_submit

ANSWERS_HELP = "Keyed by question key (see the project's `questions`)."
INVALID = OpenApiResponse(ValidationErrorSerializer, description="Each bad field, e.g. `answers.helpfulness`.")


def _with_history(review: Review) -> Review:
    review.revisions_list = list(review.revisions.select_related("edited_by"))  # type: ignore[attr-defined]
    return review


class ReviewSubmitApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        assignment = serializers.IntegerField(help_text="The `assignment.id` from queue/next.")
        answers = serializers.JSONField(help_text=ANSWERS_HELP)
        comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=20_000)
        time_on_task_ms = Int32Field(required=False, allow_null=True, default=None, min_value=0)

    @extend_schema(
        operation_id="reviews_submit",
        tags=["reviews"],
        summary="Submit a review of your leased item",
        description=(
            "Answers are checked against the project's questions; a 400 lists each bad answer by field. "
            "An expected response that repeats the response the answers fail is refused on its field."
        ),
        request=InputSerializer,
        responses={201: ReviewSerializer, 400: INVALID, 409: CONFLICT},
    )
    def post(self, request: Request, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.REVIEW, token=request.auth)
        serializer = ReviewSubmitApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        review = review_submit(
            assignment_id=data["assignment"],
            user=request.user,
            answers=data["answers"],
            comment=data["comment"],
            time_on_task_ms=data["time_on_task_ms"],
            project=project,
        )
        blind = not project_model_identity_visible(project)
        return Response(ReviewSerializer(review, context={"blind": blind}).data, status=status.HTTP_201_CREATED)


class ReviewListApi(BaseApi):
    class FilterSerializer(serializers.Serializer):
        reviewer = serializers.CharField(required=False, help_text="A reviewer's username.")
        item = serializers.IntegerField(required=False, help_text="An item id.")
        updated_since = serializers.DateTimeField(
            required=False, help_text="Only reviews submitted or edited at or after this time (ISO 8601)."
        )

    @extend_schema(
        operation_id="reviews_list",
        tags=["reviews"],
        summary="Every review of a project (export)",
        description="Oldest first, by cursor. Needs the `export` capability (token scope `export`).",
        parameters=[FilterSerializer, *PAGE_PARAMETERS],
        responses=paginated("PaginatedReviewList", ReviewSerializer(many=True)),
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.EXPORT, token=request.auth)
        serializer = ReviewListApi.FilterSerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        lookups = {"reviewer": "reviewer__username", "item": "item_id", "updated_since": "updated_at__gte"}
        filters = {lookups[key]: value for key, value in serializer.validated_data.items()}
        reviews = review_list(project=project).select_related("project").filter(**filters)
        return paginated_response(queryset=reviews, serializer_class=ReviewSerializer, request=request, view=self)


class ProjectReviewsApi(ReviewSubmitApi, ReviewListApi):
    """``/projects/{slug}/reviews/``: GET is ReviewListApi, POST is ReviewSubmitApi."""


class ReviewDetailApi(BaseApi):
    @extend_schema(
        operation_id="reviews_retrieve",
        tags=["reviews"],
        summary="A review with its edit history",
        description="Your own review, or any review of a project where you may export.",
        responses=ReviewWithHistorySerializer,
    )
    def get(self, request: Request, pk: int) -> Response:
        review = review_get_for_user(user=request.user, pk=pk, token=request.auth)
        blind = not project_model_identity_visible(review.project)
        return Response(ReviewWithHistorySerializer(_with_history(review), context={"blind": blind}).data)


class ReviewEditApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        answers = serializers.JSONField(required=False, help_text=f"{ANSWERS_HELP} Omit to keep the current answers.")
        comment = serializers.CharField(required=False, allow_blank=True, max_length=20_000)

    @extend_schema(
        operation_id="reviews_edit",
        tags=["reviews"],
        summary="Edit your review",
        description="The previous answers and comment are kept in the review's `revisions`.",
        request=InputSerializer,
        responses={200: ReviewWithHistorySerializer, 400: INVALID},
    )
    def patch(self, request: Request, pk: int) -> Response:
        review = review_get_for_user(user=request.user, pk=pk, for_write=True, token=request.auth)
        blind = not project_model_identity_visible(review.project)
        serializer = ReviewEditApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        review = review_edit(
            review=review,
            user=request.user,
            answers=data.get("answers", review.answers),
            comment=data.get("comment"),
        )
        return Response(ReviewWithHistorySerializer(_with_history(review), context={"blind": blind}).data)


class ReviewApi(ReviewDetailApi, ReviewEditApi):
    """``/reviews/{id}/``: GET is ReviewDetailApi, PATCH is ReviewEditApi."""
