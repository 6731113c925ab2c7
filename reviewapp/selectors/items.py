"""Items, their flags, and what the humans said about each item."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet
from django.http import Http404

from reviewapp.blind import request_key
from reviewapp.item_stats import ItemAnswers
from reviewapp.models import Assignment, CuratedLabel, Item, Project, Review
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


def item_model_version_list(*, project: Project) -> list[str]:
    """The model versions the project's items were answered by, sorted (blank ones left out)."""
    versions = Item.objects.filter(project=project).order_by("model_version").values_list("model_version", flat=True)
    return [v for v in versions.distinct() if v]


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


def item_answers_for(*, project: Project, model_version: str, with_request_keys: bool = False) -> list[ItemAnswers]:
    """The humans' answers on each of the project's items answered by ``model_version``.

    Items with a current review or a curated label; three queries (reviews, labels, and the
    requests when ``with_request_keys``). Reviews a curator sent back do not count.
    """
    by_id: dict[int, ItemAnswers] = {}
    rows = Review.objects.filter(
        project=project, returned_at__isnull=True, item__model_version=model_version
    ).values_list("item_id", "answers")
    for item_id, answers in rows.iterator(chunk_size=5000):
        entry = by_id.setdefault(item_id, ItemAnswers(item_id=item_id, reviews=[]))
        entry.reviews.append(answers or {})  # type: ignore[union-attr]
    labels = CuratedLabel.objects.filter(project=project, item__model_version=model_version)
    for item_id, answers in labels.values_list("item_id", "answers").iterator(chunk_size=5000):
        entry = by_id.setdefault(item_id, ItemAnswers(item_id=item_id, reviews=[]))
        entry.curated = answers or {}
    for entry in by_id.values():
        entry.complete = entry.curated is not None or len(entry.reviews or []) >= project.reviews_per_item
    if with_request_keys and by_id:
        ids = list(by_id)
        for start in range(0, len(ids), 5000):
            chunk = ids[start : start + 5000]
            for item_id, request in Item.objects.filter(pk__in=chunk).values_list("id", "request"):
                by_id[item_id].request_key = request_key(request)
    return sorted(by_id.values(), key=lambda e: e.item_id)
