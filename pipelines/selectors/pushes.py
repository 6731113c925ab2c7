"""Reads of delivery targets and pushes, each through one permission-checked getter.

Seeing deliveries needs ``Capability.EXPORT`` (curators, engineers, admins: people who may read
every curated row anyway); creating targets and pushes needs ``Capability.CURATE``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet
from django.http import Http404

from pipelines.models import DeliveryTarget, Push
from reviewapp.models import ApiToken, Project
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user

if TYPE_CHECKING:
    from reviewapp.selectors.projects import AnyUser


def push_get_for_user(
    *, user: AnyUser, pk: int, capability: Capability = Capability.EXPORT, token: ApiToken | None = None
) -> Push:
    """A push of a project where ``user`` (and ``token``) may ``capability``.

    404 otherwise, 403 for a member without the capability (as project_get_for_user)."""
    push = (
        Push.objects.select_related("project", "delivery_target", "dataset_version__dataset", "created_by")
        .filter(pk=pk)
        .first()
    )
    if push is None:
        raise Http404("No such push.")
    push.project = project_get_for_user(user=user, slug=push.project.slug, capability=capability, token=token)
    return push


def delivery_target_get_for_user(
    *, user: AnyUser, pk: int, capability: Capability = Capability.EXPORT, token: ApiToken | None = None
) -> DeliveryTarget:
    target = DeliveryTarget.objects.select_related("project").filter(pk=pk).first()
    if target is None:
        raise Http404("No such delivery target.")
    target.project = project_get_for_user(user=user, slug=target.project.slug, capability=capability, token=token)
    return target


def push_list(*, project: Project, target: DeliveryTarget | None = None) -> QuerySet[Push]:
    pushes = Push.objects.filter(project=project).select_related(
        "delivery_target", "dataset_version__dataset", "created_by"
    )
    if target is not None:
        pushes = pushes.filter(delivery_target=target)
    return pushes.order_by("-id")


def delivery_target_list(*, project: Project) -> QuerySet[DeliveryTarget]:
    return DeliveryTarget.objects.filter(project=project).order_by("id")
