"""Pages: promotion requests, approvals and rollouts (engineers and admins; reviewers get 403)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path
from django.views.decorators.http import require_GET, require_POST

from pipelines.models import ModelVersion
from pipelines.releases.promotion import (
    promotion_approve,
    promotion_cancel,
    promotion_reject,
    promotion_request,
    promotion_retry,
    rollback_request,
)
from pipelines.releases.serving import serving_describe
from pipelines.selectors.promotions import (
    environment_list,
    promotion_get_for_user,
    promotion_list,
    rollout_is_active,
    rollout_latest,
)
from reviewapp.errors import ServiceError
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user, role_for
from reviewapp.views.http import AuthedHtmxRequest, partial

ACTIONS = ("approve", "reject", "rollback", "retry", "cancel")


@login_required
@require_GET
def promotions_list(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.PROMOTE)
    environments = list(environment_list(project=project))
    return render(
        request,
        "pipelines/promotion_list.html",
        {
            "project": project,
            "requests": promotion_list(project=project)[:200],
            "environments": [{"env": e, "endpoint": serving_describe(environment=e)} for e in environments],
            "environment_choices": environments,
            "versions": ModelVersion.objects.filter(project=project).order_by("-id")[:100],
        },
    )


@login_required
@require_POST
def promotion_create(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.PROMOTE)
    model_version = ModelVersion.objects.filter(project=project, pk=request.POST.get("model_version") or 0).first()
    environment = environment_list(project=project).filter(pk=request.POST.get("environment") or 0).first()
    if model_version is None or environment is None:
        messages.error(request, "Choose a model version and an environment.")
        return redirect("promotions-list", slug=project.slug)
    try:
        created = promotion_request(
            actor=request.user,
            model_version=model_version,
            environment=environment,
            reason=request.POST.get("reason", ""),
        )
    except ServiceError as exc:
        messages.error(request, exc.message)
        back = request.POST.get("next") or ""
        if not (back.startswith("/") and not back.startswith("//")):  # never an open redirect
            back = f"/projects/{project.slug}/promotions/"
        return redirect(back)
    messages.success(request, f"Promotion #{created.pk} requested; another engineer must approve it.")
    return redirect("promotion-detail", pk=created.pk)


def _detail_context(request: AuthedHtmxRequest, pk: int) -> dict[str, object]:
    promotion = promotion_get_for_user(user=request.user, pk=pk)
    latest = rollout_latest(request=promotion)
    env = promotion.environment
    user_id = request.user.pk
    decided = any(a.user_id == user_id for a in promotion.approvals.all())
    return {
        "project": promotion.project,
        "promotion": promotion,
        "rollouts": list(promotion.rollouts.all()),
        "latest": latest,
        "active": rollout_is_active(latest),
        "endpoint": serving_describe(environment=env),
        "is_admin": role_for(user=request.user, project=promotion.project) == "admin",
        "can_decide": promotion.status == "pending" and promotion.requested_by_id != user_id and not decided,
        "can_rollback": promotion.status == "live"
        and env.current_version_id == promotion.model_version_id
        and env.previous_version_id is not None
        and not rollout_is_active(latest),
        "can_retry": latest is not None and latest.status == "failed",
        "local_serving": env.serving_kind == "local",
    }


@login_required
@require_GET
def promotion_detail(request: AuthedHtmxRequest, pk: int) -> HttpResponse:
    context = _detail_context(request, pk)
    return render(request, partial("pipelines/promotion_detail.html", request, "promotion-panel"), context)


@login_required
@require_POST
def promotion_action(request: AuthedHtmxRequest, pk: int, action: str) -> HttpResponse:
    if action not in ACTIONS:
        raise Http404("No such action.")
    promotion_get_for_user(user=request.user, pk=pk)
    post = request.POST
    try:
        if action == "approve":
            promotion_approve(
                actor=request.user,
                request_id=pk,
                comment=post.get("comment", ""),
                override_justification=post.get("override_justification", ""),
            )
            messages.success(request, "Approved.")
        elif action == "reject":
            promotion_reject(actor=request.user, request_id=pk, reason=post.get("reason", ""))
            messages.success(request, "Rejected.")
        elif action == "rollback":
            rollback_request(actor=request.user, request_id=pk, reason=post.get("reason", ""))
            messages.success(request, "Rollback queued.")
        elif action == "retry":
            promotion_retry(actor=request.user, request_id=pk)
            messages.success(request, "Rollout queued again; it resumes at the failed step.")
        else:
            promotion_cancel(actor=request.user, request_id=pk)
            messages.success(request, "Request cancelled.")
    except ServiceError as exc:
        messages.error(request, exc.message)
    except PermissionDenied as exc:
        messages.error(request, str(exc))
    return redirect("promotion-detail", pk=pk)


@login_required
@require_GET
def version_promotions(request: AuthedHtmxRequest, slug: str, pk: int) -> HttpResponse:
    """The version page's promotion panel: the request form and this version's requests."""
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.PROMOTE)
    model_version = ModelVersion.objects.filter(project=project, pk=pk).first()
    if model_version is None:
        raise Http404("No such model version.")
    return render(
        request,
        "pipelines/partials/version_promotions.html",
        {
            "project": project,
            "mv": model_version,
            "environments": environment_list(project=project),
            "requests": promotion_list(project=project).filter(model_version=model_version),
            "promo_loaded": True,
        },
    )


urlpatterns: list[URLPattern] = [
    path("projects/<slug:slug>/promotions/", promotions_list, name="promotions-list"),
    path("projects/<slug:slug>/promotions/new/", promotion_create, name="promotion-create"),
    path("projects/<slug:slug>/model-versions/<int:pk>/promotions/", version_promotions, name="version-promotions"),
    path("promotions/<int:pk>/", promotion_detail, name="promotion-detail"),
    path("promotions/<int:pk>/<str:action>/", promotion_action, name="promotion-action"),
]
