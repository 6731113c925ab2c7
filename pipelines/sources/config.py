"""A source's settings and column mapping, validated per kind (msgspec Structs, reviewapp.typed_input)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar

import msgspec

from pipelines.models import SourceKind
from reviewapp.errors import FieldError
from reviewapp.typed_input import TypedInput, field_error, says, struct_errors

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Column = Annotated[str, msgspec.Meta(min_length=1, max_length=200), says("A column name is text.")]


class SettingsIn(TypedInput, kw_only=True):
    unknown_message: ClassVar[str] = "Unknown setting for this kind of source."


class MlflowTracesSettings(SettingsIn, kw_only=True):
    experiment: Annotated[Name, says("Name the MLflow experiment (its name or id).")]
    filter: Annotated[str, msgspec.Meta(max_length=2000)] = ""  # MLflow trace search syntax
    since: datetime | None = None  # first pull: traces started at or after this time


class DeltaTableSettings(SettingsIn, kw_only=True):
    uri: Annotated[Name, says("Give the Delta table's URI (a folder, s3://, abfss://, gs://).")]


class UcTableSettings(SettingsIn, kw_only=True):
    table: Annotated[
        str,
        msgspec.Meta(pattern=r"^[^.\s]+\.[^.\s]+\.[^.\s]+$"),
        says("Give the table as catalog.schema.table."),
    ]
    warehouse_id: Annotated[str, msgspec.Meta(max_length=100)] = ""
    # The column the watermark follows (a timestamp or a growing version); blank: the mapping's timestamp.
    watermark_column: Annotated[str, msgspec.Meta(max_length=200)] = ""


class RestSettings(SettingsIn, kw_only=True):
    pass


SETTINGS: dict[str, type[SettingsIn]] = {
    SourceKind.MLFLOW_TRACES: MlflowTracesSettings,
    SourceKind.DELTA_TABLE: DeltaTableSettings,
    SourceKind.UC_TABLE: UcTableSettings,
    SourceKind.REST: RestSettings,
}
TABLE_KINDS = frozenset({SourceKind.DELTA_TABLE, SourceKind.UC_TABLE})


class ColumnMapping(TypedInput, kw_only=True):
    """Item field -> the table's column (table kinds)."""

    request: Column
    response: Column
    retrieved_context: Column | None = None
    model_name: Column | None = None
    model_version: Column | None = None
    trace_id: Column | None = None
    external_id: Column | None = None  # blank: the trace id, else a hash of the content
    timestamp: Column | None = None
    feedback: Column | None = None  # an end user's feedback (thumbs down: see sampling.is_thumbs_down)
    error: Column | None = None  # truthy: the request failed
    metadata: list[Column] = msgspec.field(default_factory=list)  # columns copied into the item's metadata

    unknown_message: ClassVar[str] = "Not an item field a column can map to."


def settings_validate(kind: str, raw: Any) -> tuple[SettingsIn | None, list[FieldError]]:
    cls = SETTINGS.get(kind)
    if cls is None:
        return None, [field_error("kind", f"The kind of source is one of: {', '.join(SETTINGS)}.")]
    return struct_errors(raw if raw is not None else {}, cls, field="settings")


def mapping_validate(kind: str, raw: Any) -> tuple[ColumnMapping | None, list[FieldError]]:
    if kind not in TABLE_KINDS:
        if raw:
            return None, [field_error("column_mapping", "Only table sources map columns.")]
        return None, []
    return struct_errors(raw if raw is not None else {}, ColumnMapping, field="column_mapping")


def settings_of(source: Any) -> Any:
    """The source's stored settings as its kind's Struct (they were validated when saved)."""
    return msgspec.convert(source.settings or {}, SETTINGS[source.kind], strict=False)


def mapping_of(source: Any) -> ColumnMapping:
    return msgspec.convert(source.column_mapping or {}, ColumnMapping, strict=False)
