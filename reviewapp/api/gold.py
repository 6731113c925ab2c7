"""Gold items: known answers set by curators, and each reviewer's accuracy on them.

Every operation needs CURATE (token scope ``curate``): a reviewer can never read gold answers.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from reviewapp.api.base import BaseApi
from reviewapp.api.items import PAGE_PARAMETERS
from reviewapp.api.pagination import paginated_response
from reviewapp.api.schema import paginated
from reviewapp.api.serializers import ValidationErrorSerializer
from reviewapp.permissions import Capability
from reviewapp.selectors.gold import gold_accuracy_for_reviewers, gold_answer_get, gold_answer_list
from reviewapp.selectors.items import item_get_for_user
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.services.gold import gold_answer_delete, gold_answer_set


class GoldAnswerSerializer(serializers.Serializer):
    item = serializers.IntegerField(source="item_id")
    item_external_id = serializers.CharField(source="item.external_id")
    answers = serializers.DictField(help_text="Known answers, keyed by question key (some or all questions).")
    note = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class GoldListApi(BaseApi):
    @extend_schema(
        operation_id="gold_list",
        tags=["gold"],
        summary="The project's gold items and their known answers",
        description="Oldest first, by cursor. Needs `curate`.",
        parameters=PAGE_PARAMETERS,
        responses=paginated("PaginatedGoldAnswerList", GoldAnswerSerializer(many=True)),
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE, token=request.auth)
        return paginated_response(
            queryset=gold_answer_list(project=project),
            serializer_class=GoldAnswerSerializer,
            request=request,
            view=self,
        )


class GoldSetApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        item = serializers.IntegerField(help_text="The item id.")
        answers = serializers.JSONField(help_text="Known answers keyed by question key; validated like a review's.")
        note = serializers.CharField(required=False, allow_blank=True, default="", max_length=20_000)

    @extend_schema(
        operation_id="gold_set",
        tags=["gold"],
        summary="Mark an item gold, or change its known answers",
        description=(
            "The item keeps its ordinary review slots and is also mixed, unannounced, into every reviewer's queue "
            "at the project's `gold_rate` (once per reviewer, on extra slots outside its N). Answers may cover some "
            "questions and are validated like a review's. 201 when the item became gold, 200 when its answers were "
            "replaced. Needs `curate`."
        ),
        request=InputSerializer,
        responses={
            201: GoldAnswerSerializer,
            200: GoldAnswerSerializer,
            400: OpenApiResponse(ValidationErrorSerializer),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE, token=request.auth)
        serializer = GoldSetApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        item = item_get_for_user(user=request.user, project=project, pk=data["item"])
        existed = hasattr(item, "gold_answer")
        gold = gold_answer_set(
            project=project, item=item, answers=data["answers"], note=data["note"], actor=request.user
        )
        return Response(
            GoldAnswerSerializer(gold).data, status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED
        )


class ProjectGoldApi(GoldSetApi, GoldListApi):
    """``/projects/{slug}/gold/``: GET is GoldListApi, POST is GoldSetApi."""


class GoldDetailApi(BaseApi):
    @extend_schema(
        operation_id="gold_retrieve",
        tags=["gold"],
        summary="One gold item's known answers",
        responses=GoldAnswerSerializer,
    )
    def get(self, request: Request, slug: str, item_id: int) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE, token=request.auth)
        return Response(GoldAnswerSerializer(gold_answer_get(project=project, item_id=item_id)).data)

    @extend_schema(
        operation_id="gold_delete",
        tags=["gold"],
        summary="Make a gold item ordinary again",
        description="Reviews made while it was gold are kept. Needs `curate`.",
        responses={204: OpenApiResponse(description="No longer gold.")},
    )
    def delete(self, request: Request, slug: str, item_id: int) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE, token=request.auth)
        gold_answer_delete(gold=gold_answer_get(project=project, item_id=item_id), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class GoldAccuracyApi(BaseApi):
    class OutputSerializer(serializers.Serializer):
        reviewer = serializers.CharField(source="username")
        n = serializers.IntegerField(help_text="Gold items this reviewer reviewed.")
        correct = serializers.IntegerField(help_text="Of those, how many had every known answer right.")
        accuracy = serializers.FloatField(allow_null=True, help_text="correct / n.")
        ci_low = serializers.FloatField(allow_null=True, help_text="95% Wilson score interval.")
        ci_high = serializers.FloatField(allow_null=True)
        per_question = serializers.SerializerMethodField(help_text='{"question key": {"correct": c, "n": n}}')

        def get_per_question(self, row: object) -> dict[str, dict[str, int]]:
            return {k: {"correct": c, "n": n} for k, (c, n) in row.per_question.items()}  # type: ignore[attr-defined]

    @extend_schema(
        operation_id="gold_accuracy",
        tags=["gold"],
        summary="Each reviewer's accuracy on gold items",
        description="Best first. Needs `curate`.",
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE, token=request.auth)
        rows = gold_accuracy_for_reviewers(project=project)
        return Response(GoldAccuracyApi.OutputSerializer(rows, many=True).data)
