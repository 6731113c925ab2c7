"""Reads of sources and their pulls, through one permission-checked getter.

Sources are managed by those who may add items (``Capability.INGEST``: curators, engineers,
admins, and API tokens with the ``ingest`` scope); reviewers do not see them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db.models import Count, Max, QuerySet
from django.http import Http404
from django.utils import timezone

from pipelines.models import Rollout, Source, SourcedItem, SourceKind, SourcePull
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
