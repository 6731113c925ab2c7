"""Items and their flags."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet
from django.http import Http404

from reviewapp.models import Assignment, Item, Project, Review
from reviewapp.models.flags import Flag
from reviewapp.permissions import Capability, role_allows
from reviewapp.selectors.projects import role_for

if TYPE_CHECKING:
    from reviewapp.selectors.projects import AnyUser


def item_get_for_user(*, user: AnyUser, project: Project, pk: int) -> Item:
    item = Item.objects.filter(project=project, pk=pk).first()
    if item is None:
        raise Http404("No such item in this project (it may have been removed).")
    return item


def item_list(*, project: Project) -> QuerySet[Item]:
    return Item.objects.filter(project=project).order_by("id")


def flaggable_item_get_for_user(*, user: AnyUser, project: Project, pk: int) -> Item:
    """An item the user may flag: one they hold a lease on or reviewed, or any item for a curator.

    Anything else is a 404, so a reviewer cannot probe which items exist in the queue.
    """
    item = Item.objects.filter(project=project, pk=pk).first()
    if item is not None:
        if role_allows(role_for(user=user, project=project), Capability.CURATE):
            return item
        holds = Assignment.objects.filter(item=item, reviewer=user.pk).exists()
        if holds or Review.objects.filter(item=item, reviewer=user.pk).exists():
            return item
    raise Http404("No such item among the ones you hold or reviewed.")


def flag_list(*, project: Project) -> QuerySet[Flag]:
    return Flag.objects.filter(project=project).select_related("item", "created_by").order_by("-id")
