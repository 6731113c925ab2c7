"""Rows of a source table (a Delta table, a Unity Catalog table) as items: the column mapping and the values.

Shared by the two table readers (``delta.delta_table_read``, ``databricks.uc_table_read``). A mapping
names, for each item field, the table column that holds it; ``metadata_columns`` are copied into the
row's ``metadata`` under their own names. Values are turned into the shapes items take:

- ``request``: text, or chat messages ``{"messages": [...]}`` (a JSON string holding such an object is
  parsed; any other JSON or struct is kept as JSON text);
- ``response``: text; an OpenAI-style chat completion (``choices[0].message.content``, as serving
  endpoints' inference tables log it) gives its content, other structs become JSON text;
- ``retrieved_context``: a list of ``{"content", "doc_uri"}`` from a JSON string or a list of
  structs/strings (``page_content``/``text`` and ``uri``/``url``/``source`` are accepted too);
- ``timestamp``: an aware datetime (naive values are UTC; numbers are epoch seconds, milliseconds or
  microseconds by magnitude; strings ISO 8601);
- ``model_version``, ``model_name``, ``trace_id``, ``external_id``: text.
A value that cannot be converted becomes ``None`` (``[]`` for the context) rather than failing the
read: one odd row must not stop a source; the ingest's validation reports it with its reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict, cast

import msgspec

from pipelines.adapters.errors import PermanentPipelineError

# The item fields a table column can fill, in the order rows carry them.
TARGET_FIELDS = (
    "request",
    "response",
    "retrieved_context",
    "model_version",
    "model_name",
    "trace_id",
    "external_id",
    "timestamp",
)
REQUIRED_FIELDS = ("request",)
TEXT_FIELDS = ("model_version", "model_name", "trace_id", "external_id")
MAX_COLUMN_NAME = 255
# Column names as Delta and Unity Catalog allow them, minus control characters and backticks (which
# would need escaping in SQL identifiers: refused instead of escaped).
COLUMN_NAME = re.compile(r"[^\x00-\x1f`]{1,255}")


def column_name_check(column: Any, *, system: str) -> None:
    """PermanentPipelineError unless ``column`` is a usable column name (no backtick, no control character)."""
    if not isinstance(column, str) or not COLUMN_NAME.fullmatch(column):
        raise PermanentPipelineError(f"column mapping: invalid column name {column!r}", system=system)


@dataclass(frozen=True)
class TableBatch:
    """One batch of a table read: the rows (item-shaped dicts), the watermark to store once they are
    ingested (resuming from it reads what follows them, nothing twice), and how many table rows the
    batch covers (``scanned``: ``len(rows)`` unless the reader was told to build only some rows; an
    empty batch only moves the watermark)."""

    rows: list[dict[str, Any]]
    watermark: Any  # DeltaWatermark or UcWatermark
    scanned: int


@dataclass(frozen=True)
class ColumnMapping:
    """Item field -> source column (``request`` required), plus columns copied into ``metadata``."""

    fields: dict[str, str]
    metadata: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def build(cls, mapping: Mapping[str, str], metadata_columns: Sequence[str] = (), *, system: str) -> ColumnMapping:
        """A checked mapping; PermanentPipelineError naming the first bad entry."""
        unknown = [k for k in mapping if k not in TARGET_FIELDS]
        if unknown:
            raise PermanentPipelineError(
                f"column mapping: unknown field {unknown[0]!r} (fields: {', '.join(TARGET_FIELDS)})", system=system
            )
        fields = {k: mapping[k] for k in TARGET_FIELDS if mapping.get(k)}
        for required in REQUIRED_FIELDS:
            if required not in fields:
                raise PermanentPipelineError(f"column mapping: map {required!r} to a column", system=system)
        for column in [*fields.values(), *metadata_columns]:
            column_name_check(column, system=system)
        return cls(fields=fields, metadata=tuple(dict.fromkeys(metadata_columns)))

    @property
    def columns(self) -> list[str]:
        """The source columns to read, each once, in a stable order."""
        return list(dict.fromkeys([*self.fields.values(), *self.metadata]))

    def check(self, available: Sequence[str], *, table: str, system: str) -> None:
        """PermanentPipelineError naming the first mapped column the table does not have."""
        have = set(available)
        for target, column in [*self.fields.items(), *(("metadata", c) for c in self.metadata)]:
            if column not in have:
                raise PermanentPipelineError(
                    f"table {table} has no column {column!r} (mapped to {target}); "
                    f"its columns: {', '.join(sorted(have))[:500]}",
                    system=system,
                )

    def rows(self, columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
        """Item-shaped rows from column-wise values (every list the same length).

        The hot loop of a table scan: values already in their final shape (plain text, an aware
        datetime, a JSON scalar) skip the converters."""
        keys = [*self.fields, "metadata"]
        converted: list[list[Any]] = []
        for target, column in self.fields.items():
            values, convert = columns[column], CONVERTERS[target]
            if target in TEXT_FIELDS:
                converted.append([v if type(v) is str else str(v) if type(v) is int else convert(v) for v in values])
            elif target in ("request", "response"):
                converted.append([v if type(v) is str and v[:1] not in JSONISH else convert(v) for v in values])
            elif target == "timestamp":
                converted.append([v if type(v) is datetime and v.tzinfo is not None else convert(v) for v in values])
            else:
                converted.append([convert(v) for v in values])
        if self.metadata:
            names = self.metadata
            converted.append(
                [
                    {c: v if type(v) in _SCALARS else json_value(v) for c, v in zip(names, values, strict=True)}
                    for values in zip(*(columns[c] for c in names), strict=True)
                ]
            )
        else:
            n = len(converted[0]) if converted else 0
            converted.append([{} for _ in range(n)])
        return [dict(zip(keys, values, strict=True)) for values in zip(*converted, strict=True)]


# First characters of text that may hold JSON; "" (the slice of an empty string) goes to the converter.
JSONISH = frozenset({"", "{", "[", " ", "\t", "\r", "\n"})
_SCALARS = frozenset({str, int, float, bool, type(None)})


# --- values -------------------------------------------------------------------------------------


_decode_json = msgspec.json.decode  # several times faster than json.loads; rows are parsed one by one


def _maybe_json(value: str) -> Any:
    text = value.strip()
    if not text or text[0] not in "[{":
        return None
    try:
        return _decode_json(text)
    except msgspec.DecodeError:
        return None


def json_value(value: Any) -> Any:
    """A value fit for JSON (metadata): datetimes as ISO text, bytes as text, containers walked."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if value and all(isinstance(p, tuple) and len(p) == 2 for p in value):  # an Arrow map: (key, value) pairs
            return {str(k): json_value(v) for k, v in value}
        return [json_value(v) for v in value]
    return str(value)


def _json_text(value: Any) -> str:
    return json.dumps(json_value(value), sort_keys=True, ensure_ascii=False)


def to_request(value: Any) -> Any:
    """Text, or ``{"messages": [...]}`` for a chat request; None when absent."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        parsed = _maybe_json(value)
        if isinstance(parsed, dict) and isinstance(parsed.get("messages"), list):
            return {"messages": parsed["messages"]}
        return value
    if isinstance(value, Mapping) and isinstance(value.get("messages"), list):
        return {"messages": json_value(value["messages"])}
    return _json_text(value)


def to_response(value: Any) -> str | None:
    """Text; the content of a chat completion's first choice; other structs as JSON text."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    parsed = _maybe_json(value) if isinstance(value, str) else value
    if isinstance(parsed, Mapping):
        choices = parsed.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
            message = choices[0].get("message")
            content = message.get("content") if isinstance(message, Mapping) else None
            if isinstance(content, str):
                return content
    if isinstance(value, str):
        return value
    return _json_text(value)


CONTENT_KEYS = ("content", "page_content", "text", "chunk_text")
URI_KEYS = ("doc_uri", "uri", "url", "source")


def _chunk(chunk: Any) -> dict[str, str] | None:
    if type(chunk) is dict:  # the usual shape already: {"content": str, "doc_uri": str}
        content, uri = chunk.get("content"), chunk.get("doc_uri")
        if type(content) is str and type(uri) is str:
            return {"content": content, "doc_uri": uri}
    if isinstance(chunk, str):
        return {"content": chunk, "doc_uri": ""}
    if not isinstance(chunk, dict | Mapping):
        return None
    content = chunk.get("content")
    if content is None:
        content = next((chunk[k] for k in CONTENT_KEYS if chunk.get(k) is not None), "")
    uri = chunk.get("doc_uri")
    if uri is None:
        uri = next((chunk[k] for k in URI_KEYS if chunk.get(k) is not None), "")
    return {
        "content": content if isinstance(content, str) else _json_text(content),
        "doc_uri": uri if isinstance(uri, str) else str(uri),
    }


class _Chunk(TypedDict):
    content: str
    doc_uri: str


# JSON text already in the item shape decodes, checked, in one C call (other keys are dropped).
_decode_chunks = msgspec.json.Decoder(list[_Chunk]).decode


def to_context(value: Any) -> list[dict[str, str]]:
    """Retrieved chunks as ``[{"content", "doc_uri"}]``; ``[]`` when absent or not a list."""
    if value is None:
        return []
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            return cast(list[dict[str, str]], _decode_chunks(value))
        except msgspec.DecodeError:  # another shape, or not JSON: the general path below
            pass
        parsed = _maybe_json(value)
        value = parsed if parsed is not None else [value]
    if isinstance(value, dict | Mapping):  # {"chunks": [...]} or a single chunk
        inner = next((value[k] for k in ("chunks", "documents", "retrieved_context") if k in value), None)
        value = inner if isinstance(inner, list) else [value]
    if not isinstance(value, list | tuple):
        return []
    return [c for c in map(_chunk, value) if c is not None]


def to_timestamp(value: Any) -> datetime | None:
    """An aware datetime (UTC when the value has no zone); None when it cannot be read."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        seconds = float(value)
        if abs(seconds) >= 1e14:  # microseconds
            seconds /= 1e6
        elif abs(seconds) >= 1e11:  # milliseconds (timestamp_ms of inference tables)
            seconds /= 1e3
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return to_timestamp(float(text))
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return None


def to_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return _json_text(value)


CONVERTERS: dict[str, Any] = {
    "request": to_request,
    "response": to_response,
    "retrieved_context": to_context,
    "timestamp": to_timestamp,
    **dict.fromkeys(TEXT_FIELDS, to_text),
}
