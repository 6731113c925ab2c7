"""Reads of promotions: permission-checked getters (engineers and admins only) and lists."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from pipelines.models import Approval, Environment, PromotionRequest, Rollout, RolloutStep
from reviewapp.models import ApiToken, Project
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user


def promotion_get_for_user(*, user: Any, pk: int, token: ApiToken | None = None) -> PromotionRequest:
    """A promotion request of a project where the user may promote (reviewers get 403, outsiders 404)."""
    request = (
        PromotionRequest.objects.select_related(
            "project", "model_version", "environment", "requested_by", "overridden_by"
        )
        .prefetch_related(
            Prefetch("approvals", queryset=Approval.objects.select_related("user").order_by("id")),
            Prefetch(
                "rollouts",
                queryset=Rollout.objects.select_related("to_version", "from_version", "created_by")
                .prefetch_related(Prefetch("steps", queryset=RolloutStep.objects.order_by("position")))
                .order_by("id"),
            ),
        )
        .filter(pk=pk)
        .first()
    )
    if request is None:
        raise Http404("No such promotion request.")
    request.project = project_get_for_user(
        user=user, slug=request.project.slug, capability=Capability.PROMOTE, token=token
    )
    return request


def promotion_list(*, project: Project) -> QuerySet[PromotionRequest]:
    return (
        PromotionRequest.objects.filter(project=project)
        .select_related("model_version", "environment", "requested_by")
        .prefetch_related(Prefetch("approvals", queryset=Approval.objects.select_related("user")))
        .order_by("-id")
    )


def promotion_list_for_version(*, model_version: Any) -> QuerySet[PromotionRequest]:
    return promotion_list(project=model_version.project).filter(model_version=model_version)


def environment_list(*, project: Project) -> QuerySet[Environment]:
    return Environment.objects.filter(project=project).select_related("current_version", "previous_version")


def environment_get_for_user(*, user: Any, slug: str, name: str, capability: Capability) -> Environment:
    project = project_get_for_user(user=user, slug=slug, capability=capability)
    environment = Environment.objects.filter(project=project, name=name).first()
    if environment is None:
        raise Http404("No such environment.")
    return environment


def rollout_latest(*, request: PromotionRequest) -> Rollout | None:
    rollouts = list(request.rollouts.all())
    return rollouts[-1] if rollouts else None


def rollout_is_active(rollout: Rollout | None) -> bool:
    return rollout is not None and rollout.status in (Rollout.Status.QUEUED, Rollout.Status.RUNNING)
