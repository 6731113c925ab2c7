"""Items, their flags, what the humans said about each item, and which items a query matches."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec
from django.db import connections
from django.db.models import BooleanField, Exists, F, Func, OuterRef, Q, QuerySet, Value
from django.http import Http404

from reviewapp.blind import request_key
from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.item_stats import ItemAnswers
from reviewapp.models import Assignment, CuratedLabel, Item, Project, Review
from reviewapp.models.flags import Flag
from reviewapp.models.gold import GoldAnswer
from reviewapp.permissions import Capability, role_allows
from reviewapp.selectors.projects import role_for
from reviewapp.typed_input import field_error

if TYPE_CHECKING:
    from reviewapp.usertypes import AnyUser


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
    return Flag.objects.filter(project=project).select_related("item", "created_by", "resolved_by").order_by("-id")


def flag_get(*, project: Project, pk: int) -> Flag:
    """One flag of the project (the caller checked CURATE); 404 otherwise."""
    flag = flag_list(project=project).filter(pk=pk).first()
    if flag is None:
        raise Http404("No such flag in this project.")
    return flag


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


# --- which items: the one item query ------------------------------------------------------------
# Bulk assignment (reviewapp), evaluation runs (evaluations), datasets and live export (pipelines)
# each accept their own public parameter names and parse them into one ItemQuery; items_matching
# is the only code that turns it into SQL.

METADATA_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")
METADATA_KEY_MESSAGE = "Use letters, digits, '-' or '_' in metadata keys."

ItemFilterFn = Callable[[QuerySet[Item], Any], QuerySet[Item]]
# Filters contributed by other apps, by name. Extension point: evaluations may register e.g.
# "judge_score_below" from its AppConfig.ready(), so reviewapp's core never imports evaluations
# (docs/architecture.md: arrows point one way). Each function narrows the queryset by its value and
# raises ValidationFailed for a bad value.
ITEM_FILTERS: dict[str, ItemFilterFn] = {}


def item_filter_register(*, name: str, apply: ItemFilterFn) -> None:
    """Make ``name`` usable in ``ItemQuery.extra`` (bulk assignment by filter, API and UI)."""
    ITEM_FILTERS[name] = apply


class ItemQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Which items of a project an operation applies to; every given field must match."""

    ids: tuple[int, ...] | None = None
    model_version: str | None = None
    source: str | None = None
    metadata: dict[str, Any] = {}  # key -> value, exact match on each
    tags: tuple[str, ...] = ()  # the item's metadata["tags"] holds every one
    created_from: datetime | None = None  # inclusive
    created_to: datetime | None = None  # exclusive
    gold: bool | None = None  # True: gold items only; False: none
    curated_only: bool = False  # items with a curated label
    method: str | None = None  # of the curated label ("consensus" / "adjudicated")
    answers: dict[str, list[Any]] = {}  # question key -> accepted final answers (any of)
    extra: dict[str, Any] = {}  # registered filters: ITEM_FILTERS

    def describe(self) -> dict[str, Any]:
        """JSON-friendly, for the audit log: the given fields only."""
        data: dict[str, Any] = {}
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if value in (None, {}, ()) or (name == "curated_only" and not value):
                continue
            data[name] = value.isoformat() if isinstance(value, datetime) else value
        for name in ("ids", "tags"):
            if name in data:
                data[name] = list(data[name])
        return data

    def narrows_items(self) -> bool:
        """Whether a field about the item itself is given (not only about its curated label)."""
        return bool(set(self.describe()) - {"curated_only", "method", "answers"})


def item_query_errors(query: ItemQuery, *, field: str = "filter") -> list[FieldError]:
    """What the query asks that cannot be asked (bad metadata keys, unregistered filters), under ``field``."""
    errors: list[FieldError] = []
    for key in query.metadata:
        if not METADATA_KEY.match(key) or "__" in key:
            errors.append(field_error(f"{field}.metadata.{key}", METADATA_KEY_MESSAGE))
    for name in query.extra:
        if name not in ITEM_FILTERS:
            known = ", ".join(sorted(ITEM_FILTERS)) or "none yet"
            errors.append(field_error(f"{field}.extra.{name}", f"Unknown filter (registered: {known})."))
    return errors


def curated_label_q(query: ItemQuery, *, through: str = "curated_label__") -> Q:
    """The query's conditions on the curated label, seen from an item (or, ``through=""``, from the label)."""
    condition = Q()
    if query.curated_only and through:
        condition &= Q(**{f"{through}isnull": False})
    if query.method:
        condition &= Q(**{f"{through}method": query.method})
    for key, values in query.answers.items():
        accepted = Q()
        for value in values:
            accepted |= Q(**{f"{through}answers__{key}": value})
        condition &= accepted
    return condition


def items_matching(*, project: Project, query: ItemQuery) -> QuerySet[Item]:
    """The project's items that match ``query``; ValidationFailed names a bad field (``filter.*``)."""
    errors = item_query_errors(query)
    if errors:
        raise ValidationFailed(errors, "The filter is not valid.")
    items = Item.objects.filter(project=project)
    if query.ids is not None:
        items = items.filter(pk__in=list(query.ids))
    if query.model_version is not None:
        items = items.filter(model_version=query.model_version)
    if query.source is not None:
        items = items.filter(source=query.source)
    for key, value in query.metadata.items():
        items = items.filter(**{f"metadata__{key}": value})
    if query.tags:
        items = _with_tags(items, list(query.tags))
    if query.created_from is not None:
        items = items.filter(created_at__gte=query.created_from)
    if query.created_to is not None:
        items = items.filter(created_at__lt=query.created_to)
    if query.gold is not None:
        gold = Exists(GoldAnswer.objects.filter(item_id=OuterRef("pk")))
        items = items.filter(gold) if query.gold else items.exclude(gold)
    label = curated_label_q(query)
    if label:
        items = items.filter(label)
    for name, value in query.extra.items():
        items = ITEM_FILTERS[name](items, value)
    return items


class _JsonArrayHolds(Func):
    """SQLite: the JSON array at ``path`` in a JSON column holds ``value`` (its ``json_each``). Django's
    ``contains`` lookup on a JSONField is PostgreSQL-only; compiled through the ORM, so the column
    keeps its alias inside subqueries."""

    output_field = BooleanField()

    def __init__(self, column: str, path: str, value: str) -> None:
        super().__init__(F(column), Value(path), Value(value))

    def as_sql(self, compiler: Any, connection: Any, **extra_context: Any) -> tuple[str, list[Any]]:  # type: ignore[override]  # compiled by hand: no function, template or joiner to pass
        parts, params = [], []
        for expression in self.get_source_expressions():
            sql, sql_params = compiler.compile(expression)
            parts.append(sql)
            params.extend(sql_params)
        column, path, value = parts
        # Every part is compiled SQL with its values in params: nothing from the caller is inlined.
        return f"EXISTS (SELECT 1 FROM json_each({column}, {path}) WHERE json_each.value = {value})", params  # noqa: S608


def _with_tags(items: QuerySet[Item], tags: list[str]) -> QuerySet[Item]:
    """Items whose ``metadata["tags"]`` holds every tag: JSONB containment on PostgreSQL (indexable),
    one ``json_each`` test per tag on the embedded SQLite."""
    if connections[items.db].vendor == "postgresql":
        return items.filter(metadata__tags__contains=tags)
    for tag in tags:
        items = items.filter(_JsonArrayHolds("metadata", "$.tags", tag))
    return items
