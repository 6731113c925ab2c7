"""Reads of curated datasets, versions and export jobs, each through one permission-checked getter."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import Count, Max, QuerySet
from django.http import Http404

from pipelines.models import Dataset, DatasetRow, DatasetVersion, ExportJob
from reviewapp.models import ApiToken, Project
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user

if TYPE_CHECKING:
    from reviewapp.selectors.projects import AnyUser


def dataset_get_for_user(
    *, user: AnyUser, pk: int, capability: Capability = Capability.EXPORT, token: ApiToken | None = None
) -> Dataset:
    """A dataset of a project where ``user`` (and ``token``) may ``capability``: 404 otherwise, or 403
    for a member without it (as project_get_for_user)."""
    dataset = Dataset.objects.select_related("project", "created_by").filter(pk=pk).first()
    if dataset is None:
        raise Http404("No such dataset.")
    dataset.project = project_get_for_user(user=user, slug=dataset.project.slug, capability=capability, token=token)
    return dataset


def dataset_version_get_for_user(
    *,
    user: AnyUser,
    dataset_pk: int,
    number: int,
    capability: Capability = Capability.EXPORT,
    token: ApiToken | None = None,
) -> DatasetVersion:
    dataset = dataset_get_for_user(user=user, pk=dataset_pk, capability=capability, token=token)
    version = DatasetVersion.objects.select_related("created_by").filter(dataset=dataset, number=number).first()
    if version is None:
        raise Http404("No such version of this dataset.")
    version.dataset = dataset
    return version


def export_job_get_for_user(*, user: AnyUser, pk: int, token: ApiToken | None = None) -> ExportJob:
    job = ExportJob.objects.select_related("project", "version__dataset", "created_by").filter(pk=pk).first()
    if job is None:
        raise Http404("No such export job.")
    project_get_for_user(user=user, slug=job.project.slug, capability=Capability.EXPORT, token=token)
    return job


def dataset_list(*, project: Project) -> QuerySet[Dataset]:
    """The project's datasets with their version count and latest version number."""
    return (
        Dataset.objects.filter(project=project)
        .select_related("created_by")
        .annotate(n_versions=Count("versions"), latest_number=Max("versions__number"))
        .order_by("name")
    )


def dataset_versions(*, dataset: Dataset) -> QuerySet[DatasetVersion]:
    return DatasetVersion.objects.filter(dataset=dataset).select_related("created_by").order_by("-number")


def dataset_rows(*, version: DatasetVersion) -> QuerySet[DatasetRow]:
    return DatasetRow.objects.filter(version=version)


def export_jobs_recent(*, project: Project, dataset: Dataset | None = None, limit: int = 10) -> list[Any]:
    jobs = ExportJob.objects.filter(project=project).select_related("project", "version__dataset", "created_by")
    if dataset is not None:
        jobs = jobs.filter(version__dataset=dataset)
    return list(jobs.order_by("-id")[:limit])
