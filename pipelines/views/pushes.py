"""Pages: deliveries to Delta tables and Unity Catalog (targets, pushes, "push now")."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from pipelines.datasets.pushes import (
    delivery_target_create,
    delivery_target_set_feed,
    delta_default_uri,
    feed_push_create,
    push_create,
)
from pipelines.models import Push, TargetKind
from pipelines.selectors.datasets import dataset_version_for_project, dataset_version_list
from pipelines.selectors.pushes import delivery_target_get_for_user, delivery_target_list, push_list
from pipelines.wiring import databricks_config
from reviewapp.errors import Conflict, ValidationFailed
from reviewapp.permissions import Capability, role_allows
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.typed_input import field_error
from reviewapp.views.http import AuthedHtmxRequest

TEMPLATE = "pipelines/pushes.html"
PAGE_PUSHES = 50


def _context(project: Any, **extra: Any) -> dict[str, Any]:
    pushes = list(push_list(project=project)[:PAGE_PUSHES])
    return {
        "project": project,
        "targets": delivery_target_list(project=project),
        "pushes": pushes,
        "active": any(p.status in Push.ACTIVE for p in pushes),
        "versions": dataset_version_list(project=project)[:200],
        "kinds": TargetKind.choices,
        "may_curate": role_allows(project.user_role, Capability.CURATE),
        "databricks": databricks_config().configured,
        "default_uri": delta_default_uri(project=project),
        **extra,
    }


@login_required
@require_GET
def pushes_list(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    """Delivery targets and the latest pushes; the push table polls while a push is queued or running."""
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.EXPORT)
    context = _context(project)
    if request.htmx:
        response = render(request, f"{TEMPLATE}#push-table", context)
        return response if context["active"] else HttpResponseStopPolling(response.content)
    return render(request, TEMPLATE, context)


@login_required
@require_POST
def delivery_target_create_view(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE)
    try:
        target = delivery_target_create(
            project=project,
            kind=request.POST.get("kind", ""),
            target=request.POST.get("target", ""),
            feed_enabled=request.POST.get("feed_enabled") == "on",
            user=request.user,
        )
    except ValidationFailed as exc:
        errors = [f"{e['field']}: {e['message']}" for e in exc.errors]
        return render(request, TEMPLATE, _context(project, errors=errors, form=request.POST), status=400)
    except Conflict as exc:  # the location belongs to another project's target
        return render(request, TEMPLATE, _context(project, errors=[exc.message], form=request.POST), status=409)
    messages.success(request, f"Delivery target {target.target} added.")
    return redirect("pushes-list", slug=project.slug)


@login_required
@require_POST
def delivery_target_feed_view(request: AuthedHtmxRequest, pk: int) -> HttpResponse:
    target = delivery_target_get_for_user(user=request.user, pk=pk, capability=Capability.CURATE)
    enabled = request.POST.get("enabled") == "true"
    delivery_target_set_feed(delivery_target=target, enabled=enabled, user=request.user)
    messages.success(request, f"Continuous delivery to {target.target} {'on' if enabled else 'off'}.")
    return redirect("pushes-list", slug=target.project.slug)


@login_required
@require_POST
def push_now(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    """Push a dataset version (or, without one, the target's newly curated labels) to a target."""
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE)
    target_id, version_id = request.POST.get("target", ""), request.POST.get("version", "")
    target = None
    if target_id.isdigit():
        target = delivery_target_get_for_user(user=request.user, pk=int(target_id), capability=Capability.CURATE)
        if target.project_id != project.pk:
            target = None
    push: Push | None
    try:
        if version_id.isdigit():
            version = dataset_version_for_project(project=project, pk=int(version_id))
            if version is None:
                raise ValidationFailed([field_error("version", "No such dataset version.")])
            push = push_create(project=project, dataset_version=version, delivery_target=target, user=request.user)
        else:
            if target is None:
                raise ValidationFailed([field_error("target", "Choose a target.")])
            push = feed_push_create(delivery_target=target, user=request.user)
    except ValidationFailed as exc:
        errors = [f"{e['field']}: {e['message']}" for e in exc.errors]
        return render(request, TEMPLATE, _context(project, errors=errors), status=400)
    if push is None:
        messages.info(request, "Nothing to push: no newly curated labels, or the previous batch is unfinished.")
    else:
        messages.success(request, f"Push {push.pk} queued.")
    return redirect("pushes-list", slug=project.slug)


urlpatterns: list[URLPattern] = [
    path("projects/<slug:slug>/deliveries/", pushes_list, name="pushes-list"),
    path("projects/<slug:slug>/deliveries/targets/", delivery_target_create_view, name="delivery-target-create"),
    path("projects/<slug:slug>/deliveries/push/", push_now, name="push-now"),
    path("delivery-targets/<int:pk>/feed/", delivery_target_feed_view, name="delivery-target-feed"),
]
