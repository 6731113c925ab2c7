"""Reads of sources and their pulls, through one permission-checked getter.

Sources are managed by those who may add items (``Capability.INGEST``: curators, engineers,
admins, and API tokens with the ``ingest`` scope); reviewers do not see them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db.models import Count, Max, QuerySet, Sum
from django.http import Http404
from django.utils import timezone

from evaluations.models import Suite, SuiteVersion
from evaluations.scorers.registry import scorer_get
from pipelines.models import Rollout, Source, SourcedItem, SourceKind, SourcePull, SourceRun
from reviewapp.models import ApiToken, Item, Project
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user

if TYPE_CHECKING:
    from reviewapp.usertypes import AnyUser


def source_get_for_user(
    *, user: AnyUser, pk: int, capability: Capability = Capability.INGEST, token: ApiToken | None = None
) -> Source:
    """A source of a project where ``user`` (and ``token``) may ``capability``; 404 otherwise, 403 for a
    member without it (as project_get_for_user)."""
    source = Source.objects.select_related("project").filter(pk=pk).first()
    if source is None:
        raise Http404("No such source.")
    source.project = project_get_for_user(user=user, slug=source.project.slug, capability=capability, token=token)
    return source


def source_list(*, project: Project) -> QuerySet[Source]:
    return Source.objects.filter(project=project).order_by("name")


def source_pull_list(*, source: Source) -> QuerySet[SourcePull]:
    return SourcePull.objects.filter(source=source).select_related("created_by").order_by("-id")


def source_pull_latest(*, project: Project) -> dict[int, SourcePull]:
    """Each source's latest pull, by source id (for the list)."""
    latest_ids = Source.objects.filter(project=project).annotate(latest=Max("pulls__id")).values("latest")
    return {pull.source_id: pull for pull in SourcePull.objects.filter(pk__in=latest_ids)}


@dataclass(frozen=True)
class SourceVolume:
    total: int
    last_hour: int
    last_day: int


def source_volume(*, source: Source, now: datetime | None = None) -> SourceVolume:
    """Items the source brought: for REST, the project's items whose ``source`` is the source's name
    (ingested through reviewapp's items API); for the others, the items its rules took."""
    now = now or timezone.now()
    if source.kind == SourceKind.REST:
        items = Item.objects.filter(project_id=source.project_id, source=source.name)
        field = "created_at"
    else:
        items = SourcedItem.objects.filter(source=source)  # type: ignore[assignment]
        field = "taken_at"
    return SourceVolume(
        total=items.count(),
        last_hour=items.filter(**{f"{field}__gte": now - timedelta(hours=1)}).count(),
        last_day=items.filter(**{f"{field}__gte": now - timedelta(days=1)}).count(),
    )


def source_rule_counts(*, source: Source) -> dict[str, int]:
    """Items taken per rule label, all time."""
    rows = SourcedItem.objects.filter(source=source).values("rule").annotate(n=Count("id")).order_by("rule")
    return {row["rule"]: row["n"] for row in rows}


def canary_versions(*, project_id: int) -> frozenset[tuple[str, str]]:
    """(registered model, version) of the project's versions under canary: a rollout (not a rollback)
    in progress, traffic split between the old version and this one (pipelines.releases)."""
    rows = Rollout.objects.filter(
        request__project_id=project_id,
        kind=Rollout.Kind.ROLLOUT,
        status__in=[Rollout.Status.QUEUED, Rollout.Status.RUNNING],
    ).values_list("to_version__registered_model", "to_version__version")
    return frozenset((str(name), str(version)) for name, version in rows)


BUDGET_WINDOW = timedelta(hours=1)


def suite_latest_version(source: Source) -> SuiteVersion | None:
    if source.suite_id is None:
        return None
    return SuiteVersion.objects.filter(suite_id=source.suite_id).order_by("-number").first()


def judge_entries(version: SuiteVersion) -> int:
    """How many of the version's entries are LLM judges (a scorer no longer registered is not one)."""
    count = 0
    for entry in version.scorers or []:
        try:
            count += scorer_get(entry["scorer"]).source_type == "LLM_JUDGE"
        except KeyError:
            continue
    return count


def judge_calls_used(*, source: Source, now: datetime | None = None) -> int:
    """LLM-judge calls granted to this source's online runs in the last hour."""
    now = now or timezone.now()
    used = SourceRun.objects.filter(source_id=source.pk, created_at__gt=now - BUDGET_WINDOW).aggregate(
        n=Sum("judge_calls")
    )["n"]
    return int(used or 0)


@dataclass(frozen=True)
class SourceOnline:
    """Online evaluation of a source: its suite, its judge budget and what it used, its recent runs."""

    suite_name: str
    suite_version: int | None
    judge_calls_per_hour: int
    judge_calls_used: int  # granted in the last hour
    runs: list[SourceRun]


def source_online(*, source: Source, runs: int = 10, now: datetime | None = None) -> SourceOnline:
    version = suite_latest_version(source)
    return SourceOnline(
        suite_name=source.suite.name if source.suite_id is not None and source.suite is not None else "",
        suite_version=version.number if version is not None else None,
        judge_calls_per_hour=source.judge_calls_per_hour,
        judge_calls_used=judge_calls_used(source=source, now=now),
        runs=list(source_run_list(source=source)[:runs]),
    )


def source_run_list(*, source: Source) -> QuerySet[SourceRun]:
    """The evaluation runs the source's pulls started, newest first (with their live status)."""
    return SourceRun.objects.filter(source=source).select_related("run").order_by("-id")


def suite_choices(*, project: Project) -> list[tuple[int, str]]:
    """The project's suites (id, name), for a source's online evaluation."""
    return list(Suite.objects.filter(project=project).order_by("name").values_list("pk", "name"))
