"""Pairwise comparison: make pairs, lease one, record a preference, read the results.

What a reviewer receives is blind: the request and the two responses by side, with no item ids,
model names or versions. The true versions are recorded with the preference and appear only in
the results, which need the `export` capability.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from reviewapp.api.base import ApiRequest, BaseApi
from reviewapp.api.fields import Int32Field
from reviewapp.api.queue import CONFLICT
from reviewapp.api.reviews import INVALID
from reviewapp.api.serializers import ContextField, RequestField
from reviewapp.models import Preference
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.services.pairwise import (
    MAX_PREFERENCES_PER_TASK,
    MAX_REASON,
    PairingFilter,
    pairwise_next,
    pairwise_slot_sides,
    pairwise_submit,
    pairwise_tasks_create,
    pairwise_tasks_preview,
)
from reviewapp.services.pairwise_results import pairwise_results


class PairwiseTasksCreateApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        version_a = serializers.CharField(max_length=100, help_text="E.g. the champion's model version.")
        version_b = serializers.CharField(max_length=100, help_text="E.g. the candidate's model version.")
        preferences_per_task = Int32Field(
            required=False, default=1, min_value=1, max_value=MAX_PREFERENCES_PER_TASK, help_text="Judges per pair."
        )
        source = serializers.CharField(required=False, default="", allow_blank=True, help_text="Only items from it.")  # type: ignore[assignment]  # DRF's metaclass moves declared fields off the class
        model_name = serializers.CharField(required=False, default="", allow_blank=True)
        created_after = serializers.DateTimeField(required=False, default=None, help_text="Items created from then.")
        created_before = serializers.DateTimeField(required=False, default=None, help_text="Items created before.")
        limit = Int32Field(
            required=False, default=None, allow_null=True, min_value=1, help_text="At most this many new pairs."
        )
        dry_run = serializers.BooleanField(
            required=False, default=False, help_text="Only count the pairs it would create (200, nothing written)."
        )

    class OutputSerializer(serializers.Serializer):
        created = serializers.IntegerField(help_text="New pairs.")
        existing = serializers.IntegerField(help_text="Pairs these two versions already had.")
        unmatched_a = serializers.IntegerField(help_text="Items of version_a with no unpaired partner.")
        unmatched_b = serializers.IntegerField(help_text="Items of version_b with no unpaired partner.")

    @extend_schema(
        operation_id="pairwise_tasks_create",
        tags=["pairwise"],
        summary="Pair two model versions' answers to the same requests",
        description=(
            "Pairs each item of `version_a` with an item of `version_b` whose request is the same (whitespace "
            "normalised; chat requests compare their messages). Idempotent: running it again only pairs items "
            "that are new; `limit` caps the new pairs and `dry_run` only counts them. "
            "201 when pairs were created, 200 when there was nothing new. Needs the `ingest` "
            "capability (token scope `ingest`)."
        ),
        request=InputSerializer,
        responses={201: OutputSerializer, 200: OutputSerializer, 400: INVALID},
    )
    def post(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.INGEST, token=request.auth)
        serializer = PairwiseTasksCreateApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if data.pop("dry_run"):
            where = PairingFilter(
                source=data.pop("source"),
                model_name=data.pop("model_name"),
                created_after=data.pop("created_after"),
                created_before=data.pop("created_before"),
            )
            preview = pairwise_tasks_preview(project=project, where=where, **data)
            return Response(PairwiseTasksCreateApi.OutputSerializer(preview).data)
        result = pairwise_tasks_create(project=project, actor=request.user, **data)
        return Response(
            PairwiseTasksCreateApi.OutputSerializer(result).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


class PairwiseLeaseSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Send it back with the preference, as `lease`.")
    token = serializers.CharField(source="lease_token", help_text="Send it back with the preference, as `token`.")
    expires_at = serializers.DateTimeField(help_text="Submit before this, or another reviewer may take the pair.")


class PairwiseSideSerializer(serializers.Serializer):
    response = serializers.CharField(help_text="Markdown.")
    retrieved_context = ContextField()


class PairwiseNextApi(BaseApi):
    class OutputSerializer(serializers.Serializer):
        lease = PairwiseLeaseSerializer()
        request = RequestField()
        left = PairwiseSideSerializer(help_text="Response A.")
        right = PairwiseSideSerializer(help_text="Response B.")

    @extend_schema(
        operation_id="pairwise_next",
        tags=["pairwise"],
        summary="Lease the next pair to judge",
        description=(
            "Returns the pair you already hold (renewed, same sides), else leases a pair you have not judged or "
            "skipped, with its sides in random order. Blind: no model names or versions. 204 when nothing is left "
            "for you. Needs the `review` capability (token scope `review`)."
        ),
        request=None,
        responses={200: OutputSerializer, 204: OpenApiResponse(description="No pair left to judge.")},
    )
    def post(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.REVIEW, token=request.auth)
        lease = pairwise_next(project=project, user=request.user)
        if lease is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        left, right = pairwise_slot_sides(lease)
        # Always A's copy of the request: the two may differ in whitespace, which must not hint at the sides.
        data = {"lease": lease, "request": lease.task.item_a.request, "left": left, "right": right}
        return Response(PairwiseNextApi.OutputSerializer(data).data)


class PairwisePreferenceSubmitApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        lease = serializers.IntegerField(help_text="`lease.id` from pairwise/next.")
        token = serializers.CharField(max_length=64, help_text="`lease.token` from pairwise/next.")
        choice = serializers.ChoiceField(
            choices=Preference.Choice.choices, help_text="`a`: left better, `b`: right better, `tie`, `both_bad`."
        )
        reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=MAX_REASON)
        time_on_task_ms = Int32Field(required=False, allow_null=True, default=None, min_value=0)

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        choice = serializers.ChoiceField(choices=Preference.Choice.choices)
        reason = serializers.CharField()
        time_on_task_ms = serializers.IntegerField(allow_null=True)
        submitted_at = serializers.DateTimeField()

    @extend_schema(
        operation_id="pairwise_preferences_submit",
        tags=["pairwise"],
        summary="Record which response of your leased pair is better",
        description=(
            "The winner is worked out from the sides of your lease; the answer stays blind (no versions). "
            "409 when the lease is no longer yours or the pair was already judged."
        ),
        request=InputSerializer,
        responses={201: OutputSerializer, 400: INVALID, 409: CONFLICT},
    )
    def post(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.REVIEW, token=request.auth)
        serializer = PairwisePreferenceSubmitApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        preference = pairwise_submit(
            slot_id=data["lease"],
            user=request.user,
            lease_token=data["token"],
            choice=data["choice"],
            reason=data["reason"],
            time_on_task_ms=data["time_on_task_ms"],
            project=project,
        )
        return Response(PairwisePreferenceSubmitApi.OutputSerializer(preference).data, status=status.HTTP_201_CREATED)


class PairwiseResultSerializer(serializers.Serializer):
    version_a = serializers.CharField()
    version_b = serializers.CharField()
    tasks = serializers.IntegerField(help_text="Pairs of items.")
    done_tasks = serializers.IntegerField(help_text="Pairs with all their preferences.")
    wins = serializers.IntegerField(help_text="Judgements preferring version_a.")
    losses = serializers.IntegerField(help_text="Judgements preferring version_b.")
    ties = serializers.IntegerField()
    both_bad = serializers.IntegerField()
    left_wins = serializers.IntegerField(help_text="Decisive judgements won by the left side (position bias).")
    judgements = serializers.IntegerField()
    decisive = serializers.IntegerField(help_text="Decisive judgements (wins + losses).")
    n = serializers.IntegerField(help_text="Pairs of items with a decisive judgement: what the win rate rests on.")
    win_rate = serializers.FloatField(
        allow_null=True,
        help_text="Mean over pairs of version_a's share of each pair's decisive judgements; null when n is 0.",
    )
    ci_low = serializers.FloatField(
        allow_null=True, help_text="95% interval over pairs (Wilson when every pair is unanimous, else bootstrap)."
    )
    ci_high = serializers.FloatField(allow_null=True, help_text="Upper bound of the same interval.")


class PairwiseResultsApi(BaseApi):
    class OutputSerializer(serializers.Serializer):
        results = PairwiseResultSerializer(many=True)

    @extend_schema(
        operation_id="pairwise_results",
        tags=["pairwise"],
        summary="Win rates per pair of model versions",
        description=(
            "Ties and 'both bad' are counted but left out of the win rate. Needs the `export` capability "
            "(token scope `export`)."
        ),
        responses=OutputSerializer,
    )
    def get(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.EXPORT, token=request.auth)
        return Response(PairwiseResultsApi.OutputSerializer({"results": pairwise_results(project=project)}).data)
