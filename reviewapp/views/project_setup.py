"""Setting a project up without the Django admin: the new-project page, the settings page (with the
reviewer guidelines' preview and the progress of a background sync), archive and restore.

Pages post to themselves and redirect (post/redirect/get); a refused form re-renders with each
field's message and status 422. The services check everything; these views only translate forms.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.models import Project, ProjectSync
from reviewapp.models.projects import QueueMode
from reviewapp.permissions import Capability, may_create_projects
from reviewapp.rendering import render_markdown
from reviewapp.selectors.projects import project_get_for_user, project_sync_latest
from reviewapp.services.projects import (
    ProjectFields,
    project_archive,
    project_restore,
    project_setup,
    project_update,
)
from reviewapp.views.http import AuthedHtmxRequest

INTEGERS = ("reviews_per_item", "lease_seconds")
BOOLEANS = ("show_model_to_reviewers", "self_adjudication")
GUIDELINES_PREVIEW_MAX = 50000


def form_values(post: QueryDict, *, with_slug: bool) -> dict[str, Any]:
    """The form as the service's input: numbers as numbers when they read as such (else the text,
    which the service refuses with the field's message), checkboxes as booleans."""
    data: dict[str, Any] = {}
    for name in ProjectFields.__struct_fields__:
        if name in BOOLEANS:
            data[name] = post.get(name) == "on"
            continue
        if name == "slug" and not with_slug:
            continue
        value = post.get(name, "")
        if name in INTEGERS:
            data[name] = _number(value, int)
        elif name == "gold_rate":
            data[name] = _number(value, float)
        else:
            data[name] = value.strip() if name in ("name", "slug") else value
    return data


def _number(value: str, kind: type) -> Any:
    try:
        return kind(value.strip())
    except ValueError:
        return value


def _errors_by_field(errors: list[FieldError]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for error in errors:
        out.setdefault(error["field"] or "general", []).append(error["message"])
    return out


def _context(values: dict[str, Any], errors: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {
        "values": values,
        "errors": errors or {},
        "queue_modes": QueueMode.choices,
        "preview": render_markdown(values.get("guidelines", "")),
    }


def _defaults() -> dict[str, Any]:
    return {name: getattr(Project, name).field.get_default() for name in ProjectFields.__struct_fields__}


@login_required
@require_http_methods(["GET", "POST"])
def project_new(request: AuthedHtmxRequest) -> HttpResponse:
    if not may_create_projects(request.user):
        raise PermissionDenied(
            "Creating projects needs an instance admin, or the permission to add projects that an "
            "instance admin grants. Ask an instance admin."
        )
    if request.method == "GET":
        return render(request, "reviewapp/project_new.html", _context(_defaults()))
    values = form_values(request.POST, with_slug=True)
    try:
        project = project_setup(data=values, actor=request.user)
    except ValidationFailed as exc:
        return render(request, "reviewapp/project_new.html", _context(values, _errors_by_field(exc.errors)), status=422)
    messages.success(request, f"{project.name} is ready. Add its questions and members next.")
    return redirect("project-settings", slug=project.slug)


@login_required
@require_POST
def guidelines_preview(request: AuthedHtmxRequest) -> HttpResponse:
    """The reviewer guidelines as reviewers will read them, rendered by the same sanitising renderer."""
    if not request.user.is_authenticated:
        raise PermissionDenied
    text = request.POST.get("guidelines", "")[:GUIDELINES_PREVIEW_MAX]
    return render(request, "reviewapp/partials/guidelines_preview.html", {"preview": render_markdown(text)})


def _settings_page(
    request: AuthedHtmxRequest, project: Project, values: dict[str, Any], errors: Any = None, status: int = 200
) -> HttpResponse:
    context = {**_context(values, errors), "project": project, "sync": project_sync_latest(project=project)}
    return render(request, "reviewapp/project_settings.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def project_settings(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.MANAGE)
    current = {name: getattr(project, name) for name in ProjectFields.__struct_fields__}
    if request.method == "GET":
        return _settings_page(request, project, current)
    values = {**current, **form_values(request.POST, with_slug=False)}
    try:
        updated = project_update(project=project, data=values, actor=request.user)
    except ValidationFailed as exc:
        return _settings_page(request, project, values, _errors_by_field(exc.errors), status=422)
    sync = getattr(updated, "sync", None)
    if sync is not None:
        messages.success(
            request, f"Saved. Bringing {sync.items_total} items in line with {updated.reviews_per_item} reviews each."
        )
    else:
        messages.success(request, "Saved.")
    return redirect("project-settings", slug=project.slug)


@login_required
@require_GET
def project_sync_progress(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    """The sync's progress bar (htmx polls it while the sync is queued or running)."""
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.MANAGE)
    return render(
        request,
        "reviewapp/partials/project_sync.html",
        {"project": project, "sync": project_sync_latest(project=project), "active": ProjectSync.ACTIVE},
    )


@login_required
@require_POST
def project_archive_view(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.MANAGE)
    project_archive(project=project, actor=request.user)
    messages.success(request, f"{project.name} is archived: read-only and hidden from lists until restored.")
    return redirect("project-settings", slug=project.slug)


@login_required
@require_POST
def project_restore_view(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.MANAGE)
    project_restore(project=project, actor=request.user)
    messages.success(request, f"{project.name} is restored.")
    return redirect("project-settings", slug=project.slug)
