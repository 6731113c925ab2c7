"""The Delta Lake adapter: the only module that imports ``deltalake``.

Two halves:

- the **row layout** (pyarrow only): canonical rows (``pipelines.datasets.versions``) become flat Arrow
  record batches with typed columns, one ``feedback_<key>`` column per question, provenance
  columns, ``content_hash``, ``dataset_version``, ``batch_id`` and ``pushed_at``. Unity Catalog
  pushes write the same layout as Parquet.
- **exactly-once MERGE** (``delta_merge_batch``): upsert keyed by ``row_id``; the commit carries an
  application transaction ``(app_id=batch_id, version=1)``, written atomically with the data, so a
  replayed batch finds ``transaction_version(batch_id)`` set and writes nothing (no commit, no
  files). Matched rows are only rewritten when their ``content_hash`` changed, so re-pushing equal
  content is a no-op too. New columns (a new question) evolve the schema (``merge_schema``).
  Rows carry the dataset they came from (``dataset_id``; null for the feed) and the key is
  ``(row_id, dataset_id)``, so datasets and the feed can share a table. A dataset version's batch
  mirrors the version: in the same commit, rows of that dataset it no longer holds are deleted
  (``when_not_matched_by_source_delete``); other datasets' rows and feed rows are never touched.

Errors become :class:`TransientPipelineError` (a concurrent commit, an object store that did not
answer) or :class:`PermanentPipelineError` (a path that cannot be created, a schema clash, wrong
credentials, a missing bucket). Storage options (credentials) come in a :class:`DeltaConfig` (the app
builds it from ``DELTA_STORAGE_OPTIONS``) and never appear in errors. Object-store requests carry
timeouts and a bounded retry budget (``DeltaConfig.timeout_seconds``, from
``DELTA_STORAGE_TIMEOUT_SECONDS``), so a store that does not answer fails the push instead of
hanging the worker. On S3, delta-rs 1.x commits with conditional puts (``If-None-Match: *``): two
writers can never both create the same log entry, so no locking provider is needed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa

from pipelines.adapters.errors import PermanentPipelineError, PipelineError, TransientPipelineError
from pipelines.adapters.table_rows import ColumnMapping, TableBatch

SYSTEM = "delta"
OBJECT_STORE_SCHEMES = ("s3://", "s3a://", "abfss://", "abfs://", "az://", "gs://")
APP_TXN_VERSION = 1  # one application transaction id per batch; its presence means "applied"
BATCH_ROWS = 5000  # rows per Arrow record batch

# Arrow type of a feedback column, by question kind. Kinds not listed (or values that do not fit)
# are stored as JSON text, so a question never breaks the table.
UTC_TS = pa.timestamp("us", tz="UTC")
FEEDBACK_TYPES: dict[str, pa.DataType] = {
    "pass_fail": pa.bool_(),
    "rating": pa.float64(),  # a median of ratings may be fractional
    "choice": pa.string(),
    "text": pa.string(),
    "expected_response": pa.string(),
    "multi_choice": pa.list_(pa.string()),
    "expected_facts": pa.list_(pa.string()),
}
JSON = pa.string()

BASE_COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("row_id", pa.string(), "Stable row key, one per item (MERGE key, with dataset_id)."),
    ("item_id", pa.int64(), "Reviewdesk item id."),
    ("external_id", pa.string(), "The item's id in the source system."),
    ("trace_id", pa.string(), "MLflow trace id of the original request, if any."),
    ("request_id", pa.string(), "Request id (Agent Evaluation)."),
    ("model_version", pa.string(), "Model version that produced the response."),
    ("source", pa.string(), "Where the item came from."),
    ("request", pa.string(), "The request: text, or chat messages as JSON."),
    ("response", pa.string(), "The model's response."),
    ("retrieved_context", JSON, 'Retrieved chunks as JSON: [{"content", "doc_uri"}, ...].'),
    ("expected_response", pa.string(), "Curated expected response."),
    ("expected_facts", pa.list_(pa.string()), "Curated expected facts."),
    ("guidelines", pa.list_(pa.string()), "Guidelines the response must follow."),
    ("metadata", JSON, "Item metadata as JSON."),
]
PROVENANCE_COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("method", pa.string(), "How the label was reached: consensus or adjudicated."),
    ("decided_by", pa.string(), "The curator who decided (adjudicated labels)."),
    ("review_ids", pa.list_(pa.int64()), "Reviews behind the label."),
    ("reviewers", pa.list_(pa.string()), "Reviewers behind the label."),
    ("agreement", JSON, "Per-question agreement as JSON."),
    ("schema_version", pa.int64(), "Question schema version of the label."),
    ("label_version", pa.int64(), "Curated label revision."),
    ("item_created_at", UTC_TS, "When the item was ingested."),
    ("curated_at", UTC_TS, "When the label was curated (last changed)."),
    ("content_hash", pa.string(), "sha256 of the canonical row; unchanged rows are not rewritten."),
    ("dataset_id", pa.int64(), "Reviewdesk dataset the row belongs to (null: live feed); part of the key."),
    ("dataset_version", pa.int64(), "Dataset version number that last changed the row (null: live feed)."),
    ("batch_id", pa.string(), "Reviewdesk push batch that last changed the row."),
    ("pushed_at", UTC_TS, "When that batch was pushed."),
]
COLUMN_COMMENTS = {name: comment for name, _, comment in BASE_COLUMNS + PROVENANCE_COLUMNS}


# --- row layout --------------------------------------------------------------------------------


def feedback_column(key: str) -> str:
    return f"feedback_{key}"


def row_schema(*, feedback_kinds: dict[str, str]) -> pa.Schema:
    """The flat layout: base columns, one ``feedback_<key>`` per question (in the given order), provenance."""
    fields = [pa.field(name, typ) for name, typ, _ in BASE_COLUMNS]
    fields += [pa.field(feedback_column(k), FEEDBACK_TYPES.get(kind, JSON)) for k, kind in feedback_kinds.items()]
    fields += [pa.field(name, typ) for name, typ, _ in PROVENANCE_COLUMNS]
    return pa.schema(fields)


_encode_json = msgspec.json.Encoder(order="sorted", enc_hook=str).encode


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return _encode_json(value).decode()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else _json(value)


def _strings(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [v if isinstance(v, str) else _json(v) or "" for v in value]


def _ts(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _feedback_value(value: Any, typ: pa.DataType) -> Any:
    if value is None:
        return None
    if typ == pa.bool_():
        return value if isinstance(value, bool) else None
    if typ == pa.float64():
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if typ == pa.list_(pa.string()):
        return _strings(value)
    return _text(value)


def flat_row(
    row: dict[str, Any],
    *,
    feedback_types: dict[str, pa.DataType],
    content_hash: str,
    dataset_version: int | None,
    batch_id: str,
    pushed_at: datetime,
    dataset_id: int | None = None,
) -> dict[str, Any]:
    """One canonical row as a dict of the flat layout's columns."""
    provenance = row.get("provenance") or {}
    feedback = row.get("feedback") or {}
    out: dict[str, Any] = {
        "row_id": str(row["row_id"]),
        "item_id": row.get("item_id"),
        "external_id": row.get("external_id") or "",
        "trace_id": row.get("trace_id") or "",
        "request_id": row.get("request_id") or "",
        "model_version": _text(row.get("model_version")) or "",
        "source": row.get("source") or "",
        "request": _text(row.get("request")),
        "response": _text(row.get("response")),
        "retrieved_context": _json(row.get("retrieved_context")),
        "expected_response": _text(row.get("expected_response")),
        "expected_facts": _strings(row.get("expected_facts")),
        "guidelines": _strings(row.get("guidelines")),
        "metadata": _json(row.get("metadata")),
        "method": provenance.get("method"),
        "decided_by": provenance.get("decided_by"),
        "review_ids": [int(r) for r in provenance.get("review_ids") or []],
        "reviewers": _strings(provenance.get("reviewers")),
        "agreement": _json(provenance.get("agreement")),
        "schema_version": provenance.get("schema_version"),
        "label_version": provenance.get("label_version"),
        "item_created_at": _ts(row.get("item_created_at")),
        "curated_at": _ts(row.get("curated_at")),
        "content_hash": content_hash,
        "dataset_id": dataset_id,
        "dataset_version": dataset_version,
        "batch_id": batch_id,
        "pushed_at": pushed_at,
    }
    for key, typ in feedback_types.items():
        out[feedback_column(key)] = _feedback_value(feedback.get(key), typ)
    return out


def record_batches(rows: Iterable[dict[str, Any]], *, schema: pa.Schema) -> pa.RecordBatchReader:
    """Flat rows (dicts) as a stream of record batches of ``BATCH_ROWS``."""

    def batches() -> Iterator[pa.RecordBatch]:
        chunk: list[dict[str, Any]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= BATCH_ROWS:
                yield pa.RecordBatch.from_pylist(chunk, schema=schema)
                chunk = []
        if chunk:
            yield pa.RecordBatch.from_pylist(chunk, schema=schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


def stage(reader: pa.RecordBatchReader, *, path: Path) -> int:
    """Write a batch stream to a local Parquet file; the number of rows.

    Rows are read from the database in the caller's thread and staged here first: deltalake pulls
    its source from its own threads, where Django's (thread-local) connection is not the caller's.
    """
    import pyarrow.parquet as pq

    rows = 0
    with pq.ParquetWriter(path, reader.schema, compression="zstd") as writer:
        for batch in reader:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def staged_reader(path: Path, *, on_batch: Callable[[int], None] | None = None) -> pa.RecordBatchReader:
    """The staged rows as a stream of record batches (constant memory)."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)

    def batches() -> Iterator[pa.RecordBatch]:
        done = 0
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            yield batch
            done += batch.num_rows
            if on_batch is not None:
                on_batch(done)

    return pa.RecordBatchReader.from_batches(parquet.schema_arrow, batches())


# --- tables ------------------------------------------------------------------------------------


def is_object_store(uri: str) -> bool:
    return uri.startswith(OBJECT_STORE_SCHEMES)


def table_uri_validate(uri: str) -> str | None:
    """Why ``uri`` cannot name a Delta table, or None (absolute local path or s3/abfss/gs URI)."""
    if not uri or len(uri) > 500:
        return "Give a Delta table URI: an absolute local path, or s3://, abfss:// or gs:// followed by a path."
    if is_object_store(uri):
        rest = uri.split("://", 1)[1]
        return None if rest.strip("/") and " " not in rest else "The object-store URI has no bucket/container path."
    if "://" in uri:
        return f"Unsupported scheme {uri.split('://', 1)[0]!r}: use a local path, s3://, abfss:// or gs://."
    if not Path(uri).is_absolute() or ".." in Path(uri).parts:
        return "A local Delta table path must be absolute and must not contain '..'."
    return None


@dataclass(frozen=True)
class DeltaConfig:
    """How to reach object stores: deltalake storage options (credentials, endpoint; left out of
    ``repr``) and the time one request, and all retries together, may take."""

    storage_options: dict[str, str] = field(default_factory=dict, repr=False, hash=False)
    timeout_seconds: int = 30

    @classmethod
    def from_settings(cls, settings: Any) -> DeltaConfig:
        return cls(
            storage_options=dict(settings.DELTA_STORAGE_OPTIONS),
            timeout_seconds=int(settings.DELTA_STORAGE_TIMEOUT_SECONDS),
        )


def _storage_options(uri: str, config: DeltaConfig) -> dict[str, str] | None:
    """deltalake storage options for ``uri``: bounded timeouts and retries, then ``config.storage_options``.

    Without them object_store waits 30 s per request and retries for up to 3 minutes, so a store that
    does not answer would hold a worker for the whole task time limit. The configured storage options
    may override each of them.
    """
    if not is_object_store(uri):
        return None
    seconds = config.timeout_seconds
    bounded = {
        "timeout": f"{seconds}s",  # one request, from connecting to the end of the body
        "connect_timeout": f"{min(seconds, 5)}s",
        "max_retries": "3",
        "retry_timeout": f"{seconds}s",  # no retry starts after this
    }
    return {**bounded, **config.storage_options}


# Storage options whose values are not secret: kept in error messages (the endpoint helps to diagnose).
PUBLIC_OPTIONS = {
    "endpoint",
    "endpoint_url",
    "region",
    "default_region",
    "allow_http",
    "allow_invalid_certificates",
    "virtual_hosted_style_request",
    "conditional_put",
    "copy_if_not_exists",
    "s3_allow_unsafe_rename",
    "timeout",
    "connect_timeout",
    "max_retries",
    "retry_timeout",
    "storage_account_name",
    "account_name",
    "use_emulator",
    "bucket",
    "bucket_name",
    "container_name",
}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Object-store answers that retrying will not change: credentials, permissions, a missing bucket.
# A status line ("403 Forbidden"), not any "403": ports and durations in the message contain digits.
DENIED_STATUS = re.compile(r"\b40[13] [A-Z]")
DENIED = ("Forbidden", "Unauthorized", "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "privileges")
PERMANENT = ("PermissionDenied", "NotADirectory", "Permission denied", "NoSuchBucket", "ContainerNotFound")


def _option_is_public(key: str) -> bool:
    name = key.lower()
    for prefix in ("aws_", "azure_", "google_", "gcs_"):
        name = name.removeprefix(prefix)
    return name in PUBLIC_OPTIONS


def _scrub(message: str, options: dict[str, str] | None) -> str:
    # Longest first, so a secret that contains another value is replaced whole.
    secrets = sorted(
        (v for k, v in (options or {}).items() if v and len(v) >= 4 and not _option_is_public(k)), key=len, reverse=True
    )
    for value in secrets:
        message = message.replace(value, "***")
    return message


def _error(what: str, exc: BaseException, options: dict[str, str] | None) -> Exception:
    from deltalake.exceptions import CommitFailedError, DeltaProtocolError, SchemaMismatchError, TableNotFoundError

    text = _ANSI.sub("", str(exc))
    detail = " ".join(text.split())  # delta-rs nests causes on indented lines
    denied = DENIED_STATUS.search(text) is not None or any(word in text for word in DENIED)
    if denied:
        what += " (access denied: check the credentials in DELTA_STORAGE_OPTIONS)"
    message = _scrub(f"{what}: {type(exc).__name__}: {detail}", options)[:1000]
    if isinstance(exc, CommitFailedError):
        return TransientPipelineError(message, system=SYSTEM)  # another writer committed first; retry
    if isinstance(exc, SchemaMismatchError | DeltaProtocolError | TableNotFoundError | ValueError | TypeError):
        return PermanentPipelineError(message, system=SYSTEM)
    if denied or any(word in text for word in PERMANENT):
        return PermanentPipelineError(message, system=SYSTEM)
    # I/O and object-store errors (timeouts, refused connections, 5xx, a full disk) may pass.
    return TransientPipelineError(message, system=SYSTEM)


def _open(uri: str, options: dict[str, str] | None, version: int | None = None) -> Any:
    """The table, or None when there is none at ``uri`` yet."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(uri, version=version, storage_options=options)
    except TableNotFoundError as exc:
        if version is not None or "Not a directory" in str(exc) or "NotADirectory" in str(exc):
            raise _error(f"open Delta table {uri}", exc, options) from None
        return None
    except Exception as exc:
        raise _error(f"open Delta table {uri}", exc, options) from None


@dataclass(frozen=True)
class MergeResult:
    version: int | None  # the table version holding the batch (None: no table, nothing written)
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_deleted: int = 0  # rows of the dataset that its pushed version no longer holds
    skipped: bool = False  # the batch's transaction was already in the table: nothing written
    created: bool = False

    @property
    def rows_written(self) -> int:
        return self.rows_inserted + self.rows_updated


# The MERGE's conditions, in SQL that both DataFusion (delta-rs) and Databricks accept (Unity Catalog
# pushes send the same text). The key is (row_id, dataset_id): the same item can sit in several
# datasets and in the feed of one table. Rows written before dataset_id existed read null; a
# version push adopts those that came from a dataset version and tags them, otherwise each of them
# would get a second, tagged copy.
# Parenthesised: DataFusion's parser binds OR tighter than IS DISTINCT FROM.
MERGE_CHANGED = "(t.content_hash IS DISTINCT FROM s.content_hash) OR (t.dataset_id IS DISTINCT FROM s.dataset_id)"


def merge_on(*, dataset_id: int | None) -> str:
    """The MERGE's ON condition for a batch of ``dataset_id`` (None: a feed batch)."""
    if dataset_id is None:
        return "t.row_id = s.row_id AND t.dataset_id IS NULL"
    return (
        "t.row_id = s.row_id AND (t.dataset_id = s.dataset_id "
        "OR (t.dataset_id IS NULL AND t.dataset_version IS NOT NULL))"
    )


def mirror_delete(*, dataset_id: int) -> str:
    """Target rows of the dataset that the pushed version no longer holds (WHEN NOT MATCHED BY SOURCE)."""
    return f"t.dataset_id = {int(dataset_id)}"


def delta_batch_version(config: DeltaConfig, *, uri: str, batch_id: str) -> int | None:
    """The table version that applied ``batch_id``, or None when the table never saw it."""
    options = _storage_options(uri, config)
    table = _open(uri, options)
    if table is None or table.transaction_version(batch_id) is None:
        return None
    return _version_of_batch(table, batch_id, options)


def _version_of_batch(table: Any, batch_id: str, options: dict[str, str] | None) -> int | None:
    try:
        for entry in table.history():
            if entry.get("reviewdesk.batch_id") == batch_id:
                return int(entry["version"])
    except Exception as exc:
        raise _error("read Delta history", exc, options) from None
    return int(table.version())


def delta_merge_batch(
    config: DeltaConfig, *, uri: str, batch_id: str, source: pa.RecordBatchReader, dataset_id: int | None = None
) -> MergeResult:
    """Upsert ``source`` into the table at ``uri`` keyed by ``(row_id, dataset_id)``, exactly once per ``batch_id``.

    1. No table yet: create it with the batch in one commit (``mode="error"``: if another writer
       created it meanwhile, fail transiently and the retry merges).
    2. ``transaction_version(batch_id)`` set: the batch is in the table already; write nothing.
    3. A table from before ``dataset_id`` gets the column (one schema commit, once; old rows null).
    4. MERGE, with the application transaction in the same atomic commit. A batch of a dataset
       version (``dataset_id`` set) also deletes that dataset's rows the version no longer holds,
       in the same commit. A batch that changes no row makes no commit (delta-rs skips empty commits).
    A process killed during a write leaves at most unreferenced data files (no commit), which the
    retry ignores and ``VACUUM`` removes.
    """
    from deltalake import CommitProperties, Transaction, write_deltalake

    options = _storage_options(uri, config)
    commit = CommitProperties(
        app_transactions=[Transaction(app_id=batch_id, version=APP_TXN_VERSION)],
        custom_metadata={"reviewdesk.batch_id": batch_id},
    )
    table = _open(uri, options)
    if table is None:
        if not is_object_store(uri):
            try:
                Path(uri).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise PermanentPipelineError(f"create Delta table folder {uri}: {exc}", system=SYSTEM) from None
        seen = [0]

        def counted() -> Iterator[pa.RecordBatch]:
            for batch in source:
                seen[0] += batch.num_rows
                yield batch

        try:
            write_deltalake(
                uri,
                pa.RecordBatchReader.from_batches(source.schema, counted()),
                mode="error",
                storage_options=options,
                commit_properties=commit,
            )
        except Exception as exc:
            raise _error(f"create Delta table {uri}", exc, options) from None
        created = _open(uri, options)
        return MergeResult(version=int(created.version()), rows_inserted=seen[0], created=True)
    if table.transaction_version(batch_id) is not None:
        return MergeResult(version=_version_of_batch(table, batch_id, options), skipped=True)
    table = _ensure_dataset_column(table, uri=uri, options=options)
    try:
        merger = (
            table.merge(
                source,
                predicate=merge_on(dataset_id=dataset_id),
                source_alias="s",
                target_alias="t",
                merge_schema=True,
                commit_properties=commit,
            )
            .when_matched_update_all(predicate=MERGE_CHANGED)
            .when_not_matched_insert_all()
        )
        if dataset_id is not None:  # a feed batch never deletes: it is not a snapshot of anything
            merger = merger.when_not_matched_by_source_delete(predicate=mirror_delete(dataset_id=dataset_id))
        metrics = merger.execute()
    except Exception as exc:
        raise _error(f"merge into Delta table {uri}", exc, options) from None
    table = _open(uri, options)
    return MergeResult(
        version=int(table.version()),
        rows_inserted=int(metrics.get("num_target_rows_inserted", 0)),
        rows_updated=int(metrics.get("num_target_rows_updated", 0)),
        rows_deleted=int(metrics.get("num_target_rows_deleted", 0)),
    )


def _ensure_dataset_column(table: Any, *, uri: str, options: dict[str, str] | None) -> Any:
    """The table, with a ``dataset_id`` column: the MERGE's conditions name it, and ``merge_schema``
    only adds source columns after they are resolved. Tables created before it existed get it here,
    null in every old row."""
    from deltalake import Field
    from deltalake.schema import PrimitiveType

    if "dataset_id" in {field.name for field in table.schema().fields}:
        return table
    try:
        table.alter.add_columns(Field("dataset_id", PrimitiveType("long"), nullable=True))
    except Exception as exc:
        raise _error(f"add column dataset_id to Delta table {uri}", exc, options) from None
    return _open(uri, options)


def delta_read(
    config: DeltaConfig, *, uri: str, version: int | None = None, columns: list[str] | None = None
) -> pa.Table:
    """The table (at ``version``: time travel) as an Arrow table."""
    options = _storage_options(uri, config)
    table = _open(uri, options, version=version)
    if table is None:
        raise PermanentPipelineError(f"no Delta table at {uri}", system=SYSTEM)
    try:
        return table.to_pyarrow_table(columns=columns)
    except Exception as exc:
        raise _error(f"read Delta table {uri}", exc, options) from None


def throttle(seconds: float) -> Callable[[int], None] | None:
    """An ``on_batch`` callback that pauses between record batches (DELIVERY_BATCH_PAUSE_SECONDS)."""
    if seconds <= 0:
        return None
    return lambda _done: time.sleep(seconds)


# --- incremental reads (sources) ---------------------------------------------------------------
#
# A source table is read unit by unit. A unit is either one table version's *added* files (the files
# of version v that version v-1 did not have: what an append wrote), or a whole snapshot (the table at
# a version: the first read, and a re-read after a rewrite). Files are read in path order and each
# file in its stored row order, so "the first n rows of a unit" means the same rows on every read: a
# watermark is the last unit fully read plus a row offset into the next one, and resuming from it
# reads each row exactly once. The change data feed is not used: delta-rs answers it from several
# files at once in no fixed order, so a row offset into it would not be stable.
#
# A version that removes files is one of:
# - a compaction (OPTIMIZE: ``dataChange=false``): its added files hold rows already read; skipped;
# - a rewrite (overwrite, DELETE, UPDATE, MERGE, replace): rows already read may have changed or gone.
#   ``on_rewrite`` decides: "error" (default) raises PermanentPipelineError naming the version;
#   "reread" reads the whole table at that version again (the ingest must be idempotent, as it is by
#   external id / trace id); "skip" ignores the version's added rows too (Databricks'
#   ``skipChangeCommits``).

# (columns, predicate): which rows of a record batch to build, from those columns' values (see delta_table_read).
RowFilter = tuple[Sequence[str], Callable[[dict[str, list[Any]]], list[bool]]]

COMPACTION_OPERATIONS = frozenset({"OPTIMIZE"})
REWRITE_POLICIES = ("error", "reread", "skip")


@dataclass(frozen=True)
class DeltaWatermark:
    """Where a Delta source stands.

    ``version``: the last table version whose rows are all read (-1: nothing read yet).
    ``offset``: rows of the next unit already read (after a batch that ended inside a unit).
    ``snapshot``: when set, the next unit is the whole table at that version (a first read, or a
    re-read after a rewrite), else the files version+1 added. A fresh watermark (-1, 0, None) reads
    the table as it is now, then every later version.
    """

    version: int = -1
    offset: int = 0
    snapshot: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        return {"version": self.version, "offset": self.offset, "snapshot": self.snapshot}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> DeltaWatermark:
        if not data:
            return cls()
        snapshot = data.get("snapshot")
        return cls(
            version=int(data.get("version", -1)),
            offset=int(data.get("offset", 0)),
            snapshot=None if snapshot is None else int(snapshot),
        )


def delta_table_version(config: DeltaConfig, *, uri: str) -> int | None:
    """The table's latest version, or None when there is no table at ``uri`` (to start a source "from now")."""
    options = _storage_options(uri, config)
    table = _open(uri, options)
    return None if table is None else int(table.version())


def delta_table_columns(config: DeltaConfig, *, uri: str) -> list[str]:
    """The table's column names (for a mapping form); PermanentPipelineError when there is no table."""
    options = _storage_options(uri, config)
    table = _open(uri, options)
    if table is None:
        raise PermanentPipelineError(f"no Delta table at {uri}", system=SYSTEM)
    return [f.name for f in table.schema().fields]


def delta_table_read(
    config: DeltaConfig,
    *,
    uri: str,
    mapping: dict[str, str],
    metadata_columns: list[str] | tuple[str, ...] = (),
    watermark: DeltaWatermark | None = None,
    batch_size: int = 1000,
    on_rewrite: str = "error",
    keep: RowFilter | None = None,
) -> Iterator[TableBatch]:
    """Read the rows appended to the Delta table at ``uri`` since ``watermark``, ``batch_size`` at a time.

    Yields :class:`~pipelines.adapters.table_rows.TableBatch`: item-shaped rows (``mapping``: item
    field -> column, see ``table_rows``) and the :class:`DeltaWatermark` to store after ingesting
    them. Lazy: stop iterating at any point and resume from the last stored watermark. Reads up to
    the table version current when the read began; the last batch ends on that version (a batch
    with no rows is yielded when only the watermark moves, e.g. past a compaction). Memory stays
    bounded by one Arrow record batch of ``batch_size`` rows and one batch of dicts.

    ``keep``: (columns, predicate) to convert only some rows: the predicate gets those columns of a
    record batch as Python lists (the values the rows would hold) and says, per row, whether to build
    it. Rows it leaves out still count in ``scanned`` and in the watermark (a batch covers the same
    table rows either way); building dicts is most of a scan's time, so a sampling source skips it.

    PermanentPipelineError: no table, a mapped column the table lacks, a rewritten version under
    ``on_rewrite="error"``, a version no longer in the log. TransientPipelineError: the store did not
    answer.
    """
    if on_rewrite not in REWRITE_POLICIES:
        raise PermanentPipelineError(f"on_rewrite must be one of {', '.join(REWRITE_POLICIES)}", system=SYSTEM)
    if batch_size < 1:
        raise PermanentPipelineError("batch_size must be at least 1", system=SYSTEM)
    columns = ColumnMapping.build(mapping, metadata_columns, system=SYSTEM)
    options = _storage_options(uri, config)
    table = _open(uri, options)
    if table is None:
        raise PermanentPipelineError(f"no Delta table at {uri}", system=SYSTEM)
    start = watermark or DeltaWatermark()
    latest = int(table.version())
    columns.check([f.name for f in table.schema().fields], table=f"Delta table {uri}", system=SYSTEM)
    if start.version > latest or (start.snapshot is not None and start.snapshot > latest):
        raise PermanentPipelineError(
            f"Delta table {uri} is at version {latest}, behind the source's watermark {start.as_dict()}: "
            "was the table dropped and re-created? Reset the source's watermark to read it again.",
            system=SYSTEM,
        )
    if keep is not None:
        missing = set(keep[0]) - {f.name for f in table.schema().fields}
        if missing:
            raise PermanentPipelineError(f"Delta table {uri} has no column {sorted(missing)[0]!r}", system=SYSTEM)
    reader = _DeltaUnits(uri=uri, options=options, latest=latest, table=table)
    return _batches(reader, columns, start, batch_size=batch_size, on_rewrite=on_rewrite, keep=keep)


class _DeltaUnits:
    """Snapshots of one table by version: their files (as pyarrow fragments) and commit operations."""

    def __init__(self, *, uri: str, options: dict[str, str] | None, latest: int, table: Any) -> None:
        self.uri, self.options, self.latest = uri, options, latest
        self.read_schema = self._dataset(table).schema  # the latest schema: older files read missing columns as null
        self._files: dict[int, dict[str, Any]] = {}
        self._operations: dict[int, str] | None = None
        self._latest_table = table

    def _dataset(self, table: Any) -> Any:
        try:
            return table.to_pyarrow_dataset()
        except Exception as exc:
            raise _error(f"read Delta table {self.uri}", exc, self.options) from None

    def files(self, version: int) -> dict[str, Any]:
        """Path -> fragment of every data file of the table at ``version`` (the last two are kept)."""
        if version not in self._files:
            if version == self.latest:
                table = self._latest_table
            else:
                try:
                    table = _open(self.uri, self.options, version=version)
                except PermanentPipelineError as exc:
                    raise PermanentPipelineError(
                        f"Delta table {self.uri}: version {version} can no longer be read (its log entry was "
                        f"cleaned up?): {exc.message}. Reset the source's watermark to read the table as it is now.",
                        system=SYSTEM,
                    ) from None
            dataset = self._dataset(table)
            self._files = {v: f for v, f in self._files.items() if v >= version - 1}
            self._files[version] = {fragment.path: fragment for fragment in dataset.get_fragments()}
        return self._files[version]

    def operation(self, version: int, since: int) -> str:
        if self._operations is None:
            try:
                history = self._latest_table.history(limit=max(1, self.latest - since))
            except Exception as exc:
                raise _error(f"read the history of Delta table {self.uri}", exc, self.options) from None
            self._operations = {int(h["version"]): str(h.get("operation") or "") for h in history if "version" in h}
        return self._operations.get(version, "")

    def scan(self, fragment: Any, columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        """The file's rows as record batches of ``columns`` in the table's latest schema: partition
        columns filled from the file's partition values, columns the file predates as nulls.

        Read with ``ParquetFile.iter_batches`` over a buffered stream, page by page: the dataset
        scanner decodes whole row groups first (68 MB for one of 100,000 request-log rows, and Spark
        writes 128 MB ones), this reader about 10 MB whatever the row group.
        """
        import pyarrow.dataset as ds
        import pyarrow.parquet as pq

        try:
            partition = ds.get_partition_keys(fragment.partition_expression) or {}
            with fragment.filesystem.open_input_file(fragment.path) as source:
                parquet = pq.ParquetFile(source, buffer_size=1 << 20, pre_buffer=False)
                present = set(parquet.schema_arrow.names)
                stored = [c for c in columns if c in present and c not in partition]
                fields = [self.read_schema.field(c) for c in columns]
                for batch in parquet.iter_batches(batch_size=batch_size, columns=stored, use_threads=False):
                    n = batch.num_rows
                    arrays = []
                    for field in fields:
                        if field.name in partition:
                            arrays.append(pa.array([partition[field.name]] * n, field.type))
                        elif field.name in present:
                            array = batch.column(field.name)
                            arrays.append(array if array.type == field.type else array.cast(field.type))
                        else:  # a column added after this file was written
                            arrays.append(pa.nulls(n, field.type))
                    yield pa.RecordBatch.from_arrays(arrays, names=columns)
        except PipelineError:
            raise
        except Exception as exc:
            raise _error(f"read Delta table {self.uri} file {fragment.path}", exc, self.options) from None

    def count(self, fragment: Any) -> int:
        try:
            return int(fragment.count_rows())  # from the Parquet footer: the file's data is not read
        except Exception as exc:
            raise _error(f"read Delta table {self.uri} file {fragment.path}", exc, self.options) from None


def _next_unit(units: _DeltaUnits, wm: DeltaWatermark, on_rewrite: str, since: int) -> tuple[int, list[Any]] | None:
    """The next unit after ``wm``: (the version it completes, its fragments in read order), or None when done.

    A rewrite under "reread" gives ``(-1, [version])``: the caller moves to a snapshot unit at it.
    """
    if wm.snapshot is not None or wm.version < 0:
        version = wm.snapshot if wm.snapshot is not None else units.latest
        files = units.files(version)
        return version, [files[p] for p in sorted(files)]
    version = wm.version + 1
    if version > units.latest:
        return None
    before, after = units.files(version - 1), units.files(version)
    removed = before.keys() - after.keys()
    added = sorted(after.keys() - before.keys())
    if removed:
        operation = units.operation(version, since)
        if operation in COMPACTION_OPERATIONS:
            return version, []  # the same rows in new files: nothing new
        if on_rewrite == "skip":
            return version, []
        if on_rewrite == "error":
            raise PermanentPipelineError(
                f"Delta table {units.uri}: version {version} ({operation or 'a rewrite'}) removed "
                f"{len(removed)} data file(s), so rows already read may have changed or gone. Set the source to "
                "re-read the table at that version, or to skip rewrites, to go on.",
                system=SYSTEM,
            )
        return -1, [version]  # "reread": the caller turns this into a snapshot unit at ``version``
    return version, [after[p] for p in added]


def _batches(
    units: _DeltaUnits,
    columns: ColumnMapping,
    start: DeltaWatermark,
    *,
    batch_size: int,
    on_rewrite: str,
    keep: RowFilter | None = None,
) -> Iterator[TableBatch]:
    names = columns.columns
    if keep is not None:
        names = list(dict.fromkeys([*names, *keep[0]]))
    since = start.version
    wm = start
    # One entry per table row read; None for a row ``keep`` left out (so batch bounds and offsets
    # count table rows whether or not they were built).
    buffer: list[dict[str, Any] | None] = []
    while True:
        unit = _next_unit(units, wm, on_rewrite, since)
        if unit is None:
            break
        version, fragments = unit
        if version == -1:  # re-read after a rewrite: the whole table at that version
            wm = DeltaWatermark(version=wm.version, offset=0, snapshot=int(fragments[0]))
            continue
        # The position before this unit; a snapshot unit names its version, so a resume reads the same files.
        snapshot = version if (wm.snapshot is not None or wm.version < 0) else None
        base = DeltaWatermark(version=wm.version, snapshot=snapshot)
        done = skip = wm.offset  # rows of this unit behind us
        for fragment in fragments:
            if skip:
                rows_in_file = units.count(fragment)
                if rows_in_file <= skip:
                    skip -= rows_in_file
                    continue
            for record_batch in units.scan(fragment, names, batch_size):
                if skip:
                    if record_batch.num_rows <= skip:
                        skip -= record_batch.num_rows
                        continue
                    record_batch = record_batch.slice(skip)
                    skip = 0
                if not record_batch.num_rows:
                    continue
                buffer.extend(_rows(columns, record_batch, keep))
                done += record_batch.num_rows
                while len(buffer) >= batch_size:
                    out, buffer = buffer[:batch_size], buffer[batch_size:]
                    # Rows left in the buffer came from this record batch (the buffer held fewer than
                    # batch_size rows before it), so they are the last ones of this unit read so far.
                    after = DeltaWatermark(version=base.version, offset=done - len(buffer), snapshot=base.snapshot)
                    yield TableBatch(rows=_built(out), watermark=after, scanned=len(out))
        wm = DeltaWatermark(version=version)
    if buffer or wm != start:
        yield TableBatch(rows=_built(buffer), watermark=wm, scanned=len(buffer))


def _rows(columns: ColumnMapping, batch: pa.RecordBatch, keep: RowFilter | None) -> Sequence[dict[str, Any] | None]:
    """The batch's rows, in order; None for each row ``keep`` leaves out (not built)."""
    if keep is None:
        return columns.rows(_pydict(batch))
    wanted, predicate = keep
    mask = predicate(_pydict(batch.select(wanted)))
    if all(mask):
        return columns.rows(_pydict(batch))
    if not any(mask):
        return [None] * batch.num_rows
    built = iter(columns.rows(_pydict(batch.select(columns.columns).filter(pa.array(mask, pa.bool_())))))
    return [next(built) if k else None for k in mask]


def _built(rows: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    return [row for row in rows if row is not None]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROS = {"s": 1_000_000, "ms": 1000, "us": 1}


def _pydict(batch: pa.RecordBatch) -> dict[str, list[Any]]:
    """The batch's columns as Python lists; timestamps as UTC-aware datetimes, built from their integers
    (pyarrow's own conversion of zoned timestamps is ~20x slower and would halve the scan rate)."""
    from datetime import timedelta

    out: dict[str, list[Any]] = {}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        typ = column.type
        if pa.types.is_timestamp(typ):
            # Arrow keeps zoned timestamps as UTC instants; a timestamp without a zone is read as UTC.
            ticks = column.cast(pa.int64()).to_pylist()
            scale = _MICROS.get(typ.unit, 1)
            micros = [None if t is None else (t // 1000 if typ.unit == "ns" else t * scale) for t in ticks]
            try:
                out[name] = [None if m is None else _EPOCH + timedelta(microseconds=m) for m in micros]
            except OverflowError:  # a year beyond 9999 somewhere: that batch falls back to one value at a time
                out[name] = [_micros_datetime(m) for m in micros]
        else:
            out[name] = column.to_pylist()
    return out


def _micros_datetime(micros: int | None) -> datetime | None:
    from datetime import timedelta

    if micros is None:
        return None
    try:
        return _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        return None
