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
from typing import Any

from django.db.models import QuerySet

from evaluations.scorers.builtin import LABELED_CONTEXT_KEY
from evaluations.scorers.registry import ScoreInput
from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.models import CuratedLabel, Item, Project
from reviewapp.services.assignments import METADATA_KEY, ItemFilter, items_matching

DATASET_KEYS = ("model_version", "source", "metadata", "ids", "curated_only", "limit")
MAX_IDS = 100_000


def _err(field: str, message: str) -> FieldError:
    return {"index": None, "field": field, "message": message}


def dataset_validate(*, dataset: Any) -> dict[str, Any]:
    """The dataset with only known keys and clean values, or ValidationFailed naming each bad key."""
    if dataset in (None, ""):
        return {}
    if not isinstance(dataset, dict):
        raise ValidationFailed([_err("dataset", "Give the dataset as an object of filters.")])
    errors: list[FieldError] = []
    out: dict[str, Any] = {}
    for key, value in dataset.items():
        field = f"dataset.{key}"
        if key not in DATASET_KEYS:
            errors.append(_err(field, f"Unknown filter; use {', '.join(DATASET_KEYS)}."))
        elif value is None or value == "":
            continue
        elif key in ("model_version", "source"):
            if isinstance(value, bool) or not isinstance(value, str | int):
                errors.append(_err(field, "Give text."))
            else:
                out[key] = str(value)
        elif key == "metadata":
            if not isinstance(value, dict):
                errors.append(_err(field, 'Give an object of metadata keys and values, e.g. {"channel": "chat"}.'))
                continue
            for meta_key, meta_value in value.items():
                if not METADATA_KEY.match(str(meta_key)) or "__" in str(meta_key):
                    errors.append(_err(f"{field}.{meta_key}", "Use letters, digits, '-' or '_' in metadata keys."))
                elif not isinstance(meta_value, str | int | float | bool):
                    errors.append(_err(f"{field}.{meta_key}", "Match on text, a number or true/false."))
            if not any(e["field"].startswith(field) for e in errors):
                out[key] = dict(value)
        elif key == "ids":
            if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                errors.append(_err(field, "Give a list of item ids."))
            elif len(value) > MAX_IDS:
                errors.append(_err(field, f"At most {MAX_IDS} ids."))
            else:
                out[key] = sorted(set(value))
        elif key == "curated_only":
            if not isinstance(value, bool):
                errors.append(_err(field, "Give true or false."))
            elif value:
                out[key] = True
        elif key == "limit":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                errors.append(_err(field, "Give a whole number of items, at least 1."))
            else:
                out[key] = value
    if errors:
        raise ValidationFailed(errors, "The dataset is not valid.")
    return out


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
    item_filter = ItemFilter(
        ids=tuple(dataset["ids"]) if "ids" in dataset else None,
        model_version=dataset.get("model_version"),
        source=dataset.get("source"),
        metadata=dict(dataset.get("metadata") or {}),
    )
    items = items_matching(project=project, item_filter=item_filter)
    if dataset.get("curated_only"):
        items = items.filter(curated_label__isnull=False)
    items = items.order_by("id")
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
            errors.append(_err("dataset", f"“{part}” is not key=value."))
        elif key.startswith("metadata."):
            out.setdefault("metadata", {})[key.removeprefix("metadata.")] = value
        elif key == "ids":
            try:
                out["ids"] = [int(v) for v in value.replace(";", " ").split()]
            except ValueError:
                errors.append(_err("dataset.ids", "Give item ids separated by ';'."))
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
