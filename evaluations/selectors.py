"""Reads for evaluations. Suites and runs are fetched through permission-checked getters.

Access follows the project: engineers and admins (``Capability.EVALUATE``) see and run a
project's suites; anyone else gets 404 (not a member) or 403 (a member without the capability),
exactly as ``reviewapp.selectors.project_get_for_user`` decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db.models import Avg, Count, Max, Prefetch, Q, QuerySet
from django.http import Http404

from evaluations.models import Run, RunChunk, RunResult, RunRow, Suite, SuiteVersion
from reviewapp.models import ApiToken, Item, Membership, Project
from reviewapp.permissions import Capability, role_allows
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.usertypes import is_signed_in

if TYPE_CHECKING:
    from reviewapp.usertypes import AnyUser


def projects_for_evaluation(*, user: AnyUser) -> list[Project]:
    """The projects whose suites this user may see and run, by name."""
    if not is_signed_in(user):
        return []
    if getattr(user, "is_superuser", False):
        return list(Project.objects.order_by("name"))
    roles = Membership.objects.filter(user=user).values_list("project_id", "role")
    ids = [pk for pk, role in roles if role_allows(role, Capability.EVALUATE)]
    return list(Project.objects.filter(pk__in=ids).order_by("name"))


def suite_list(*, project: Project, with_versions: bool = False) -> QuerySet[Suite]:
    """The project's suites by name; ``with_versions`` also loads each suite's versions (the API lists them)."""
    suites = (
        Suite.objects.filter(project=project)
        .annotate(n_versions=Count("versions", distinct=True), latest_number=Max("versions__number"))
        .order_by("name", "id")
    )
    if with_versions:
        suites = suites.select_related("project", "created_by").prefetch_related(
            Prefetch("versions", queryset=SuiteVersion.objects.select_related("created_by"))
        )
    return suites


def suite_get_for_user(*, user: AnyUser, pk: int, token: ApiToken | None = None, slug: str | None = None) -> Suite:
    """A suite of a project where the user may evaluate; 404 for anyone else (or another project's slug)."""
    suite = Suite.objects.select_related("project").filter(pk=pk).first()
    if suite is None or (slug is not None and suite.project.slug != slug):
        raise Http404("No such suite.")
    suite.project = project_get_for_user(
        user=user, slug=suite.project.slug, capability=Capability.EVALUATE, token=token
    )
    return suite


def suite_versions(*, suite: Suite) -> QuerySet[SuiteVersion]:
    return (
        SuiteVersion.objects.filter(suite=suite)
        .select_related("created_by")
        .annotate(n_runs=Count("runs"))
        .order_by("-number")
    )


def suite_version_list(*, suites: list[Suite]) -> QuerySet[SuiteVersion]:
    """Every version of ``suites``, by suite name, newest first (what a run may start from)."""
    return SuiteVersion.objects.filter(suite__in=suites).select_related("suite").order_by("suite__name", "-number")


def suite_version_for_project(*, project: Project, pk: int) -> SuiteVersion | None:
    """A version of one of ``project``'s suites (the caller checked access to the project), else None."""
    return SuiteVersion.objects.select_related("suite").filter(pk=pk, suite__project=project).first()


def suite_version_get(*, suite: Suite, number: int | None = None) -> SuiteVersion:
    """The suite's version ``number``, or its latest."""
    versions = SuiteVersion.objects.filter(suite=suite).select_related("suite")
    version = versions.filter(number=number).first() if number is not None else versions.order_by("-number").first()
    if version is None:
        raise Http404(f"Suite “{suite.name}” has no version {number}." if number else "This suite has no version.")
    return version


def run_get_for_user(*, user: AnyUser, pk: int, token: ApiToken | None = None) -> Run:
    """A run of a project where the user may evaluate."""
    run = (
        Run.objects.select_related("project", "suite_version__suite", "created_by", "mlflow_log").filter(pk=pk).first()
    )
    if run is None:
        raise Http404("No such run.")
    run.project = project_get_for_user(user=user, slug=run.project.slug, capability=Capability.EVALUATE, token=token)
    return run


def run_list(*, projects: list[Project]) -> QuerySet[Run]:
    """Runs of these projects, newest first."""
    return (
        Run.objects.filter(project__in=projects)
        .select_related("project", "suite_version__suite", "created_by", "mlflow_log")
        .order_by("-id")
    )


def run_metrics_compute(*, run: Run) -> dict[str, dict[str, Any]]:
    """Per scorer (suite order): rows, scored, errors, verdicts, passes, mean value, pass rate, error rate."""
    rows = (
        RunResult.objects.filter(run=run)
        .values("scorer")
        .annotate(
            n=Count("id"),
            n_errors=Count("id", filter=~Q(error="")),
            n_scored=Count("number"),
            n_judged=Count("passed"),
            n_passed=Count("id", filter=Q(passed=True)),
            n_skipped=Count("id", filter=Q(skipped=True)),
            mean=Avg("number"),
        )
        .order_by()
    )
    by_name = {r["scorer"]: r for r in rows}
    out: dict[str, dict[str, Any]] = {}
    names = [*run.suite_version.scorer_names, *sorted(set(by_name) - set(run.suite_version.scorer_names))]
    for name in names:
        r = by_name.get(
            name, {"n": 0, "n_errors": 0, "n_scored": 0, "n_judged": 0, "n_passed": 0, "n_skipped": 0, "mean": None}
        )
        out[name] = {
            "n": r["n"],
            "n_scored": r["n_scored"],
            "n_errors": r["n_errors"],
            "n_judged": r["n_judged"],
            "n_passed": r["n_passed"],
            "n_skipped": r["n_skipped"],
            "mean": r["mean"],
            "pass_rate": r["n_passed"] / r["n_judged"] if r["n_judged"] else None,
            "error_rate": r["n_errors"] / r["n"] if r["n"] else None,
        }
    return out


def run_metrics(*, run: Run) -> dict[str, dict[str, Any]]:
    """The stored figures of a finished run, live ones while it runs."""
    if run.is_finished and run.metrics:
        # jsonb keeps no key order: put the scorers back in suite order
        names = [n for n in run.suite_version.scorer_names if n in run.metrics]
        return {name: run.metrics[name] for name in [*names, *sorted(set(run.metrics) - set(names))]}
    return run_metrics_compute(run=run)


def run_results(
    *, run: Run, scorer: str | None = None, passed: bool | None = None, errored: bool | None = None
) -> QuerySet[RunResult]:
    results = RunResult.objects.filter(run=run).select_related("item")
    if scorer:
        results = results.filter(scorer=scorer)
    if passed is not None:
        results = results.filter(passed=passed)
    if errored is not None:
        results = results.exclude(error="") if errored else results.filter(error="")
    return results


@dataclass(frozen=True)
class RunItemRow:
    """One item of a run with every scorer's result, for the run page."""

    item: Item
    response: str
    generated: RunRow | None
    results: dict[str, RunResult]
    cells: list[RunResult | None]  # the results in the suite's scorer order


def run_item_ids(*, run: Run, scorer: str | None = None, verdict: str = "") -> QuerySet[Any]:
    """Item ids with results in the run, in order; ``verdict`` "failed" / "errored" narrows by ``scorer``."""
    results = RunResult.objects.filter(run=run)
    if scorer:
        results = results.filter(scorer=scorer)
    if verdict == "failed":
        results = results.filter(passed=False)
    elif verdict == "errored":
        results = results.exclude(error="")
    return results.values_list("item_id", flat=True).distinct().order_by("item_id")


def run_item_rows(*, run: Run, item_ids: list[int]) -> list[RunItemRow]:
    """The rows of these items (one page), in the given order: three queries whatever the page size."""
    items = {i.pk: i for i in Item.objects.filter(pk__in=item_ids)}
    generated = {r.item_id: r for r in RunRow.objects.filter(run=run, item_id__in=item_ids)}
    results: dict[int, dict[str, RunResult]] = {}
    for result in RunResult.objects.filter(run=run, item_id__in=item_ids):
        results.setdefault(result.item_id, {})[result.scorer] = result
    names = run.suite_version.scorer_names
    rows = []
    for pk in item_ids:
        if pk not in items:
            continue
        row = generated.get(pk)
        by_scorer = results.get(pk, {})
        rows.append(
            RunItemRow(
                item=items[pk],
                response=row.response if row is not None else items[pk].response,
                generated=row,
                results=by_scorer,
                cells=[by_scorer.get(name) for name in names],
            )
        )
    return rows


def run_chunks(*, run: Run) -> QuerySet[RunChunk]:
    return RunChunk.objects.filter(run=run).order_by("index")


def runs_comparable_with(*, run: Run, limit: int = 20) -> QuerySet[Run]:
    """Other finished runs of the same project, for the "compare with" picker."""
    return (
        Run.objects.filter(project=run.project, status__in=[Run.Status.SUCCEEDED, Run.Status.FAILED])
        .exclude(pk=run.pk)
        .select_related("suite_version__suite")
        .order_by("-id")[:limit]
    )


def run_get_pair_for_user(*, user: AnyUser, a: Any, b: Any, token: ApiToken | None = None) -> tuple[Run, Run]:
    """Two runs to compare: both readable by the user, in one project."""
    try:
        a_id, b_id = int(a), int(b)
    except (TypeError, ValueError):
        raise Http404("Give two run ids: ?a=..&b=..") from None
    run_a = run_get_for_user(user=user, pk=a_id, token=token)
    run_b = run_get_for_user(user=user, pk=b_id, token=token)
    if run_a.project_id != run_b.project_id:
        raise Http404("The two runs belong to different projects.")
    return run_a, run_b


def mlflow_run_url(*, run: Run) -> str:
    """A link to the run in the MLflow UI, when one is configured (settings.MLFLOW_UI_URL)."""
    from django.conf import settings

    if not (settings.MLFLOW_UI_URL and run.mlflow_run_id and run.mlflow_experiment_id):
        return ""
    return f"{settings.MLFLOW_UI_URL}/#/experiments/{run.mlflow_experiment_id}/runs/{run.mlflow_run_id}"
