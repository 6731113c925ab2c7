"""Export shapes and streaming writers, built from the canonical row (``pipelines.datasets.versions``).

Shapes (``shape_row``): ``mlflow`` (MLflow 3 evaluation-dataset records: ``inputs``, ``outputs``,
``expectations``, plus ``feedback``, ``source``, ``tags``), ``agent-eval`` (Databricks Agent Evaluation
columns plus ``feedback``), ``sft`` (chat ``messages``: the request, then the curated expected response
as the assistant turn; rows without one are left out) and ``preference`` (``prompt`` / ``chosen`` /
``rejected``: corrected answers, and pairwise preferences with a winner). A response its label fails
is never an assistant turn or a ``chosen`` answer (rows frozen with such an expectation are skipped,
and so are pairwise wins of a failed answer). Every shaped row carries
``provenance`` (row and item id, trace id, model version, method, review ids, reviewers, agreement).

Formats (``export_stream``): ``jsonl`` (nested values kept), ``csv`` and ``parquet`` (``feedback`` is
flattened into ``feedback.<question key>`` columns in question order; other nested values are JSON
text, lists of texts are Parquet lists). ``compression="gzip"`` gzips the stream. Everything is a
generator of ~64 KB byte chunks over a database iterator, so memory does not grow with the size.
"""

from __future__ import annotations

import csv
import io
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast

from pipelines.datasets.versions import curated_rows, question_order
from pipelines.models import DatasetRow, DatasetVersion
from reviewapp.csv_safe import csv_cell
from reviewapp.models import CuratedLabel, Project, Question
from reviewapp.models.pairwise import Preference

SHAPES = ("mlflow", "agent-eval", "sft", "preference")
FORMATS = ("jsonl", "csv", "parquet")
COMPRESSIONS = ("", "gzip")
CONTENT_TYPES = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
CHUNK_BYTES = 64 * 1024  # bytes per yielded chunk: few writes, small buffers
PARQUET_ROW_GROUP = 10_000  # rows per Parquet row group (memory is about one group)
EXPORT_LAYOUT = 1  # bump when a shape changes, so ETags of old files no longer match

_json = msgspec.json.Encoder()
_decode = msgspec.json.Decoder()

# --- shapes --------------------------------------------------------------------------------------


def provenance(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "row_id": row["row_id"],
        "item_id": row["item_id"],
        "external_id": row.get("external_id", ""),
        "trace_id": row.get("trace_id", ""),
        "model_version": row.get("model_version", ""),
        **(row.get("provenance") or {}),
    }


def _messages(request: Any) -> list[dict[str, Any]]:
    if isinstance(request, list):
        return [dict(m) for m in request if isinstance(m, dict)]
    return [{"role": "user", "content": str(request)}]


def _mlflow(row: dict[str, Any]) -> dict[str, Any]:
    request = row["request"]
    inputs = {"messages": _messages(request)} if isinstance(request, list) else {"request": request}
    expectations: dict[str, Any] = {}
    for key in ("expected_response", "expected_facts", "guidelines"):
        if row.get(key):  # an empty expectation would make Correctness / Guidelines judge against nothing
            expectations[key] = row[key]
    prov = row.get("provenance") or {}
    if row.get("trace_id"):
        source = {"trace": {"trace_id": row["trace_id"]}}
    else:
        who = prov.get("decided_by") or next(iter(prov.get("reviewers") or []), "")
        source = {"human": {"user_name": who}}
    return {
        "inputs": inputs,
        "outputs": row.get("response", ""),
        "expectations": expectations,
        "feedback": row.get("feedback") or {},
        "source": source,
        "tags": {
            "row_id": row["row_id"],
            "item_id": str(row["item_id"]),
            "model_version": row.get("model_version", ""),
            "source": row.get("source", ""),
            "method": prov.get("method", ""),
        },
        "provenance": provenance(row),
    }


def _agent_eval(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "request_id": row.get("request_id") or row["row_id"],
        "request": {"messages": _messages(row["request"])} if isinstance(row["request"], list) else row["request"],
        "response": row.get("response", ""),
        "retrieved_context": row.get("retrieved_context") or [],
        "expected_response": row.get("expected_response", ""),
        "expected_facts": row.get("expected_facts") or [],
        "guidelines": row.get("guidelines") or [],
        "feedback": row.get("feedback") or {},
        "provenance": provenance(row),
    }


def row_fails_response(row: dict[str, Any]) -> bool:
    """The row's label fails its response: a pass/fail answer is false (only pass/fail answers are booleans)."""
    feedback = row.get("feedback") or {}
    return isinstance(feedback, dict) and any(v is False for v in feedback.values())


def _same_text(a: Any, b: Any) -> bool:
    return " ".join(str(a or "").split()) == " ".join(str(b or "").split())


def _sft(row: dict[str, Any]) -> dict[str, Any] | None:
    expected = (row.get("expected_response") or "").strip()
    if not expected:
        return None
    if row_fails_response(row) and _same_text(expected, row.get("response")):
        return None  # the failed answer itself (rows frozen before this was refused): never a training target
    messages = _messages(row["request"])
    return {"messages": [*messages, {"role": "assistant", "content": expected}], "provenance": provenance(row)}


def _preference(row: dict[str, Any]) -> dict[str, Any] | None:
    """A corrected answer: the curated expected response is preferred over what the model said."""
    expected = (row.get("expected_response") or "").strip()
    if not expected or _same_text(expected, row.get("response")):
        return None  # nothing corrected: the response is not "rejected" in favour of itself
    version = row.get("model_version", "")
    return {
        "prompt": row["request"],
        "chosen": expected,
        "rejected": row.get("response", ""),
        "kind": "correction",
        "chosen_model_version": "",  # written by people
        "rejected_model_version": version,
        "provenance": provenance(row),
    }


SHAPERS: dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]] = {
    "mlflow": _mlflow,
    "agent-eval": _agent_eval,
    "sft": _sft,
    "preference": _preference,
}


def shape_row(shape: str, row: dict[str, Any]) -> dict[str, Any] | None:
    """One canonical row in ``shape``; None when the row has nothing to give in it (sft, preference)."""
    try:
        shaper = SHAPERS[shape]
    except KeyError:
        raise ValueError(f"unknown shape {shape!r} (known: {', '.join(SHAPES)})") from None
    return shaper(row)


def preference_pairs(*, project: Project, version: DatasetVersion | None = None) -> Iterator[dict[str, Any]]:
    """Pairwise preferences with a winner as prompt / chosen / rejected rows, oldest first.

    For a dataset version: the preferences submitted by the time it was taken whose two items are
    both in it, so the export of a version does not move with later judgements.
    """
    prefs = Preference.objects.filter(project=project, outcome=Preference.Outcome.WIN)
    if version is not None:
        item_ids = DatasetRow.objects.filter(version=version).values("item_id")
        prefs = prefs.filter(submitted_at__lte=version.created_at).filter(
            Q(left_item_id__in=item_ids) & Q(right_item_id__in=item_ids)
        )
    # A winner whose curated label fails it is only the lesser of two bad answers: never "chosen".
    failed = _failed_item_ids(project=project, version=version)
    if failed is not None:
        prefs = prefs.exclude(winner_item_id__in=failed)
    prefs = prefs.select_related("left_item", "right_item", "reviewer").order_by("submitted_at", "id")
    for pref in prefs.iterator(chunk_size=1000):
        winner, loser = (
            (pref.left_item, pref.right_item)
            if pref.winner_item_id == pref.left_item_id
            else (pref.right_item, pref.left_item)
        )
        request = winner.request
        yield {
            "prompt": list(request.get("messages") or []) if isinstance(request, dict) else request,
            "chosen": winner.response,
            "rejected": loser.response,
            "kind": "pairwise",
            "chosen_model_version": pref.winner_model_version,
            "rejected_model_version": pref.loser_model_version,
            "provenance": {
                "preference_id": pref.pk,
                "task_id": pref.task_id,
                "item_ids": [winner.pk, loser.pk],
                "trace_ids": [winner.trace_id, loser.trace_id],
                "model_versions": [pref.winner_model_version, pref.loser_model_version],
                "method": "pairwise",
                "review_ids": [],
                "reviewers": [pref.reviewer.get_username()],
                "agreement": None,
                "reason": pref.reason,
            },
        }


def _failed_item_ids(*, project: Project, version: DatasetVersion | None) -> QuerySet | None:
    """Items whose label (the version's row, else the current curated label) fails the response."""
    keys = list(Question.objects.filter(project=project, kind=Question.Kind.PASS_FAIL).values_list("key", flat=True))
    if not keys:
        return None
    if version is not None:
        rows = Q()
        for key in keys:
            rows |= Q(**{f"data__feedback__{key}": False})
        return DatasetRow.objects.filter(Q(version=version) & rows).values("item_id")
    labels = Q()
    for key in keys:
        labels |= Q(**{f"answers__{key}": False})
    return CuratedLabel.objects.filter(Q(project=project) & labels).values("item_id")


# --- row sources ---------------------------------------------------------------------------------


class Progress:
    """Counts canonical rows read (not rows written: sft and preference leave some out)."""

    def __init__(self, callback: Callable[[int], None] | None = None, every: int = 2_000) -> None:
        self.done = 0
        self.callback = callback
        self.every = every

    def tick(self) -> None:
        self.done += 1
        if self.callback is not None and self.done % self.every == 0:
            self.callback(self.done)


def _shaped(rows: Iterable[dict[str, Any]], shape: str, progress: Progress | None) -> Iterator[dict[str, Any]]:
    shaper = SHAPERS[shape]
    for row in rows:
        if progress is not None:
            progress.tick()
        shaped = shaper(row)
        if shaped is not None:
            yield shaped


def version_rows(*, version: DatasetVersion, chunk_size: int = 2_000) -> Iterator[dict[str, Any]]:
    """The version's canonical rows by position, decoded from JSON text on a server-side cursor."""
    texts = (
        DatasetRow.objects.filter(version=version)
        .order_by("position")
        .annotate(text=Cast("data", TextField()))
        .values_list("text", flat=True)
    )
    for text in texts.iterator(chunk_size=chunk_size):
        yield _decode.decode(text)


def version_export_rows(
    *, version: DatasetVersion, shape: str, progress: Progress | None = None
) -> Iterator[dict[str, Any]]:
    yield from _shaped(version_rows(version=version), shape, progress)
    if shape == "preference":
        yield from preference_pairs(project=version.dataset.project, version=version)


def live_export_rows(
    *, project: Project, filter: dict[str, Any], shape: str, progress: Progress | None = None
) -> Iterator[dict[str, Any]]:
    yield from _shaped(curated_rows(project=project, filter=filter), shape, progress)
    if shape == "preference":
        yield from preference_pairs(project=project)


def live_question_keys(*, project: Project) -> list[str]:
    order = question_order(project=project)
    return sorted(order, key=order.__getitem__)


# --- columns (csv, parquet) --------------------------------------------------------------------

# Column name -> kind: "text" (text as is, anything else as JSON text), "list" (list of texts), "int".
FIXED_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "mlflow": [("inputs", "text"), ("outputs", "text"), ("expectations", "text"), ("source", "text"), ("tags", "text")],
    "agent-eval": [
        ("request_id", "text"),
        ("request", "text"),
        ("response", "text"),
        ("retrieved_context", "text"),
        ("expected_response", "text"),
        ("expected_facts", "list"),
        ("guidelines", "list"),
    ],
    "sft": [("messages", "text")],
    "preference": [
        ("prompt", "text"),
        ("chosen", "text"),
        ("rejected", "text"),
        ("kind", "text"),
        ("chosen_model_version", "text"),
        ("rejected_model_version", "text"),
    ],
}
HAS_FEEDBACK = {"mlflow", "agent-eval"}


def columns(shape: str, question_keys: list[str]) -> list[tuple[str, str]]:
    """Fixed columns, then one per question (feedback) in question order, then provenance."""
    feedback = [(f"feedback.{k}", "text") for k in question_keys] if shape in HAS_FEEDBACK else []
    return [*FIXED_COLUMNS[shape], *feedback, ("provenance", "text")]


def _cell(value: Any, kind: str) -> Any:
    if value is None or isinstance(value, str):
        return value
    if kind == "list" and isinstance(value, list):
        return [str(v) for v in value]
    if kind == "int" and isinstance(value, int):
        return value
    return _json.encode(value).decode()


def _flat(row: dict[str, Any], cols: list[tuple[str, str]]) -> list[Any]:
    feedback = row.get("feedback") or {}
    out = []
    for name, kind in cols:
        value = feedback.get(name[9:]) if name.startswith("feedback.") else row.get(name)
        out.append(_cell(value, kind))
    return out


# --- writers -----------------------------------------------------------------------------------


def _chunked(pieces: Iterable[bytes]) -> Iterator[bytes]:
    buffer: list[bytes] = []
    size = 0
    for piece in pieces:
        buffer.append(piece)
        size += len(piece)
        if size >= CHUNK_BYTES:
            yield b"".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield b"".join(buffer)


def _jsonl(rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    encode = _json.encode
    return _chunked(encode(row) + b"\n" for row in rows)


def _csv(rows: Iterable[dict[str, Any]], cols: list[tuple[str, str]]) -> Iterator[bytes]:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([csv_cell(name) for name, _ in cols])
    for row in rows:
        values = _flat(row, cols)
        writer.writerow([csv_cell(_json.encode(v).decode() if isinstance(v, list) else v) for v in values])
        if text.tell() >= CHUNK_BYTES:
            yield text.getvalue().encode()
            text.seek(0)
            text.truncate()
    if text.tell():
        yield text.getvalue().encode()


class _Sink:
    """A write-only file for pyarrow that hands out what was written since the last ``take``."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts = []
        return data


def _parquet(rows: Iterable[dict[str, Any]], cols: list[tuple[str, str]]) -> Iterator[bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"text": pa.string(), "list": pa.list_(pa.string()), "int": pa.int64()}
    schema = pa.schema([(name, types[kind]) for name, kind in cols])
    sink = _Sink()
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, compression="zstd")
    batch: list[list[Any]] = []

    def flush() -> None:
        arrays = [pa.array([r[i] for r in batch], type=schema.field(i).type) for i in range(len(cols))]
        writer.write_table(pa.Table.from_arrays(arrays, schema=schema), row_group_size=PARQUET_ROW_GROUP)

    try:
        for row in rows:
            batch.append(_flat(row, cols))
            if len(batch) >= PARQUET_ROW_GROUP:
                flush()
                batch = []
                if data := sink.take():
                    yield data
        if batch:
            flush()
    finally:
        writer.close()
    if data := sink.take():
        yield data


def _gzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip header and trailer
    for chunk in chunks:
        if out := compressor.compress(chunk):
            yield out
    yield compressor.flush()


def export_stream(
    rows: Iterable[dict[str, Any]],
    *,
    fmt: str,
    shape: str,
    question_keys: list[str],
    compression: str = "",
) -> Iterator[bytes]:
    """The shaped rows written as ``fmt``, in byte chunks, gzipped when asked."""
    if fmt == "jsonl":
        chunks = _jsonl(rows)
    elif fmt == "csv":
        chunks = _csv(rows, columns(shape, question_keys))
    elif fmt == "parquet":
        chunks = _parquet(rows, columns(shape, question_keys))
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return _gzip(chunks) if compression == "gzip" else chunks


def export_filename(*, stem: str, shape: str, fmt: str, compression: str) -> str:
    return f"{stem}-{shape}.{fmt}" + (".gz" if compression == "gzip" else "")


def version_etag(*, version: DatasetVersion, shape: str, fmt: str, compression: str) -> str:
    """Strong: the same version, shape, format and compression always give the same bytes."""
    import hashlib

    key = f"{EXPORT_LAYOUT}:{version.pk}:{version.content_hash}:{shape}:{fmt}:{compression or 'identity'}"
    return '"' + hashlib.sha256(key.encode()).hexdigest()[:40] + '"'
