"""Reads of promotions: permission-checked getters (engineers and admins only) and lists."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from pipelines.models import Approval, Environment, ModelVersion, PromotionRequest, Rollout, RolloutStep
from reviewapp.models import ApiToken, Project
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user

if TYPE_CHECKING:
    from reviewapp.usertypes import AnyUser


def promotion_get_for_user(*, user: AnyUser, pk: int, token: ApiToken | None = None) -> PromotionRequest:
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


def promotion_list_for_version(*, project: Project, model_version: ModelVersion) -> QuerySet[PromotionRequest]:
    """The project's promotion requests of one model version, newest first."""
    return promotion_list(project=project).filter(model_version=model_version)


def model_version_list_for_promotion(*, project: Project, limit: int = 100) -> QuerySet[ModelVersion]:
    """The project's synced versions, newest first, whatever model they name (the request form's picker)."""
    return ModelVersion.objects.filter(project=project).order_by("-id")[:limit]


def model_version_for_project(*, project: Project, pk: Any) -> ModelVersion | None:
    """A synced version of ``project`` (whose access the caller checked) by id, else None."""
    return ModelVersion.objects.filter(project=project, pk=pk).first()


def model_versions_matching(*, project: Project, ref: str, registered_model: str = "") -> list[ModelVersion]:
    """At most two of the project's versions matching ``ref`` ("id:<pk>" or a version number), so the
    caller can tell none from several."""
    versions = ModelVersion.objects.filter(project=project)
    if ref.startswith("id:"):
        versions = versions.filter(pk=int(ref[3:]) if ref[3:].isdigit() else -1)
    else:
        versions = versions.filter(version=ref)
    if registered_model:
        versions = versions.filter(registered_model=registered_model)
    return list(versions[:2])


def environment_list(*, project: Project) -> QuerySet[Environment]:
    return Environment.objects.filter(project=project).select_related("current_version", "previous_version")


def environment_by_name(*, project: Project, name: str) -> Environment | None:
    """The environment of ``project`` (whose access the caller checked) named ``name``, else None."""
    return Environment.objects.filter(project=project, name=name).first()


def environment_get_for_user(
    *, user: AnyUser, slug: str, name: str, capability: Capability, token: ApiToken | None = None
) -> Environment:
    """An environment of a project where the user (and token) may ``capability``; 404 for an unknown name."""
    project = project_get_for_user(user=user, slug=slug, capability=capability, token=token)
    environment = environment_by_name(project=project, name=name)
    if environment is None:
        raise Http404("No such environment.")
    return environment


def rollout_latest(*, request: PromotionRequest) -> Rollout | None:
    rollouts = list(request.rollouts.all())
    return rollouts[-1] if rollouts else None


def rollout_is_active(rollout: Rollout | None) -> bool:
    return rollout is not None and rollout.status in (Rollout.Status.QUEUED, Rollout.Status.RUNNING)
