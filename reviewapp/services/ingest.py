"""Ingest of RAG outputs: validate every row first, then upsert the whole batch in one transaction.

Rows are checked with msgspec (an order of magnitude faster than DRF serializers on 10,000-row
batches) and every problem is reported as ``{"index", "field", "message"}``. A batch with any
bad row writes nothing. Re-sending a row with the same ``external_id`` updates it in place.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from reviewapp.blind import request_hash
from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.jsoninput import INT32_MAX, INT32_MIN, JsonInputError, check_value
from reviewapp.models import Assignment, Item, Project
from reviewapp.services.assignments import slots_priority_sync
from reviewapp.services.audit import audit_record
from reviewapp.services.readonly import project_check_writable
from reviewapp.signals import items_ingested
from reviewapp.typed_input import error_from, field_error

if TYPE_CHECKING:
    from reviewapp.usertypes import Actor

logger = logging.getLogger(__name__)

ShortText = Annotated[str, msgspec.Meta(max_length=200)]
Version = Annotated[str, msgspec.Meta(max_length=100)]
MAX_TEXT = 1_000_000  # 1 MB of text per field is far above any real answer


class ContextChunk(msgspec.Struct):
    content: Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
    doc_uri: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class ChatMessage(msgspec.Struct):
    role: Literal["system", "user", "assistant", "tool"]
    content: Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]


class ChatRequest(msgspec.Struct):
    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1)]


class ItemIn(msgspec.Struct, forbid_unknown_fields=True):
    request: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT)] | ChatRequest
    response: Annotated[str, msgspec.Meta(max_length=MAX_TEXT)] = ""
    retrieved_context: list[ContextChunk] = []
    external_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    request_id: ShortText | None = None  # Agent Evaluation's name for the row id
    model_name: ShortText = ""
    model_version: Version = ""
    trace_id: ShortText = ""
    source: Annotated[str, msgspec.Meta(max_length=100)] = ""
    metadata: dict[str, Any] = {}
    priority: Annotated[int, msgspec.Meta(ge=INT32_MIN, le=INT32_MAX)] = 0  # an integer column


ITEM_FIELDS = [
    "request",
    "response",
    "retrieved_context",
    "model_name",
    "model_version",
    "trace_id",
    "source",
    "metadata",
    "priority",
    "request_hash",
]


@dataclass(frozen=True)
class IngestResult:
    created: int
    updated: int

    @property
    def total(self) -> int:
        return self.created + self.updated


def external_id_for(row: ItemIn) -> str:
    """The row's id: ``external_id``, else ``request_id``, else ``trace_id``, else a content hash.

    A content hash keeps re-sending the same output idempotent even when the client has no id.
    """
    if row.external_id:
        return row.external_id
    if row.request_id:
        return row.request_id
    if row.trace_id:
        return row.trace_id
    digest = hashlib.sha256(msgspec.json.encode([row.request, row.response, row.model_version])).hexdigest()
    return f"sha256:{digest[:40]}"


def items_validate(
    rows: Iterable[Any], *, positions: Sequence[int] | None = None
) -> tuple[list[ItemIn], list[FieldError]]:
    """Check every row; returns the parsed rows and the list of errors (empty when all fit).

    Each row has at most one error. ``positions`` gives each row's number in its source (a line
    of an NDJSON body or a file) for the errors to name; by default it is the row's list index.
    """
    parsed: list[ItemIn] = []
    errors: list[FieldError] = []
    first_seen: dict[str, int] = {}
    for i, raw in enumerate(rows):
        index = positions[i] if positions is not None else i
        if not isinstance(raw, dict):
            errors.append(field_error("", "Each item must be a JSON object.", index))
            continue
        try:
            check_value(raw)  # NUL (PostgreSQL cannot store it) and nesting depth, with the field's path
            row = msgspec.convert(raw, ItemIn)
        except JsonInputError as exc:
            errors.append(error_from(exc, index=index))
            continue
        except msgspec.ValidationError as exc:
            errors.append(error_from(exc, index=index))
            continue
        if isinstance(row.request, ChatRequest) and not any(m.role == "user" for m in row.request.messages):
            errors.append(field_error("request.messages", "A chat request needs at least one user message.", index))
            continue
        ext_id = external_id_for(row)
        if ext_id in first_seen:
            errors.append(
                field_error("external_id", f"Duplicate of row {first_seen[ext_id]} in the same batch.", index)
            )
            continue
        first_seen[ext_id] = index
        parsed.append(row)
    return parsed, errors


def _item_values(row: ItemIn) -> dict[str, Any]:
    request = row.request if isinstance(row.request, str) else msgspec.to_builtins(row.request)
    return {
        "request": request,
        "response": row.response,
        "retrieved_context": [{"doc_uri": c.doc_uri, "content": c.content} for c in row.retrieved_context],
        "model_name": row.model_name,
        "model_version": row.model_version,
        "trace_id": row.trace_id,
        "source": row.source,
        "metadata": row.metadata,
        "priority": row.priority,
        "request_hash": request_hash(request),  # siblings: answers to the same request (reviewapp.blind)
    }


def items_ingest(
    *,
    project: Project,
    rows: list[Any],
    actor: Actor = None,
    source: str = "api",
    positions: Sequence[int] | None = None,
) -> IngestResult:
    """Validate and upsert a batch of items; all or nothing. Raises ValidationFailed.

    ``positions`` numbers the rows in errors (see ``items_validate``).
    """
    project_check_writable(project)
    if len(rows) > settings.INGEST_MAX_ITEMS:
        raise ValidationFailed(
            [field_error("", f"At most {settings.INGEST_MAX_ITEMS} items per request.")],
            f"Too many items ({len(rows)}); send at most {settings.INGEST_MAX_ITEMS} per request.",
        )
    if not rows:
        raise ValidationFailed([field_error("", "No items given.")], "No items given.")
    parsed, errors = items_validate(rows, positions=positions)
    if errors:
        raise ValidationFailed(errors, f"{len(errors)} of {len(rows)} items are not valid; nothing was written.")
    by_id = {external_id_for(row): row for row in parsed}
    with transaction.atomic():
        if connection.vendor == "postgresql":
            created_ids, batch_ids = _upsert_postgres(project=project, by_id=by_id)
            _slots_create_postgres(project=project, item_ids=created_ids)
        else:
            created_ids, batch_ids = _upsert_generic(project=project, by_id=by_id)
            slots_create(project=project, item_ids=created_ids)
        updated = len(batch_ids) - len(created_ids)
        if updated or any(row.priority for row in parsed):
            # Open slots carry their item's priority (queue_next orders by it without a join).
            slots_priority_sync(project=project, item_ids=batch_ids)
        result = IngestResult(created=len(created_ids), updated=updated)
        audit_record(
            actor=actor,
            action="items.ingest",
            target=project,
            project=project,
            data={"created": result.created, "updated": result.updated, "source": source},
        )
        transaction.on_commit(lambda: _send_ingested(project, batch_ids))
    return result


def _send_ingested(project: Project, item_ids: list[int]) -> None:
    for receiver, outcome in items_ingested.send_robust(sender=Project, project=project, item_ids=item_ids):
        if isinstance(outcome, Exception):
            logger.error("items_ingested receiver %r failed", receiver, exc_info=outcome)


def _upsert_generic(*, project: Project, by_id: dict[str, ItemIn]) -> tuple[list[int], list[int]]:
    """The ids of the items created, and of every item of the batch."""
    now = timezone.now()
    existing = set(
        Item.objects.filter(project=project, external_id__in=list(by_id)).values_list("external_id", flat=True)
    )
    objs = [
        Item(project=project, external_id=ext_id, created_at=now, updated_at=now, **_item_values(row))
        for ext_id, row in by_id.items()
    ]
    Item.objects.bulk_create(
        objs,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["project", "external_id"],
        update_fields=[*ITEM_FIELDS, "updated_at"],
    )
    batch = dict(Item.objects.filter(project=project, external_id__in=list(by_id)).values_list("external_id", "id"))
    created = [item_id for ext_id, item_id in batch.items() if ext_id not in existing]
    return created, list(batch.values())


_STAGE_COLUMNS = ["external_id", *ITEM_FIELDS]
_JSON_FIELDS = {"request", "retrieved_context", "metadata"}


def _upsert_postgres(*, project: Project, by_id: dict[str, ItemIn]) -> tuple[list[int], list[int]]:
    """COPY the batch into a temporary table, then one INSERT ... ON CONFLICT DO UPDATE; the ids of
    the items created, and of every item of the batch.

    About five times faster than a parameterised multi-row INSERT for 1,000 rows of a few KB;
    ``xmax = 0`` on the returned rows tells newly inserted rows from updated ones.
    """
    encode = msgspec.json.encode
    table = Item._meta.db_table
    columns = ", ".join(_STAGE_COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in [*ITEM_FIELDS, "updated_at"])
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor underneath Django's wrapper
        raw.execute(
            "CREATE TEMP TABLE IF NOT EXISTS reviewdesk_ingest_stage ("
            "external_id text, request jsonb, response text, retrieved_context jsonb, model_name text, "
            "model_version text, trace_id text, source text, metadata jsonb, priority integer, request_hash text"
            ") ON COMMIT DELETE ROWS"
        )
        with raw.copy(f"COPY reviewdesk_ingest_stage ({columns}) FROM STDIN") as copy:
            for ext_id, row in by_id.items():
                values = _item_values(row)
                copy.write_row(
                    [ext_id] + [encode(values[f]).decode() if f in _JSON_FIELDS else values[f] for f in ITEM_FIELDS]
                )
        raw.execute(
            # Identifiers come from model metadata, values are parameters.
            f"INSERT INTO {table} (project_id, {columns}, review_count, created_at, updated_at) "  # noqa: S608
            f"SELECT %s, {columns}, 0, now(), now() FROM reviewdesk_ingest_stage "
            f"ON CONFLICT (project_id, external_id) DO UPDATE SET {updates} "
            "RETURNING id, (xmax = 0)",
            [project.pk],
        )
        rows = raw.fetchall()
        raw.execute("TRUNCATE reviewdesk_ingest_stage")
    created = [item_id for item_id, inserted in rows if inserted]
    return created, [item_id for item_id, _ in rows]


def _slots_create_postgres(*, project: Project, item_ids: list[int]) -> None:
    if not item_ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Assignment._meta.db_table} (project_id, item_id, slot) "  # noqa: S608
            "SELECT %s, item_id, slot FROM unnest(%s::bigint[]) AS item_id "
            "CROSS JOIN generate_series(0, %s - 1) AS slot",
            [project.pk, item_ids, project.reviews_per_item],
        )


def slots_create(*, project: Project, item_ids: list[int]) -> None:
    """Give each new item ``reviews_per_item`` empty review slots."""
    Assignment.objects.bulk_create(
        [
            Assignment(project=project, item_id=item_id, slot=slot)
            for item_id in item_ids
            for slot in range(project.reviews_per_item)
        ],
        batch_size=2000,
    )
