"""The dashboards' figures as JSON."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from reviewapp.api.base import BaseApi
from reviewapp.permissions import Capability, role_allows
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.selectors.stats import project_stats_as_dict, project_stats_cached, reviewer_stats


class StatsProgressSerializer(serializers.Serializer):
    items = serializers.IntegerField()
    reviewed = serializers.IntegerField(help_text="Items with at least one review.")
    complete = serializers.IntegerField(help_text="Items with all their reviews.")
    curated = serializers.IntegerField(help_text="Items with a curated label.")
    left = serializers.IntegerField(help_text="Items still short of reviews.")


class StatsThroughputSerializer(serializers.Serializer):
    day = serializers.DateField()
    reviews = serializers.IntegerField()


class StatsVersionDistributionSerializer(serializers.Serializer):
    model_version = serializers.CharField()
    counts = serializers.DictField(child=serializers.IntegerField(), help_text="Answer -> how often it was given.")
    n = serializers.IntegerField(help_text="Answers (reviews) counted in counts.")
    pass_rate = serializers.FloatField(
        allow_null=True, help_text="pass_fail questions only: over items (each item once), not over answers."
    )
    items = serializers.IntegerField(help_text="pass_fail: the items behind pass_rate.")
    pass_low = serializers.FloatField(allow_null=True, help_text="95% interval over items.")
    pass_high = serializers.FloatField(allow_null=True)


class StatsFigureSerializer(serializers.Serializer):
    model_version = serializers.CharField()
    question = serializers.CharField()
    title = serializers.CharField()
    kind = serializers.CharField(help_text="pass_fail (value: pass rate) or rating (value: mean rating).")
    items = serializers.IntegerField(help_text="n: items with a value (each counts once).")
    reviews = serializers.IntegerField(help_text="Current reviews behind those items' values.")
    curated = serializers.IntegerField(help_text="Items valued by their curated label.")
    value = serializers.FloatField(allow_null=True, help_text="Mean of the item values.")
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    interval = serializers.CharField(help_text="Wilson over items, or a bootstrap over items (split votes, ratings).")
    confidence = serializers.FloatField()
    passes = serializers.FloatField(allow_null=True, help_text="pass_fail: sum of item values.")
    median = serializers.FloatField(allow_null=True, help_text="rating: median item value.")


class StatsDistributionSerializer(serializers.Serializer):
    question = serializers.CharField()
    title = serializers.CharField()
    kind = serializers.CharField()
    values = serializers.ListField(child=serializers.CharField())
    versions = StatsVersionDistributionSerializer(many=True)


class StatsAgreementFigureSerializer(serializers.Serializer):
    statistic = serializers.CharField()
    value = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True, help_text="95% bootstrap interval.")
    ci_high = serializers.FloatField(allow_null=True)
    n_items = serializers.IntegerField()
    n_ratings = serializers.IntegerField()


class StatsAgreementSerializer(serializers.Serializer):
    question = serializers.CharField()
    title = serializers.CharField()
    kind = serializers.CharField()
    level = serializers.CharField(help_text="nominal or ordinal.")
    alpha = StatsAgreementFigureSerializer(help_text="Krippendorff's alpha.")
    percent_agreement = StatsAgreementFigureSerializer()


class StatsHotQuestionSerializer(serializers.Serializer):
    question = serializers.CharField()
    adjudications = serializers.IntegerField()


class StatsHotVersionSerializer(serializers.Serializer):
    model_version = serializers.CharField()
    adjudications = serializers.IntegerField()
    open = serializers.IntegerField(help_text="Of those, still waiting for a curator.")


class StatsHotSpotsSerializer(serializers.Serializer):
    by_question = StatsHotQuestionSerializer(many=True)
    by_model_version = StatsHotVersionSerializer(many=True)


class StatsReviewerFiguresSerializer(serializers.Serializer):
    reviewer = serializers.CharField()
    reviews = serializers.IntegerField()
    median_time_ms = serializers.FloatField(allow_null=True)
    gold_accuracy = serializers.FloatField(allow_null=True)
    gold_n = serializers.IntegerField()
    gold_ci_low = serializers.FloatField(allow_null=True)
    gold_ci_high = serializers.FloatField(allow_null=True)
    consensus_rate = serializers.FloatField(allow_null=True, help_text="Share of answers equal to the curated label.")
    consensus_compared = serializers.IntegerField()
    consensus_ci_low = serializers.FloatField(allow_null=True)
    consensus_ci_high = serializers.FloatField(allow_null=True)


class ProjectStatsApi(BaseApi):
    class OutputSerializer(serializers.Serializer):
        progress = StatsProgressSerializer()
        throughput = StatsThroughputSerializer(many=True, help_text="Reviews per day, last 30 days, oldest first.")
        distributions = StatsDistributionSerializer(many=True)
        figures = StatsFigureSerializer(
            many=True, help_text="Per model version and pass/fail or rating question: the figure over items with n."
        )
        agreement = StatsAgreementSerializer(many=True)
        hot_spots = StatsHotSpotsSerializer()
        reviewers = StatsReviewerFiguresSerializer(many=True, required=False, help_text="Curators only.")

    @extend_schema(
        operation_id="project_stats",
        tags=["stats"],
        summary="The dashboards' figures",
        description=(
            "Progress, throughput, answer distributions per model version (counts of answers), pass rates and "
            "rating means per model version over items (each item its curated label, else its reviews' mean; "
            "n items and reviews; a Wilson interval over items, or a bootstrap over items), agreement per question "
            "with 95% intervals, disagreement hot spots, and (for curators) per-reviewer figures. Needs `export` "
            "(token scope `export`)."
        ),
        responses=OutputSerializer,
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.EXPORT, token=request.auth)
        stats = project_stats_cached(project=project)
        reviewers = reviewer_stats(project=project) if role_allows(project.user_role, Capability.CURATE) else None  # type: ignore[attr-defined]
        return Response(project_stats_as_dict(stats=stats, reviewers=reviewers))
