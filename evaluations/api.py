"""REST API for evaluations: suites (+ versions), runs (start, status, results, cancel), comparison,
judge-human disagreements.

Every operation needs ``Capability.EVALUATE`` on the project (engineers and admins); an API token
needs the ``evaluate`` scope. One APIView per operation; where two share a URL one class combines them.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.http import Http404
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

from evaluations.models import Run, Suite
from evaluations.selectors import (
    mlflow_run_url,
    projects_for_evaluation,
    run_get_for_user,
    run_get_pair_for_user,
    run_list,
    run_metrics,
    run_results,
    suite_get_for_user,
    suite_list,
    suite_version_get,
)
from evaluations.services.alignment import alignment_compute, disagreements_list, disagreements_send_to_review
from evaluations.services.compare import runs_compare
from evaluations.services.runs import run_cancel, run_start
from evaluations.services.suites import suite_create, suite_version_create
from pipelines.selectors.assessments import dataset_version_for_run
from reviewapp.api.base import ApiRequest, BaseApi
from reviewapp.api.items import PAGE_PARAMETERS
from reviewapp.api.pagination import paginated_response
from reviewapp.api.schema import paginated
from reviewapp.api.serializers import ValidationErrorSerializer
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user

TAGS = ["evaluations"]


class SuiteVersionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.IntegerField()
    scorers = serializers.ListField(
        child=serializers.DictField(),
        help_text='[{"name", "scorer", "threshold", "params", "human_question"}, ...], every default filled in.',
    )
    config = serializers.DictField(help_text='{"human_question", "max_error_rate", "chunk_size"}')
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()


class SuiteSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.CharField(source="project.slug")
    name = serializers.CharField()
    description = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    versions = serializers.SerializerMethodField(help_text="Every version, newest first.")

    @extend_schema_field(SuiteVersionSerializer(many=True))
    def get_versions(self, suite: Suite) -> list[dict[str, Any]]:
        versions = sorted(suite.versions.all(), key=lambda v: -v.number)  # prefetched by the list
        return SuiteVersionSerializer(versions, many=True).data  # type: ignore[return-value]


class ProgressSerializer(serializers.Serializer):
    items_total = serializers.IntegerField()
    rows_done = serializers.IntegerField(help_text="Items whose chunk finished.")
    rows_errored = serializers.IntegerField(help_text="Of those, items with at least one errored result.")
    percent = serializers.IntegerField()
    error_rate = serializers.FloatField(allow_null=True)
    chunks_total = serializers.IntegerField()
    chunks_done = serializers.IntegerField()


class MlflowSerializer(serializers.Serializer):
    logged = serializers.BooleanField(source="mlflow_logged")
    run_id = serializers.CharField(source="mlflow_run_id")
    experiment_id = serializers.CharField(source="mlflow_experiment_id")
    error = serializers.CharField(source="mlflow_error", help_text="Why the last attempt failed; it is retried.")
    url = serializers.SerializerMethodField()

    def get_url(self, run: Run) -> str:
        return mlflow_run_url(run=run)


class RunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.CharField(source="project.slug")
    suite = serializers.IntegerField(source="suite_version.suite_id")
    suite_name = serializers.CharField(source="suite_version.suite.name")
    suite_version = serializers.IntegerField(source="suite_version.number")
    dataset = serializers.DictField()
    dataset_version = serializers.SerializerMethodField(
        help_text='The curated dataset version the run is over: {"id", "dataset_id", "name", "number", '
        '"content_hash", "row_count", "label"}; null for a run over a filter.'
    )
    target = serializers.DictField()
    status = serializers.ChoiceField(choices=Run.Status.choices)
    error = serializers.CharField()
    progress = ProgressSerializer(source="*")
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.FloatField(allow_null=True)
    items_per_second = serializers.FloatField(allow_null=True)
    mlflow = MlflowSerializer(source="*")

    @extend_schema_field(serializers.DictField(allow_null=True))
    def get_dataset_version(self, run: Run) -> dict[str, Any] | None:
        if not run.dataset_version:
            return None
        return {**run.dataset_version, "label": run.dataset_version_label}


class MetricSerializer(serializers.Serializer):
    scorer = serializers.CharField()
    n = serializers.IntegerField(help_text="Rows with a result.")
    n_scored = serializers.IntegerField(help_text="Rows with a numeric value.")
    n_errors = serializers.IntegerField()
    n_judged = serializers.IntegerField(help_text="Rows with a pass/fail verdict.")
    n_passed = serializers.IntegerField()
    n_skipped = serializers.IntegerField(default=0, help_text="Rows not scored on purpose (see a result's rationale).")
    mean = serializers.FloatField(allow_null=True)
    pass_rate = serializers.FloatField(allow_null=True)
    error_rate = serializers.FloatField(allow_null=True)
    alignment = inline_serializer(
        "ScorerAlignment",
        fields={
            "question": serializers.CharField(help_text="The pass/fail question compared with."),
            "n": serializers.IntegerField(help_text="Items with both a verdict and a curated answer."),
            "agree": serializers.IntegerField(),
            "accuracy": serializers.FloatField(allow_null=True),
            "accuracy_low": serializers.FloatField(allow_null=True, help_text="95% Wilson interval."),
            "accuracy_high": serializers.FloatField(allow_null=True),
            "kappa": serializers.FloatField(allow_null=True, help_text="Cohen's kappa."),
            "kappa_low": serializers.FloatField(allow_null=True, help_text="95% bootstrap interval."),
            "kappa_high": serializers.FloatField(allow_null=True),
            "confusion": serializers.DictField(child=serializers.IntegerField()),
            "unlabelled": serializers.IntegerField(help_text="Items with a verdict but no curated answer."),
            "different_response": serializers.IntegerField(
                help_text="Rows left out: the scored response is not the one the humans reviewed (regenerated)."
            ),
            "applicable": serializers.BooleanField(
                help_text="False when no scored response is the reviewed one: there is no alignment figure."
            ),
            "reason": serializers.CharField(help_text='Why not applicable, e.g. "not applicable: humans reviewed ..."'),
        },
        allow_null=True,
    )


class RunDetailSerializer(RunSerializer):
    metrics = MetricSerializer(many=True, help_text="Per scorer, in suite order, with judge-human alignment.")


def run_detail_data(run: Run) -> dict[str, Any]:
    alignment = alignment_compute(run=run)
    rows = []
    for name, figures in run_metrics(run=run).items():
        a = alignment.get(name)
        rows.append(
            {
                "scorer": name,
                **figures,
                "alignment": None if a is None else {**a.as_dict(), "confusion": a.confusion},
            }
        )
    data = dict(RunSerializer(run).data)
    data["metrics"] = MetricSerializer(rows, many=True).data
    return data


class RunResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    item = serializers.IntegerField(source="item_id")
    item_external_id = serializers.CharField(source="item.external_id")
    scorer = serializers.CharField()
    value = serializers.JSONField(allow_null=True, help_text="A number, true/false, a label, or null.")
    passed = serializers.BooleanField(allow_null=True)
    rationale = serializers.CharField()
    error = serializers.CharField()
    source_type = serializers.CharField(help_text="CODE or LLM_JUDGE (MLflow assessment source).")
    skipped = serializers.BooleanField(
        help_text="Not scored on purpose (e.g. an online source over its hourly judge budget); why is the rationale."
    )


# --- suites ------------------------------------------------------------------------------------


class SuiteListApi(BaseApi):
    @extend_schema(
        operation_id="suites_list",
        tags=TAGS,
        summary="The project's evaluation suites",
        parameters=PAGE_PARAMETERS,
        responses=paginated("PaginatedSuiteList", SuiteSerializer(many=True)),
    )
    def get(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.EVALUATE, token=request.auth)
        return paginated_response(
            queryset=suite_list(project=project, with_versions=True),
            serializer_class=SuiteSerializer,
            request=request,
            view=self,
        )


class SuiteCreateApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        scorers = serializers.JSONField(
            help_text='Scorer names or objects: ["exact_match", {"scorer": "token_f1", "threshold": 0.6}, ...]. '
            "Unknown scorers, bad thresholds and bad params are refused with the field that is wrong."
        )
        config = serializers.JSONField(
            required=False,
            default=None,
            help_text='{"human_question": "correct", "max_error_rate": 0.2, "chunk_size": 100}',
        )

    @extend_schema(
        operation_id="suites_create",
        tags=TAGS,
        summary="Create a suite (its version 1)",
        request=InputSerializer,
        responses={201: SuiteSerializer, 400: OpenApiResponse(ValidationErrorSerializer)},
    )
    def post(self, request: ApiRequest, slug: str) -> Response:
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.EVALUATE, token=request.auth)
        serializer = SuiteCreateApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        suite = suite_create(
            project=project,
            name=data["name"],
            description=data["description"],
            scorers=data["scorers"],
            config=data["config"],
            actor=request.user,
        )
        return Response(SuiteSerializer(suite).data, status=status.HTTP_201_CREATED)


class ProjectSuitesApi(SuiteCreateApi, SuiteListApi):
    """``/projects/{slug}/suites/``: GET is SuiteListApi, POST is SuiteCreateApi."""


class SuiteDetailApi(BaseApi):
    @extend_schema(
        operation_id="suites_retrieve", tags=TAGS, summary="One suite and its versions", responses=SuiteSerializer
    )
    def get(self, request: ApiRequest, slug: str, pk: int) -> Response:
        suite = suite_get_for_user(user=request.user, pk=pk, slug=slug, token=request.auth)
        return Response(SuiteSerializer(suite).data)


class SuiteVersionCreateApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        scorers = serializers.JSONField(help_text="As for a new suite.")
        config = serializers.JSONField(required=False, default=None)

    @extend_schema(
        operation_id="suites_versions_create",
        tags=TAGS,
        summary="Add a version to a suite",
        description="Versions are immutable: runs keep pointing at the version they ran.",
        request=InputSerializer,
        responses={201: SuiteVersionSerializer, 400: OpenApiResponse(ValidationErrorSerializer)},
    )
    def post(self, request: ApiRequest, slug: str, pk: int) -> Response:
        suite = suite_get_for_user(user=request.user, pk=pk, slug=slug, token=request.auth)
        serializer = SuiteVersionCreateApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = suite_version_create(
            suite=suite,
            scorers=serializer.validated_data["scorers"],
            config=serializer.validated_data["config"],
            actor=request.user,
        )
        return Response(SuiteVersionSerializer(version).data, status=status.HTTP_201_CREATED)


# --- runs --------------------------------------------------------------------------------------


class RunListApi(BaseApi):
    @extend_schema(
        operation_id="runs_list",
        tags=TAGS,
        summary="Evaluation runs, newest first",
        parameters=[
            OpenApiParameter("project", str, description="Only this project's runs (slug)."),
            *PAGE_PARAMETERS,
        ],
        responses=paginated("PaginatedRunList", RunSerializer(many=True)),
    )
    def get(self, request: ApiRequest) -> Response:
        slug = request.query_params.get("project")
        if slug:
            projects = [
                project_get_for_user(user=request.user, slug=slug, capability=Capability.EVALUATE, token=request.auth)
            ]
        else:
            projects = projects_for_evaluation(user=request.user)
            token = request.auth
            if token is not None:
                if "evaluate" not in token.scopes:
                    raise exceptions.PermissionDenied("This API token lacks the 'evaluate' scope.")
                if token.project_id is not None:
                    projects = [p for p in projects if p.pk == token.project_id]
        return paginated_response(
            queryset=run_list(projects=projects),
            serializer_class=RunSerializer,
            request=request,
            view=self,
            ordering="-id",
        )


class RunStartApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        project = serializers.SlugField(help_text="The project's slug.")
        suite = serializers.IntegerField(help_text="The suite id.")
        version = serializers.IntegerField(required=False, default=None, help_text="Suite version; default the latest.")
        dataset = serializers.JSONField(
            required=False,
            default=None,
            help_text='Filters over the items, all optional: {"model_version": "2", "source": "...", '
            '"metadata": {"channel": "chat"}, "ids": [...], "curated_only": true, "limit": 500}. '
            "With dataset_version, they narrow the version's items.",
        )
        dataset_version = serializers.IntegerField(
            required=False,
            allow_null=True,
            default=None,
            help_text="A curated dataset version of the project (its id): the run is over its items in row "
            "order, scored against the expectations and human answers the version snapshotted.",
        )
        target = serializers.JSONField(
            required=False,
            default=None,
            help_text='{"kind": "stored"} (default), {"kind": "mlflow_model", "model_uri": "models:/name/3"} '
            'or {"kind": "endpoint", "endpoint": "name"}.',
        )

    @extend_schema(
        operation_id="runs_start",
        tags=TAGS,
        summary="Start a run",
        description="The run is queued at once; workers score it in chunks. Poll the run for progress.",
        request=InputSerializer,
        responses={201: RunSerializer, 400: OpenApiResponse(ValidationErrorSerializer)},
    )
    def post(self, request: ApiRequest) -> Response:
        serializer = RunStartApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        project = project_get_for_user(
            user=request.user, slug=data["project"], capability=Capability.EVALUATE, token=request.auth
        )
        suite = suite_get_for_user(user=request.user, pk=data["suite"], slug=project.slug, token=request.auth)
        version = suite_version_get(suite=suite, number=data["version"])
        snapshot = None
        if data["dataset_version"] is not None:
            snapshot = dataset_version_for_run(project=project, pk=data["dataset_version"])
        run = run_start(
            project=project,
            suite_version=version,
            dataset=data["dataset"],
            dataset_version=snapshot,
            target=data["target"],
            actor=request.user,
        )
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)


class RunsApi(RunStartApi, RunListApi):
    """``/runs/``: GET is RunListApi, POST is RunStartApi."""


class RunDetailApi(BaseApi):
    @extend_schema(
        operation_id="runs_retrieve",
        tags=TAGS,
        summary="A run: status, progress, timings, metrics with judge-human alignment, MLflow link",
        responses=RunDetailSerializer,
    )
    def get(self, request: ApiRequest, pk: int) -> Response:
        run = run_get_for_user(user=request.user, pk=pk, token=request.auth)
        return Response(run_detail_data(run))


def _bool_param(request: ApiRequest, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise exceptions.ValidationError({name: ["Use true or false."]})


class RunResultsApi(BaseApi):
    @extend_schema(
        operation_id="runs_results",
        tags=TAGS,
        summary="A run's per-row results",
        description="One row per (item, scorer), by cursor.",
        parameters=[
            OpenApiParameter("scorer", str, description="Only this scorer's results."),
            OpenApiParameter("passed", bool, description="Only passing (true) or failing (false) verdicts."),
            OpenApiParameter("errored", bool, description="Only errored (true) or clean (false) rows."),
            *PAGE_PARAMETERS,
        ],
        responses=paginated("PaginatedRunResultList", RunResultSerializer(many=True)),
    )
    def get(self, request: ApiRequest, pk: int) -> Response:
        run = run_get_for_user(user=request.user, pk=pk, token=request.auth)
        results = run_results(
            run=run,
            scorer=request.query_params.get("scorer") or None,
            passed=_bool_param(request, "passed"),
            errored=_bool_param(request, "errored"),
        )
        return paginated_response(queryset=results, serializer_class=RunResultSerializer, request=request, view=self)


class RunCancelApi(BaseApi):
    @extend_schema(
        operation_id="runs_cancel",
        tags=TAGS,
        summary="Cancel a queued or running run",
        request=None,
        responses={200: RunSerializer, 409: OpenApiResponse(description="The run already finished.")},
    )
    def post(self, request: ApiRequest, pk: int) -> Response:
        run = run_get_for_user(user=request.user, pk=pk, token=request.auth)
        return Response(RunSerializer(run_cancel(run=run, actor=request.user)).data)


class CompareSerializer(serializers.Serializer):
    a = RunSerializer()
    b = RunSerializer()
    paired_by = serializers.CharField(help_text="item (the runs share items) or request (paired by request text).")
    n_pairs = serializers.IntegerField(help_text="Shared items: every figure below is computed on these only.")
    n_shared = serializers.IntegerField(help_text="The same as n_pairs.")
    only_a = serializers.IntegerField(help_text="Items only run A scored (left out).")
    only_b = serializers.IntegerField(help_text="Items only run B scored (left out).")
    summary = serializers.CharField(help_text='E.g. "compared on 20 shared items; 5 only in A, 3 only in B".')
    scorers = inline_serializer(
        "ScorerComparison",
        many=True,
        fields={
            "scorer": serializers.CharField(),
            "mean_a": serializers.FloatField(allow_null=True, help_text="Mean of A over the paired rows."),
            "mean_b": serializers.FloatField(allow_null=True, help_text="Mean of B over the paired rows."),
            "pass_rate_a": serializers.FloatField(allow_null=True, help_text="A's pass rate over paired verdicts."),
            "pass_rate_b": serializers.FloatField(allow_null=True, help_text="B's pass rate over paired verdicts."),
            "n_a": serializers.IntegerField(help_text="Rows this scorer scored in A (shared or not)."),
            "n_b": serializers.IntegerField(help_text="Rows this scorer scored in B (shared or not)."),
            "n_paired": serializers.IntegerField(help_text="Shared items with a value on both sides."),
            "mean_diff": serializers.FloatField(allow_null=True, help_text="B - A over paired rows."),
            "mean_ci": serializers.ListField(child=serializers.FloatField(), allow_null=True),
            "n_paired_verdicts": serializers.IntegerField(),
            "pass_rate_diff": serializers.FloatField(allow_null=True),
            "pass_rate_ci": serializers.ListField(child=serializers.FloatField(), allow_null=True),
            "fixed": serializers.IntegerField(help_text="Pairs that went from fail to pass."),
            "regressed": serializers.IntegerField(help_text="Pairs that went from pass to fail."),
            "changes": serializers.ListField(child=serializers.DictField()),
        },
    )


class RunsCompareApi(BaseApi):
    @extend_schema(
        operation_id="runs_compare",
        tags=TAGS,
        summary="Compare two runs scorer by scorer",
        description="On the items both runs share (paired by item, else by request): the means and pass rates "
        "of each, the difference B - A with a paired bootstrap 95% interval (shared items resampled, seeded), "
        "and the rows whose verdict changed. Items only one run has are counted (only_a, only_b), not compared.",
        parameters=[
            OpenApiParameter("a", int, required=True, description="Run A (e.g. the champion)."),
            OpenApiParameter("b", int, required=True, description="Run B (e.g. the candidate)."),
        ],
        responses=CompareSerializer,
    )
    def get(self, request: ApiRequest) -> Response:
        try:
            a, b = run_get_pair_for_user(
                user=request.user, a=request.query_params.get("a"), b=request.query_params.get("b"), token=request.auth
            )
        except Http404 as exc:
            raise exceptions.NotFound(str(exc)) from None
        comparison = runs_compare(a=a, b=b)
        scorers = [
            {**asdict(s), "changes": [{**asdict(c), "direction": c.direction} for c in s.changes]}
            for s in comparison.scorers
        ]
        return Response(
            {
                "a": RunSerializer(a).data,
                "b": RunSerializer(b).data,
                "paired_by": comparison.paired_by,
                "n_pairs": comparison.n_pairs,
                "n_shared": comparison.n_pairs,
                "only_a": comparison.only_a,
                "only_b": comparison.only_b,
                "summary": comparison.summary,
                "scorers": scorers,
            }
        )


class RunDisagreementSerializer(serializers.Serializer):
    item = serializers.IntegerField(source="item_id")
    with_humans = serializers.ListField(child=serializers.CharField(), help_text="Scorers that differ from humans.")
    between_judges = serializers.ListField(child=serializers.CharField(), help_text="Scorers that split on the item.")


class RunDisagreementsListApi(BaseApi):
    @extend_schema(
        operation_id="runs_disagreements_list",
        tags=TAGS,
        summary="Items where a scorer disagrees with the curated label or with another scorer",
        parameters=[OpenApiParameter("scorer", str, many=True, description="Only these scorers (repeatable).")],
        responses=RunDisagreementSerializer(many=True),
    )
    def get(self, request: ApiRequest, pk: int) -> Response:
        run = run_get_for_user(user=request.user, pk=pk, token=request.auth)
        found = disagreements_list(run=run, scorers=request.query_params.getlist("scorer") or None)
        return Response(RunDisagreementSerializer(found, many=True).data)


class RunDisagreementsSendApi(BaseApi):
    class InputSerializer(serializers.Serializer):
        scorers = serializers.ListField(child=serializers.CharField(), required=False, default=None)
        priority = serializers.IntegerField(required=False, default=10, min_value=1, max_value=1_000_000)

    class OutputSerializer(serializers.Serializer):
        items = serializers.IntegerField(help_text="Items with a disagreement.")
        prioritised = serializers.IntegerField(help_text="Items whose queue priority was raised.")
        flagged = serializers.IntegerField(help_text="Curated items flagged 'needs an expert' for curators.")

    @extend_schema(
        operation_id="runs_disagreements_send",
        tags=TAGS,
        summary="Send disagreements to review",
        description="Raises the items' queue priority (never lowers it) and flags the already-curated ones "
        "for curators.",
        request=InputSerializer,
        responses=OutputSerializer,
    )
    def post(self, request: ApiRequest, pk: int) -> Response:
        run = run_get_for_user(user=request.user, pk=pk, token=request.auth)
        serializer = RunDisagreementsSendApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = disagreements_send_to_review(
            run=run,
            actor=request.user,
            scorers=serializer.validated_data["scorers"],
            priority=serializer.validated_data["priority"],
        )
        return Response(RunDisagreementsSendApi.OutputSerializer(result).data)


class RunDisagreementsApi(RunDisagreementsSendApi, RunDisagreementsListApi):
    """``/runs/{id}/disagreements/``: GET lists them, POST sends them to review."""


__all__ = [
    "ProjectSuitesApi",
    "RunCancelApi",
    "RunDetailApi",
    "RunDisagreementsApi",
    "RunResultsApi",
    "RunsApi",
    "RunsCompareApi",
    "SuiteDetailApi",
    "SuiteVersionCreateApi",
]
