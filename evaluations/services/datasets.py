"""What a run evaluates: a filter over a project's items, and how an item becomes a scorer row.

A dataset is ``{"model_version": "2", "source": "demo", "metadata": {"channel": "chat"},
"ids": [1, 2], "curated_only": true, "limit": 500}`` — every key optional, every given key must
match (an empty dataset is every item of the project). ``run_start`` snapshots the matching ids,
so items added later never join a run.

Expectations come from the item's curated label (``CuratedLabel.expected_response`` /
``expected_facts``) and, for items ingested with them, from ``metadata.expected_response`` /
``metadata.expected_facts``; the curated label wins. The label's answers go to ``ScoreInput.human``
for retrieval scorers and judge-human alignment.

A run can also be over a **curated dataset version** (pipelines' DatasetVersion). evaluations never
imports pipelines, so a face resolves the version into a :class:`VersionSnapshot` — plain data: the
version's identity, its item ids in row order and, per item, the expectations and human answers it
snapshotted (:func:`version_expectations_validate` says the shape) — and hands it to ``run_start``.
Scorers and alignment then use the snapshot, not the labels as they are today.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

import msgspec
from django.db.models import QuerySet

from evaluations.scorers.builtin import LABELED_CONTEXT_KEY
from evaluations.scorers.registry import ScoreInput
from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.models import CuratedLabel, Item, Project
from reviewapp.selectors.items import ItemQuery, item_query_errors, items_matching
from reviewapp.typed_input import TypedInput, field_error, says, struct_errors

DATASET_KEYS = ("model_version", "source", "metadata", "ids", "curated_only", "limit")
MAX_IDS = 100_000
Scalar = str | int | float | bool


class DatasetIn(TypedInput):
    """A run's dataset as clients write it; every key optional (``None`` or ``""`` is left out)."""

    unknown_message: ClassVar[str] = f"Unknown filter; use {', '.join(DATASET_KEYS)}."
    not_object_message: ClassVar[str] = "Give the dataset as an object of filters."

    model_version: Annotated[str | int, says("Give text.")] | None = None
    source: Annotated[str | int, says("Give text.")] | None = None
    metadata: (
        Annotated[dict[str, Any], says('Give an object of metadata keys and values, e.g. {"channel": "chat"}.')] | None
    ) = None
    ids: Annotated[list[int], says("Give a list of item ids.")] | None = None
    curated_only: Annotated[bool, says("Give true or false.")] = False
    limit: Annotated[int, msgspec.Meta(ge=1), says("Give a whole number of items, at least 1.")] | None = None


def dataset_validate(*, dataset: Any) -> dict[str, Any]:
    """The dataset with only known keys and clean values, or ValidationFailed naming each bad key."""
    if dataset in (None, ""):
        return {}
    if isinstance(dataset, dict):  # an empty value means "any"
        dataset = {k: v for k, v in dataset.items() if k not in DATASET_KEYS or v not in (None, "")}
    parsed, errors = struct_errors(dataset, DatasetIn, field="dataset")
    metadata = dataset.get("metadata") if isinstance(dataset, dict) else None
    if isinstance(metadata, dict):
        errors += item_query_errors(ItemQuery(metadata=metadata), field="dataset")
        for key, value in metadata.items():
            if not isinstance(value, Scalar) and not any(e["field"] == f"dataset.metadata.{key}" for e in errors):
                errors.append(field_error(f"dataset.metadata.{key}", "Match on text, a number or true/false."))
    if parsed is not None and parsed.ids is not None and len(parsed.ids) > MAX_IDS:
        errors.append(field_error("dataset.ids", f"At most {MAX_IDS} ids."))
    if errors or parsed is None:
        raise ValidationFailed(errors, "The dataset is not valid.")
    out: dict[str, Any] = {}
    for key in DATASET_KEYS:
        value = getattr(parsed, key)
        if key in dataset and value is not None and value is not False:
            out[key] = value
    for key in ("model_version", "source"):
        if key in out:
            out[key] = str(out[key])
    if "ids" in out:
        out["ids"] = sorted(set(out["ids"]))
    return out


def dataset_query(dataset: dict[str, Any]) -> ItemQuery:
    """A validated dataset as the one ItemQuery (``limit`` is not a filter: see dataset_items)."""
    return ItemQuery(
        ids=tuple(dataset["ids"]) if "ids" in dataset else None,
        model_version=dataset.get("model_version"),
        source=dataset.get("source"),
        metadata=dict(dataset.get("metadata") or {}),
        curated_only=bool(dataset.get("curated_only")),
    )


VERSION_INFO_KEYS = ("id", "dataset_id", "name", "number", "content_hash", "row_count")


@dataclass(frozen=True)
class VersionSnapshot:
    """A curated dataset version as a run needs it (built by the face from pipelines' selectors)."""

    project_id: int
    info: dict[str, Any]  # VERSION_INFO_KEYS: what the run records and its page shows
    item_ids: list[int]  # in the version's row order
    # item id -> {"expected_response": str | None, "expected_facts": [..] | None,
    #             "guidelines": [..] | None, "human": {question key: final answer} | None}
    expectations: dict[int, dict[str, Any]] = field(default_factory=dict)


def version_expectations_validate(expectations: dict[int, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The per-item snapshot with known keys and JSON-safe values, keyed by item id as text."""
    out: dict[str, dict[str, Any]] = {}
    for item_id, given in expectations.items():
        given = given or {}
        response = given.get("expected_response")
        facts = given.get("expected_facts")
        guidelines = given.get("guidelines")
        human = given.get("human")
        out[str(int(item_id))] = {
            "expected_response": response if isinstance(response, str) and response else None,
            "expected_facts": [str(f) for f in facts] if isinstance(facts, list) and facts else None,
            "guidelines": [str(g) for g in guidelines] if isinstance(guidelines, list) and guidelines else None,
            "human": dict(human) if isinstance(human, dict) and human else None,
        }
    return out


def dataset_items(*, project: Project, dataset: dict[str, Any]) -> QuerySet[Item]:
    """The project's items in a validated dataset, oldest first."""
    items = items_matching(project=project, query=dataset_query(dataset)).order_by("id")
    if dataset.get("limit"):
        items = items[: dataset["limit"]]
    return items


def dataset_parse(text: str) -> dict[str, Any]:
    """A dataset from the command line: ``model_version=2,source=demo,metadata.channel=chat,ids=1;2;3``."""
    out: dict[str, Any] = {}
    errors: list[FieldError] = []
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            errors.append(field_error("dataset", f"“{part}” is not key=value."))
        elif key.startswith("metadata."):
            out.setdefault("metadata", {})[key.removeprefix("metadata.")] = value
        elif key == "ids":
            try:
                out["ids"] = [int(v) for v in value.replace(";", " ").split()]
            except ValueError:
                errors.append(field_error("dataset.ids", "Give item ids separated by ';'."))
        elif key == "curated_only":
            out["curated_only"] = value.lower() in ("1", "true", "yes", "on")
        elif key == "limit":
            out["limit"] = int(value) if value.isdigit() else value
        else:
            out[key] = value
    if errors:
        raise ValidationFailed(errors, "The dataset is not valid.")
    return out


def score_input_for_item(
    item: Item,
    *,
    label: CuratedLabel | None,
    response: str | None = None,
    retrieved_context: list[dict[str, Any]] | None = None,
    latency_ms: float | None = None,
    snapshot: dict[str, Any] | None = None,
) -> ScoreInput:
    """The scorer row of an item; ``response`` etc. replace the stored ones for a generated response.

    ``snapshot`` (runs over a dataset version: the item's entry of ``RunChunk.expectations``) takes
    the place of the live curated label: its expectations and human answers are used, ``label`` is not.
    """
    metadata = dict(item.metadata or {})
    answers: dict[str, Any] | None
    if snapshot is not None:
        expected_response = snapshot.get("expected_response") or None
        expected_facts = list(snapshot["expected_facts"]) if snapshot.get("expected_facts") else None
        guidelines: Any = snapshot.get("guidelines") or metadata.get("guidelines")
        answers = snapshot.get("human")
    else:
        expected_response = label.expected_response if label is not None and label.expected_response else None
        expected_facts = list(label.expected_facts) if label is not None and label.expected_facts else None
        guidelines = metadata.get("guidelines")
        answers = (label.answers or {}) if label is not None else None
    if expected_response is None and isinstance(metadata.get("expected_response"), str):
        expected_response = metadata["expected_response"]
    if expected_facts is None and isinstance(metadata.get("expected_facts"), list):
        expected_facts = [str(f) for f in metadata["expected_facts"]]
    human = None
    if answers is not None:
        # The per-chunk labels refer to the item's stored chunks, whatever a generated response retrieved.
        human = {**answers, LABELED_CONTEXT_KEY: list(item.retrieved_context or [])}
    generated = response is not None
    if generated:
        metadata.pop("latency_ms", None)
        if latency_ms is not None:
            metadata["latency_ms"] = latency_ms
    return ScoreInput(
        request=item.request,
        response=response if generated else (item.response or ""),
        retrieved_context=list(retrieved_context or []) if generated else list(item.retrieved_context or []),
        expected_response=expected_response,
        expected_facts=expected_facts,
        guidelines=[str(g) for g in guidelines] if isinstance(guidelines, list) else None,
        human=human,
        metadata=metadata,
        item_id=item.pk,
    )
