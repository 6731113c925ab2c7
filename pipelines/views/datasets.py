"""Pages: curated datasets, versions, diffs, and exports (links to the streamed API, background jobs)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import URLPattern, path
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from pipelines.datasets.export_jobs import export_job_create
from pipelines.datasets.exports import FORMATS, SHAPES
from pipelines.datasets.versions import dataset_create, dataset_version_create, dataset_versions_diff
from pipelines.selectors.datasets import (
    dataset_get_for_user,
    dataset_list,
    dataset_version_get_for_user,
    dataset_versions,
    export_job_get_for_user,
    export_jobs_recent,
)
from reviewapp.errors import ServiceError, ValidationFailed
from reviewapp.jsoninput import JsonInputError, json_decode
from reviewapp.models import CuratedLabel
from reviewapp.permissions import Capability, role_allows
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.views.http import AuthedHtmxRequest, partial

DETAIL_TEMPLATE = "pipelines/dataset_detail.html"
FILTER_FIELDS = ("model_version", "source", "method", "gold", "tags", "created_from", "created_to", "answers")


def _filter_from_form(data: Any) -> tuple[dict[str, Any], list[str]]:
    """The filter typed into the form (empty fields left out); problems with the JSON field."""
    flt: dict[str, Any] = {}
    problems: list[str] = []
    for key in FILTER_FIELDS:
        value = (data.get(key) or "").strip()
        if not value:
            continue
        if key == "gold":
            flt[key] = value == "true"
        elif key == "tags":
            flt[key] = [t.strip() for t in value.split(",") if t.strip()]
        elif key == "answers":
            try:
                flt[key] = json_decode(value)
            except JsonInputError:
                problems.append('Answers: give JSON, e.g. {"correct": "pass"}.')
        else:
            flt[key] = value
    return flt, problems


@login_required
@require_http_methods(["GET", "POST"])
def datasets_list(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    """The project's datasets; curators create one here."""
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.EXPORT)
    may_curate = role_allows(project.user_role, Capability.CURATE)  # type: ignore[attr-defined]
    errors: list[str] = []
    form = request.POST if request.method == "POST" else {}
    if request.method == "POST":
        project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE)
        flt, errors = _filter_from_form(request.POST)
        if not errors:
            try:
                dataset = dataset_create(
                    project=project,
                    user=request.user,
                    name=request.POST.get("name", ""),
                    description=request.POST.get("description", ""),
                    filter=flt,
                )
            except ValidationFailed as exc:
                errors = [f"{e['field']}: {e['message']}" for e in exc.errors]
            else:
                messages.success(request, f"Dataset “{dataset.name}” created. Take its first version below.")
                return redirect("dataset-detail", pk=dataset.pk)
    context = {
        "project": project,
        "datasets": dataset_list(project=project),
        "may_curate": may_curate,
        "errors": errors,
        "form": form,
        "methods": CuratedLabel.Method.choices,
    }
    return render(request, "pipelines/dataset_list.html", context, status=400 if errors else 200)


def _detail_context(request: AuthedHtmxRequest, dataset: Any, **extra: Any) -> dict[str, Any]:
    versions = list(dataset_versions(dataset=dataset))
    return {
        "project": dataset.project,
        "dataset": dataset,
        "versions": versions,
        "stale_versions": [v for v in versions if v.needs_new_version],
        "may_curate": role_allows(dataset.project.user_role, Capability.CURATE),
        "formats": FORMATS,
        "shapes": SHAPES,
        "jobs": export_jobs_recent(project=dataset.project, dataset=dataset),
        **extra,
    }


@login_required
@require_GET
def dataset_detail(request: AuthedHtmxRequest, pk: int) -> HttpResponse:
    dataset = dataset_get_for_user(user=request.user, pk=pk)
    context = _detail_context(request, dataset)
    versions = context["versions"]
    old_n, new_n = request.GET.get("old", ""), request.GET.get("new", "")
    if old_n.isdigit() and new_n.isdigit():
        old = dataset_version_get_for_user(user=request.user, dataset_pk=pk, number=int(old_n))
        new = dataset_version_get_for_user(user=request.user, dataset_pk=pk, number=int(new_n))
        context["diff"] = dataset_versions_diff(old=old, new=new)
    elif len(versions) >= 2:
        old_n, new_n = str(versions[1].number), str(versions[0].number)
    context.update(old_n=old_n, new_n=new_n)
    return render(
        request, partial(DETAIL_TEMPLATE, request, "dataset-diff") if "diff" in context else DETAIL_TEMPLATE, context
    )


@login_required
@require_POST
def dataset_version_create_view(request: AuthedHtmxRequest, pk: int) -> HttpResponse:
    dataset = dataset_get_for_user(user=request.user, pk=pk, capability=Capability.CURATE)
    try:
        version = dataset_version_create(
            dataset=dataset,
            user=request.user,
            note=request.POST.get("note", ""),
            allow_unchanged=request.POST.get("allow_unchanged") == "1",
        )
    except ServiceError as exc:
        messages.warning(request, exc.message)
    else:
        messages.success(request, f"Version {version.number} taken: {version.row_count} rows.")
    return redirect("dataset-detail", pk=dataset.pk)


@login_required
@require_POST
def dataset_export_start(request: AuthedHtmxRequest, pk: int) -> HttpResponse:
    """Start a background export of one version; htmx gets the job's progress fragment."""
    dataset = dataset_get_for_user(user=request.user, pk=pk)
    number = request.POST.get("version", "")
    fmt, shape = request.POST.get("format", "jsonl"), request.POST.get("shape", "mlflow")
    if not number.isdigit() or fmt not in FORMATS or shape not in SHAPES:
        return HttpResponse("Pick a version, a format and a shape.", status=400)
    version = dataset_version_get_for_user(user=request.user, dataset_pk=pk, number=int(number))
    job = export_job_create(
        project=dataset.project,
        user=request.user,
        fmt=fmt,
        shape=shape,
        compression="gzip" if request.POST.get("gzip") == "1" else "",
        version=version,
    )
    if request.htmx:
        return render(request, "pipelines/partials/export_job.html", {"job": job})
    return redirect("dataset-detail", pk=dataset.pk)


@login_required
@require_GET
def export_job_status(request: AuthedHtmxRequest, pk: int) -> HttpResponse:
    """The job's progress fragment, polled every second; polling stops once the job is finished."""
    job = export_job_get_for_user(user=request.user, pk=pk)
    html = render_to_string("pipelines/partials/export_job.html", {"job": job}, request=request)
    if job.is_finished:
        return HttpResponseStopPolling(html)  # 286: htmx stops polling
    return HttpResponse(html)


urlpatterns: list[URLPattern] = [
    path("projects/<slug:slug>/datasets/", datasets_list, name="datasets-list"),
    path("datasets/<int:pk>/", dataset_detail, name="dataset-detail"),
    path("datasets/<int:pk>/versions/new/", dataset_version_create_view, name="dataset-version-create"),
    path("datasets/<int:pk>/exports/", dataset_export_start, name="dataset-export-start"),
    path("exports/<int:pk>/status/", export_job_status, name="export-job-status"),
]
