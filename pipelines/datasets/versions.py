"""Curated datasets: filters over curated labels, immutable versions, diffs, and the canonical row.

The **canonical row** (a plain dict, JSON-safe) is what a version snapshots (``DatasetRow.data``)
and what every export shape, Delta push and MLflow write is built from::

    {
      "row_id": "item-42",                 # stable per item across versions; MERGE key downstream
      "item_id": 42, "external_id": "...", "trace_id": "..." | "", "request_id": "..." | "",
      "model_version": "2", "source": "demo", "metadata": {...},
      "request": "..." | [{"role": "user", "content": "..."}, ...],
      "response": "...",
      "retrieved_context": [{"content": "...", "doc_uri": "..."}, ...],
      "expected_response": "...", "expected_facts": ["..."], "guidelines": ["..."],
      "feedback": {"<question key>": <final value>, ...},
      "provenance": {"method": "consensus" | "adjudicated", "decided_by": "<username>" | None,
                     "review_ids": [..], "reviewers": ["<username>", ..], "agreement": {...},
                     "schema_version": 3, "label_version": 1,
                     "self_adjudicated": true},    # only present when the deciding curator had reviewed it
      "item_created_at": "<ISO 8601>", "curated_at": "<ISO 8601>"
    }
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date, datetime, time
from typing import Annotated, Any, ClassVar

import msgspec
from django.db import transaction
from django.db.models import F, OuterRef, Prefetch, QuerySet, Subquery
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from pipelines.models import Dataset, DatasetRow, DatasetVersion
from reviewapp.errors import Conflict, FieldError, ValidationFailed
from reviewapp.models import CuratedLabel, Item, Project, Question, Review
from reviewapp.selectors.items import ItemQuery, curated_label_q, item_query_errors, items_matching
from reviewapp.services.audit import audit_record
from reviewapp.typed_input import TypedInput, field_error, says, struct_errors

FILTER_KEYS = ("curated_only", "answers", "model_version", "source", "created_from", "created_to", "gold")
FILTER_KEYS += ("tags", "metadata", "method")
ROW_BATCH = 2_000  # rows per bulk_create / per prefetch batch: bounded memory, few round trips
DIFF_SAMPLE = 50  # rows listed per kind in a diff (the counts are always complete)
_encode = msgspec.json.Encoder(order="sorted").encode  # canonical JSON: sorted keys, no spaces


class Unchanged(Conflict):
    """A new version would hold exactly the rows of the latest one."""

    code = "unchanged"


# --- filters -----------------------------------------------------------------------------------


NonEmptyText = Annotated[str, msgspec.Meta(min_length=1)]
Scalar = str | int | float | bool | None
DATE_MESSAGE = "Give an ISO 8601 date or datetime, e.g. 2026-01-31."
CURATED_ONLY_MESSAGE = "Datasets hold curated labels only; leave it out or set it to true."


class DatasetFilterIn(TypedInput):
    """A dataset's filter as clients write it (see dataset_filter_validate); every key optional."""

    unknown_message: ClassVar[str] = f"Unknown filter key (known: {', '.join(FILTER_KEYS)})."
    not_object_message: ClassVar[str] = "Give an object."

    curated_only: Annotated[bool, says(CURATED_ONLY_MESSAGE)] | msgspec.UnsetType = msgspec.UNSET
    answers: (
        Annotated[
            dict[str, Any], msgspec.Meta(min_length=1), says("Give an object of question keys and accepted values.")
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    model_version: Annotated[NonEmptyText | int, says("Give a non-empty text.")] | msgspec.UnsetType = msgspec.UNSET
    source: Annotated[NonEmptyText | int, says("Give a non-empty text.")] | msgspec.UnsetType = msgspec.UNSET
    created_from: Annotated[str, says(DATE_MESSAGE)] | msgspec.UnsetType = msgspec.UNSET
    created_to: Annotated[str, says(DATE_MESSAGE)] | msgspec.UnsetType = msgspec.UNSET
    gold: Annotated[bool, says("Give true or false.")] | msgspec.UnsetType = msgspec.UNSET
    tags: (
        Annotated[
            NonEmptyText | Annotated[list[NonEmptyText], msgspec.Meta(min_length=1)],
            says("Give a tag or a list of tags (texts)."),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    metadata: (
        Annotated[dict[str, Scalar], says("Give an object of metadata keys and plain values.")] | msgspec.UnsetType
    ) = msgspec.UNSET
    method: Annotated[str, says(f"Give one of: {', '.join(CuratedLabel.Method.values)}.")] | msgspec.UnsetType = (
        msgspec.UNSET
    )


def _date_value(value: str) -> str | None:
    """An ISO date or datetime, as the ISO text stored in the filter; None if it is neither."""
    try:  # a plain date stays a date (parse_datetime would read it as midnight)
        parsed: date | datetime | None = parse_date(value) or parse_datetime(value)
    except ValueError:
        return None
    return parsed.isoformat() if parsed is not None else None


def _as_datetime(text: str) -> datetime:
    day = parse_date(text) if len(text) == 10 else None
    # A plain date: its midnight in the current time zone.
    parsed = datetime.combine(day, time.min) if day is not None else parse_datetime(text)
    assert parsed is not None  # validated by _date_value
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


def dataset_filter_validate(*, project: Project, filter: Any) -> dict[str, Any]:
    """The filter in its stored form (JSON-safe, only given keys), or ValidationFailed naming ``filter.<key>``.

    Keys: ``curated_only`` (must be true: datasets hold curated labels only), ``answers``
    ({question key: value or [values]}, e.g. {"correct": true} — "pass"/"fail" are accepted for
    pass/fail questions), ``model_version``, ``source``, ``created_from`` / ``created_to`` (item
    creation, ISO date or datetime; from inclusive, to exclusive), ``gold`` (true: only gold items,
    false: none), ``tags`` (strings the item's ``metadata["tags"]`` must all contain), ``metadata``
    ({key: value}, exact match), ``method`` ("consensus" / "adjudicated").
    """
    if filter is None:
        filter = {}
    parsed, errors = struct_errors(filter, DatasetFilterIn, field="filter")
    if parsed is None:
        raise ValidationFailed(errors, "The filter is not valid.")
    given = {key: getattr(parsed, key) for key in filter if key in FILTER_KEYS}
    out: dict[str, Any] = {}
    for key, value in given.items():
        if value is msgspec.UNSET:  # refused above
            continue
        if key == "curated_only" and value is not True:
            errors.append(field_error("filter.curated_only", CURATED_ONLY_MESSAGE))
        elif key in ("model_version", "source"):
            out[key] = str(value)
        elif key in ("created_from", "created_to"):
            text = _date_value(value)
            if text is None:
                errors.append(field_error(f"filter.{key}", DATE_MESSAGE))
            else:
                out[key] = text
        elif key == "method" and value not in CuratedLabel.Method.values:
            errors.append(field_error("filter.method", f"Give one of: {', '.join(CuratedLabel.Method.values)}."))
        elif key == "tags":
            out[key] = [value] if isinstance(value, str) else value
        elif key == "metadata":
            problems = item_query_errors(ItemQuery(metadata=value))  # the same key rules as bulk assignment
            errors.extend(problems)
            if not problems:
                out[key] = value
        elif key == "answers":
            answers, answer_errors = _answers_filter(project=project, value=value)
            errors.extend(answer_errors)
            if answers:
                out[key] = answers
        elif key != "curated_only":
            out[key] = value
    if "created_from" in out and "created_to" in out:
        if _as_datetime(out["created_from"]) >= _as_datetime(out["created_to"]):
            errors.append(field_error("filter.created_to", "Must be after created_from."))
    if errors:
        raise ValidationFailed(errors, "The filter is not valid.")
    return {"curated_only": True, **out}


def _answers_filter(*, project: Project, value: dict[str, Any]) -> tuple[dict[str, list[Any]], list[FieldError]]:
    kinds = dict(Question.objects.filter(project=project).values_list("key", "kind"))
    out: dict[str, list[Any]] = {}
    errors: list[FieldError] = []
    for key, accepted in value.items():
        name = f"filter.answers.{key}"
        if key not in kinds:
            errors.append(field_error(name, "No such question in this project."))
            continue
        values = accepted if isinstance(accepted, list) else [accepted]
        if not values or not all(isinstance(v, Scalar) for v in values):
            errors.append(field_error(name, "Give a value or a list of values."))
            continue
        if kinds[key] == Question.Kind.PASS_FAIL:
            words = {"pass": True, "fail": False}
            values = [words.get(v, v) if isinstance(v, str) else v for v in values]
            if not all(isinstance(v, bool) for v in values):
                errors.append(field_error(name, 'Give true / false (or "pass" / "fail").'))
                continue
        out[key] = values
    return out, errors


def dataset_filter_query(filter: dict[str, Any]) -> ItemQuery:
    """A validated (stored) filter as the one ItemQuery."""
    return ItemQuery(
        model_version=filter.get("model_version"),
        source=filter.get("source"),
        metadata=filter.get("metadata") or {},
        tags=tuple(filter.get("tags") or ()),
        created_from=_as_datetime(filter["created_from"]) if filter.get("created_from") else None,
        created_to=_as_datetime(filter["created_to"]) if filter.get("created_to") else None,
        gold=filter.get("gold"),
        curated_only=True,
        method=filter.get("method") or None,
        answers=filter.get("answers") or {},
    )


def curated_labels_matching(*, project: Project, filter: dict[str, Any]) -> QuerySet[CuratedLabel]:
    """The project's curated labels matching a *validated* filter, in stable order (by item id)."""
    query = dataset_filter_query(filter)
    labels = CuratedLabel.objects.filter(project=project)
    if query.narrows_items():
        labels = labels.filter(item__in=items_matching(project=project, query=query))
    else:  # conditions on the label alone: no subquery over items
        labels = labels.filter(curated_label_q(query, through=""))
    return labels.order_by("item_id")


# --- the canonical row -------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _guidelines(item: Item) -> list[str]:
    """Per-row rules for judges: the item's ``metadata["guidelines"]`` (text or list of texts).

    The project's reviewer guidelines are instructions for people, not rules the answer must
    follow, so they are not copied into every row.
    """
    value = (item.metadata or {}).get("guidelines") if isinstance(item.metadata, dict) else None
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [str(v) for v in value if str(v).strip()]
    return []


def _request(value: Any) -> Any:
    """A chat request ``{"messages": [...]}`` becomes its message list; text stays text."""
    if isinstance(value, dict):
        return list(value.get("messages") or [])
    return value if isinstance(value, str) else str(value)


def _agreement_summary(agreement: dict[str, Any]) -> dict[str, Any]:
    questions = agreement.get("questions") or {}
    return {
        "agreed": agreement.get("agreed"),
        "questions": {
            key: {"agreed": q.get("agreed"), "pairwise_agreement": q.get("pairwise_agreement")}
            for key, q in questions.items()
            if isinstance(q, dict)
        },
    }


def canonical_row(label: CuratedLabel, *, question_order: dict[str, int] | None = None) -> dict[str, Any]:
    """The canonical row of one curated label (module docstring). Uses ``label.item``,
    ``label.decided_by`` and ``label.reviews`` (with reviewers): select/prefetch them in bulk."""
    item = label.item
    order = question_order or {}
    answers = label.answers if isinstance(label.answers, dict) else {}
    feedback = {k: answers[k] for k in sorted(answers, key=lambda k: (order.get(k, len(order)), k))}
    reviews = sorted(label.reviews.all(), key=lambda r: r.pk)
    return {
        "row_id": f"item-{item.pk}",
        "item_id": item.pk,
        "external_id": item.external_id,
        "trace_id": item.trace_id or "",
        "request_id": item.external_id,
        "model_version": item.model_version or "",
        "source": item.source or "",
        "metadata": item.metadata if isinstance(item.metadata, dict) else {},
        "request": _request(item.request),
        "response": item.response or "",
        "retrieved_context": [
            {"content": str(c.get("content", "")), "doc_uri": str(c.get("doc_uri", ""))}
            for c in (item.retrieved_context or [])
            if isinstance(c, dict)
        ],
        "expected_response": label.expected_response or "",
        "expected_facts": [str(f) for f in (label.expected_facts or [])],
        "guidelines": _guidelines(item),
        "feedback": feedback,
        "provenance": {
            "method": label.method,
            "decided_by": label.decided_by.get_username() if label.decided_by_id else None,
            "review_ids": [r.pk for r in reviews],
            "reviewers": [r.reviewer.get_username() for r in reviews],
            "agreement": _agreement_summary(label.agreement or {}),
            "schema_version": label.schema_version,
            "label_version": label.version,
            # Only when set, so rows of ordinary labels keep their content hash.
            **({"self_adjudicated": True} if label.self_adjudicated else {}),
        },
        "item_created_at": _iso(item.created_at),
        "curated_at": _iso(label.updated_at),
    }


def row_hash(row: dict[str, Any]) -> str:
    """sha256 of the row's canonical JSON (sorted keys, compact)."""
    return hashlib.sha256(_encode(row)).hexdigest()


def question_order(*, project: Project) -> dict[str, int]:
    keys = Question.objects.filter(project=project).order_by("order", "id").values_list("key", flat=True)
    return {key: i for i, key in enumerate(keys)}


def curated_rows(
    *,
    project: Project,
    filter: dict[str, Any] | None = None,
    since: datetime | None = None,
    batch_size: int = ROW_BATCH,
) -> Iterator[dict[str, Any]]:
    """The live canonical rows matching a validated filter, by item id, in constant memory.

    A server-side cursor (PostgreSQL) reads ``batch_size`` labels at a time, and each batch's reviews
    and reviewers are fetched in one query. ``since``: only labels updated after it (the continuous
    Delta / Unity Catalog feed).
    """
    labels = curated_labels_matching(project=project, filter=filter or {"curated_only": True})
    if since is not None:
        labels = labels.filter(updated_at__gt=since)
    labels = labels.select_related("item", "decided_by").prefetch_related(
        Prefetch("reviews", queryset=Review.objects.select_related("reviewer").only("id", "reviewer__username"))
    )
    order = question_order(project=project)
    for label in labels.iterator(chunk_size=batch_size):
        yield canonical_row(label, question_order=order)


# --- datasets and versions -----------------------------------------------------------------------


def _name(value: Any) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not name or len(name) > 200:
        raise ValidationFailed([field_error("name", "Give a name of 1 to 200 characters.")])
    return name


def dataset_create(
    *,
    project: Project,
    user: Any,
    name: str,
    description: str = "",
    filter: Any = None,
) -> Dataset:
    clean_name = _name(name)
    clean_filter = dataset_filter_validate(project=project, filter=filter)
    with transaction.atomic():
        if Dataset.objects.filter(project=project, name=clean_name).exists():
            raise ValidationFailed([field_error("name", "A dataset of this project already has this name.")])
        dataset = Dataset.objects.create(
            project=project,
            name=clean_name,
            description=(description or "").strip(),
            filter=clean_filter,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        audit_record(
            actor=user,
            action="dataset.create",
            target=dataset,
            project=project,
            data={"name": clean_name, "filter": clean_filter},
        )
    return dataset


def dataset_update(
    *,
    dataset: Dataset,
    user: Any,
    name: str | None = None,
    description: str | None = None,
    filter: Any = None,
) -> Dataset:
    """Change the name, description or filter; existing versions keep the filter they were taken with."""
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = _name(name)
        clash = Dataset.objects.filter(project_id=dataset.project_id, name=changes["name"]).exclude(pk=dataset.pk)
        if clash.exists():
            raise ValidationFailed([field_error("name", "A dataset of this project already has this name.")])
    if description is not None:
        changes["description"] = str(description).strip()
    if filter is not None:
        changes["filter"] = dataset_filter_validate(project=dataset.project, filter=filter)
    if not changes:
        return dataset
    with transaction.atomic():
        for key, value in changes.items():
            setattr(dataset, key, value)
        dataset.save(update_fields=list(changes))
        audit_record(actor=user, action="dataset.update", target=dataset, project=dataset.project, data=changes)
    return dataset


def dataset_version_create(
    *, dataset: Dataset, user: Any, note: str = "", allow_unchanged: bool = False
) -> DatasetVersion:
    """Snapshot the dataset's matching curated rows as its next version, all or nothing.

    The dataset row is locked first, so two concurrent creates get consecutive numbers. When the
    rows equal the latest version's, Unchanged (HTTP 409) is raised and nothing is kept, unless
    ``allow_unchanged``.
    """
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().select_related("project").get(pk=dataset.pk)
        latest = DatasetVersion.objects.filter(dataset=locked).order_by("-number").first()
        version = DatasetVersion.objects.create(
            dataset=locked,
            number=(latest.number + 1) if latest else 1,
            filter=locked.filter,
            content_hash="",
            note=(note or "").strip(),
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        order = question_order(project=locked.project)
        digest = hashlib.sha256()
        keys: set[str] = set()
        batch: list[DatasetRow] = []
        count = 0
        for row in curated_rows(project=locked.project, filter=locked.filter):
            content_hash = row_hash(row)
            digest.update(f"{row['row_id']}:{content_hash}\n".encode())
            keys.update(row["feedback"])
            batch.append(
                DatasetRow(
                    version=version,
                    position=count,
                    row_id=row["row_id"],
                    item_id=row["item_id"],
                    content_hash=content_hash,
                    data=row,
                )
            )
            count += 1
            if len(batch) >= ROW_BATCH:
                DatasetRow.objects.bulk_create(batch)
                batch = []
        if batch:
            DatasetRow.objects.bulk_create(batch)
        version.content_hash = digest.hexdigest()
        version.row_count = count
        version.question_keys = sorted(keys, key=lambda k: (order.get(k, len(order)), k))
        if latest is not None and latest.content_hash == version.content_hash and not allow_unchanged:
            # Raising rolls the whole snapshot back.
            raise Unchanged(f"No changes since v{latest.number}: the matching curated rows are the same.")
        version.save(update_fields=["content_hash", "row_count", "question_keys"])
        audit_record(
            actor=user,
            action="dataset.version_create",
            target=version,
            project=locked.project,
            data={"dataset": locked.pk, "number": version.number, "rows": count, "hash": version.content_hash},
        )
    return version


def dataset_versions_diff(*, old: DatasetVersion, new: DatasetVersion, sample: int = DIFF_SAMPLE) -> dict[str, Any]:
    """Rows added, removed and changed from ``old`` to ``new``, by row id and content hash, in SQL.

    Counts are complete; each list holds at most ``sample`` rows (by position). A changed row says
    which top-level fields, and which feedback keys, differ.
    """
    old_rows = DatasetRow.objects.filter(version=old)
    new_rows = DatasetRow.objects.filter(version=new)
    added = new_rows.exclude(row_id__in=old_rows.values("row_id"))
    removed = old_rows.exclude(row_id__in=new_rows.values("row_id"))
    before = old_rows.filter(row_id=OuterRef("row_id"))
    changed = (
        new_rows.annotate(old_hash=Subquery(before.values("content_hash")[:1]))
        .filter(old_hash__isnull=False)
        .exclude(content_hash=F("old_hash"))
    )
    changed_sample = []
    for row in changed.order_by("position").annotate(old_data=Subquery(before.values("data")[:1]))[:sample]:
        changed_sample.append({"row_id": row.row_id, "item_id": row.item_id, **_changes(row.old_data, row.data)})
    return {
        "old": old.number,
        "new": new.number,
        "unchanged": old.content_hash == new.content_hash,
        "counts": {"added": added.count(), "removed": removed.count(), "changed": changed.count()},
        "added": list(added.order_by("position").values("row_id", "item_id")[:sample]),
        "removed": list(removed.order_by("position").values("row_id", "item_id")[:sample]),
        "changed": changed_sample,
    }


def _changes(before: Any, after: Any) -> dict[str, list[str]]:
    if isinstance(before, str):  # a subquery annotation may come back as JSON text
        before = msgspec.json.decode(before)
    before = before if isinstance(before, dict) else {}
    after = after if isinstance(after, dict) else {}
    fields = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    old_fb, new_fb = before.get("feedback") or {}, after.get("feedback") or {}
    feedback = sorted(k for k in old_fb.keys() | new_fb.keys() if old_fb.get(k) != new_fb.get(k))
    return {"fields": fields, "feedback": feedback}
