"""The table readers sources call: a Delta table read by version, a Unity Catalog table read by watermark.

Delta: real tables written with ``deltalake`` in a temporary folder (appends across versions, a read
stopped inside a version and resumed, nothing read twice, value shapes, a missing column, an
overwrite under each policy, a compaction). Unity Catalog: the real databricks-sdk over HTTP
against the local workspace fake (paging with result chunks, ties on the watermark, named
parameters, a bad table name, a FAILED statement, a workspace answering 503).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from pipelines.adapters.databricks import UcWatermark, uc_table_read
from pipelines.adapters.delta import DeltaConfig, DeltaWatermark, delta_table_read
from pipelines.adapters.errors import PermanentPipelineError, TransientPipelineError
from pipelines.adapters.table_rows import TableBatch
from pipelines.wiring import databricks_config
from tests.fakes.databricks_api import FakeDatabricks
from tests.fakes.http import Reply
from tests.pipelines.test_delta_s3 import BUCKET, S3Server, s3_server  # noqa: F401 (the moto_server fixture)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MAPPING = {
    "request": "request",
    "response": "response",
    "retrieved_context": "retrieved_context",
    "model_version": "model_version",
    "trace_id": "trace_id",
    "timestamp": "ts",
}


# --- Delta ----------------------------------------------------------------------------------------


def rows_table(start: int, n: int, **extra: list[Any]) -> pa.Table:
    numbers = range(start, start + n)
    return pa.table(
        {
            "request": [f"question {i}" for i in numbers],
            "response": [f"answer {i}" for i in numbers],
            "retrieved_context": [json.dumps([{"content": f"chunk {i}", "doc_uri": f"doc-{i}"}]) for i in numbers],
            "model_version": pa.array([1 + i % 2 for i in numbers], pa.int64()),
            "trace_id": [f"tr-{i}" for i in numbers],
            "ts": pa.array([T0 + timedelta(seconds=i) for i in numbers], pa.timestamp("us", tz="UTC")),
            **extra,
        }
    )


def append(uri: Path, start: int, n: int, files: int = 1) -> None:
    """One commit (one table version) of ``n`` rows in ``files`` data files (one per ``shard`` partition)."""
    shards = [i % files for i in range(start, start + n)]
    write_deltalake(uri, rows_table(start, n, shard=shards), mode="append", partition_by=["shard"])


def read(uri: Path, watermark: DeltaWatermark | None = None, **kwargs: Any) -> list[TableBatch]:
    return list(delta_table_read(DeltaConfig(), uri=str(uri), mapping=MAPPING, watermark=watermark, **kwargs))


def ids(batches: list[TableBatch]) -> list[str]:
    return [row["trace_id"] for batch in batches for row in batch.rows]


def test_appends_across_versions_are_each_read_once_and_a_read_resumes_from_its_watermark(tmp_path: Path) -> None:
    uri = tmp_path / "requests"
    append(uri, 0, 5)
    append(uri, 5, 3)

    first = read(uri, batch_size=3)

    assert sorted(ids(first)) == [f"tr-{i}" for i in range(8)]
    assert [b.scanned for b in first] == [len(b.rows) for b in first] and sum(b.scanned for b in first) == 8
    assert first[-1].watermark == DeltaWatermark(version=1)  # the table as it was: versions 0 and 1
    assert read(uri, first[-1].watermark) == []  # nothing new: no batch, the watermark stays

    append(uri, 8, 4)
    append(uri, 12, 2)
    second = read(uri, first[-1].watermark, batch_size=3)

    assert ids(second) == [f"tr-{i}" for i in range(8, 14)]  # each version's rows in their written order
    assert second[-1].watermark == DeltaWatermark(version=3)
    # A batch ending inside version 2 says so: version 1 fully read, 3 rows of the next version read.
    assert second[0].watermark == DeltaWatermark(version=1, offset=3)
    assert second[1].watermark == DeltaWatermark(version=2, offset=2)


def test_a_read_stopped_inside_a_version_resumes_at_its_row_offset_and_reads_nothing_twice(tmp_path: Path) -> None:
    uri = tmp_path / "requests"
    append(uri, 0, 10, files=3)
    append(uri, 10, 7, files=2)
    seen: list[str] = []
    watermark: DeltaWatermark | None = None
    # A worker killed after every second batch: the next one starts from the last stored watermark.
    for _ in range(20):
        batches = delta_table_read(DeltaConfig(), uri=str(uri), mapping=MAPPING, watermark=watermark, batch_size=4)
        for _, batch in zip(range(2), batches, strict=False):
            seen += [r["trace_id"] for r in batch.rows]
            watermark = batch.watermark
        if len(seen) == 8:
            append(uri, 17, 5, files=2)  # the table moves on while the first snapshot is half read
        if watermark == DeltaWatermark(version=2):
            break

    assert sorted(seen) == sorted(f"tr-{i}" for i in range(22)) and len(seen) == 22
    assert watermark == DeltaWatermark(version=2)


def test_values_take_the_item_shapes(tmp_path: Path) -> None:
    uri = tmp_path / "log"
    naive = datetime(2026, 3, 1, 12, 30)  # a table column without a time zone
    write_deltalake(
        uri,
        pa.table(
            {
                "req": [json.dumps({"messages": [{"role": "user", "content": "hi"}]}), "plain question"],
                "resp": [json.dumps({"choices": [{"message": {"role": "assistant", "content": "hello"}}]}), "plain"],
                "ctx": pa.array(
                    [[{"page_content": "a", "doc_uri": "d1"}, {"page_content": "b", "doc_uri": None}], None],
                    pa.list_(pa.struct([("page_content", pa.string()), ("doc_uri", pa.string())])),
                ),
                "at": pa.array([naive, None], pa.timestamp("us")),
                "ms": [1772368200000, 1772368200500],
                "version": [3, 4],
                "endpoint": ["chat-prod", "chat-prod"],
                "tokens": [10, None],
                "day": ["2026-03-01", "2026-03-02"],
            }
        ),
        partition_by=["day"],
    )

    (batch,) = delta_table_read(
        DeltaConfig(),
        uri=str(uri),
        mapping={
            "request": "req",
            "response": "resp",
            "retrieved_context": "ctx",
            "timestamp": "at",
            "model_version": "version",
            "external_id": "ms",
        },
        metadata_columns=["endpoint", "tokens", "day"],
    )
    chat, plain = sorted(batch.rows, key=lambda r: r["external_id"])

    assert chat["request"] == {"messages": [{"role": "user", "content": "hi"}]}
    assert chat["response"] == "hello" and plain["request"] == "plain question" and plain["response"] == "plain"
    assert chat["retrieved_context"] == [{"content": "a", "doc_uri": "d1"}, {"content": "b", "doc_uri": ""}]
    assert plain["retrieved_context"] == []
    assert chat["timestamp"] == naive.replace(tzinfo=UTC) and chat["timestamp"].tzinfo is not None
    assert plain["timestamp"] is None
    assert chat["model_version"] == "3" and chat["external_id"] == "1772368200000"
    assert chat["metadata"] == {"endpoint": "chat-prod", "tokens": 10, "day": "2026-03-01"}  # a partition column too
    assert plain["metadata"]["tokens"] is None


def test_timestamps_in_epoch_milliseconds_and_iso_text_become_aware_datetimes() -> None:
    from pipelines.adapters.table_rows import to_context, to_timestamp

    assert to_timestamp(1772368200000) == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert to_timestamp(1772368200) == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert to_timestamp("2026-03-01T12:30:00.000Z") == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert to_timestamp("not a time") is None
    assert to_context('{"chunks": [{"text": "t", "url": "u"}]}') == [{"content": "t", "doc_uri": "u"}]
    assert to_context("just text") == [{"content": "just text", "doc_uri": ""}]


def test_a_mapped_column_the_table_lacks_is_a_permanent_error_naming_it(tmp_path: Path) -> None:
    uri = tmp_path / "requests"
    append(uri, 0, 2)

    with pytest.raises(PermanentPipelineError) as caught:
        delta_table_read(DeltaConfig(), uri=str(uri), mapping={**MAPPING, "model_name": "served_model"})
    assert "no column 'served_model' (mapped to model_name)" in caught.value.message

    with pytest.raises(PermanentPipelineError, match="map 'request'"):
        delta_table_read(DeltaConfig(), uri=str(uri), mapping={"response": "response"})
    with pytest.raises(PermanentPipelineError, match="no Delta table"):
        delta_table_read(DeltaConfig(), uri=str(tmp_path / "absent"), mapping=MAPPING)


def test_an_overwrite_stops_the_read_naming_its_version_unless_the_source_rereads_or_skips(tmp_path: Path) -> None:
    uri = tmp_path / "requests"
    append(uri, 0, 4)
    done = read(uri)[-1].watermark
    write_deltalake(uri, rows_table(100, 3, shard=[0, 0, 0]), mode="overwrite")  # version 1
    append(uri, 200, 2)  # version 2

    with pytest.raises(PermanentPipelineError) as caught:
        read(uri, done)
    assert "version 1 (WRITE) removed 1 data file(s)" in caught.value.message

    reread = read(uri, done, on_rewrite="reread")
    assert sorted(ids(reread)) == ["tr-100", "tr-101", "tr-102", "tr-200", "tr-201"]
    assert reread[-1].watermark == DeltaWatermark(version=2)

    skipped = read(uri, done, on_rewrite="skip")
    assert ids(skipped) == ["tr-200", "tr-201"] and skipped[-1].watermark == DeltaWatermark(version=2)


def test_a_reread_interrupted_inside_the_snapshot_resumes_in_the_same_snapshot(tmp_path: Path) -> None:
    uri = tmp_path / "requests"
    append(uri, 0, 2)
    DeltaTable(uri).delete("trace_id = 'tr-0'")  # version 1: a rewrite
    append(uri, 10, 3)  # version 2

    first = next(
        iter(
            delta_table_read(
                DeltaConfig(),
                uri=str(uri),
                mapping=MAPPING,
                watermark=DeltaWatermark(0),
                batch_size=1,
                on_rewrite="reread",
            )
        )
    )
    assert first.watermark == DeltaWatermark(version=0, offset=1, snapshot=1)
    rest = read(uri, first.watermark, on_rewrite="reread")

    assert ids([first]) + ids(rest) == ["tr-1", "tr-10", "tr-11", "tr-12"]


def test_a_compaction_adds_no_rows_and_moves_the_watermark(tmp_path: Path) -> None:
    uri = tmp_path / "requests"
    append(uri, 0, 3)
    append(uri, 3, 3)
    done = read(uri)[-1].watermark
    DeltaTable(uri).optimize.compact()  # version 2: OPTIMIZE, the same rows in one new file
    append(uri, 6, 1)

    after = read(uri, done)

    assert ids(after) == ["tr-6"] and after[-1].watermark == DeltaWatermark(version=3)


def test_a_delta_table_on_an_object_store_is_read_incrementally(s3_server: S3Server) -> None:  # noqa: F811
    uri = f"s3://{BUCKET}/sources/request_log"
    options = s3_server.options()
    write_deltalake(uri, rows_table(0, 3), mode="append", storage_options=options)
    config = DeltaConfig(storage_options=options, timeout_seconds=5)

    first = list(delta_table_read(config, uri=uri, mapping=MAPPING, batch_size=2))
    write_deltalake(uri, rows_table(3, 2), mode="append", storage_options=options)
    second = list(delta_table_read(config, uri=uri, mapping=MAPPING, watermark=first[-1].watermark))

    assert sorted(ids(first)) == ["tr-0", "tr-1", "tr-2"] and ids(second) == ["tr-3", "tr-4"]
    assert second[-1].watermark == DeltaWatermark(version=1)
    wrong = DeltaConfig(storage_options=s3_server.options(AWS_SECRET_ACCESS_KEY="wrong-secret"), timeout_seconds=5)
    with pytest.raises(PermanentPipelineError) as caught:
        list(delta_table_read(wrong, uri=uri, mapping=MAPPING))
    assert "wrong-secret" not in caught.value.message


def test_the_watermark_round_trips_through_json() -> None:
    mark = DeltaWatermark(version=4, offset=120, snapshot=None)
    assert DeltaWatermark.from_dict(json.loads(json.dumps(mark.as_dict()))) == mark
    assert DeltaWatermark.from_dict(None) == DeltaWatermark()
    uc = UcWatermark(value="2026-03-01T12:00:00.000Z", key="tr-9")
    assert UcWatermark.from_dict(json.loads(json.dumps(uc.as_dict()))) == uc


# --- Unity Catalog -------------------------------------------------------------------------------

TABLE = "main.apps.request_log"
UC_COLUMNS = {
    "request_id": "STRING",
    "request": "STRING",
    "response": "STRING",
    "chunks": "ARRAY<STRUCT<content:STRING,doc_uri:STRING>>",
    "served_version": "BIGINT",
    "logged_at": "TIMESTAMP",
    "status_code": "INT",
}
UC_MAPPING = {
    "request": "request",
    "response": "response",
    "retrieved_context": "chunks",
    "model_version": "served_version",
    "external_id": "request_id",
    "timestamp": "logged_at",
}


def uc_row(n: int, at: datetime) -> dict[str, Any]:
    return {
        "request_id": f"r{n:03d}",
        "request": f"question {n}",
        "response": f"answer {n}",
        "chunks": [{"content": f"chunk {n}", "doc_uri": f"doc-{n}"}],
        "served_version": 2,
        "logged_at": at,
        "status_code": 200,
    }


@pytest.fixture(autouse=True)
def no_ambient_databricks_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("DATABRICKS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "absent.cfg"))


@pytest.fixture
def fake(settings: Any) -> Iterator[FakeDatabricks]:
    with FakeDatabricks().running() as server:
        settings.DATABRICKS_HOST = server.url
        settings.DATABRICKS_TOKEN = server.token
        settings.DATABRICKS_WAREHOUSE_ID = "wh-reviewdesk"
        settings.DATABRICKS_TIMEOUT_SECONDS = 5
        yield server


def uc_read(watermark: UcWatermark | None = None, **kwargs: Any) -> list[TableBatch]:
    options: dict[str, Any] = {"table": TABLE, "mapping": UC_MAPPING, "watermark_column": "logged_at"} | kwargs
    return list(uc_table_read(databricks_config(), watermark=watermark, **options))


def test_a_uc_table_is_read_in_pages_with_ties_on_the_watermark_neither_skipped_nor_repeated(fake) -> None:
    # Rows 2-5 share one timestamp and straddle the page boundary (pages of 3).
    at = [T0, T0 + timedelta(seconds=1), *[T0 + timedelta(seconds=2)] * 4, T0 + timedelta(seconds=3)]
    fake.table_create(TABLE, UC_COLUMNS, [uc_row(n, at[n]) for n in reversed(range(7))])
    fake.result_chunk_rows = 2  # a page of 3 rows comes in two result chunks

    batches = uc_read(batch_size=3)

    assert [[r["external_id"] for r in b.rows] for b in batches] == [
        ["r000", "r001", "r002"],
        ["r003", "r004", "r005"],
        ["r006"],
    ]
    assert [b.scanned for b in batches] == [3, 3, 1]
    assert batches[0].watermark == UcWatermark(value="2026-03-01T12:00:02.000Z", key="r002")
    row = batches[0].rows[0]
    assert row["retrieved_context"] == [{"content": "chunk 0", "doc_uri": "doc-0"}]
    assert row["timestamp"] == T0 and row["model_version"] == "2" and row["request"] == "question 0"
    chunk_gets = [r.path for r in fake.calls("GET") if "/result/chunks/" in r.path]
    assert len(chunk_gets) == 2 and all(p.endswith("/result/chunks/1") for p in chunk_gets)
    # Values travel as typed named parameters, never in the SQL text.
    sql, second = fake.statement_log[1], fake.parameter_log[1]
    assert second == [
        {"name": "wm", "value": "2026-03-01T12:00:02.000Z", "type": "TIMESTAMP"},
        {"name": "key", "value": "r002", "type": "STRING"},
    ]
    assert "r002" not in sql and "2026" not in sql
    assert sql == (
        "SELECT `request`, `response`, `chunks`, `served_version`, `request_id`, `logged_at` "
        "FROM `main`.`apps`.`request_log` WHERE `logged_at` IS NOT NULL AND `request_id` IS NOT NULL "
        "AND (`logged_at` > :wm OR (`logged_at` = :wm AND `request_id` > :key)) "
        "ORDER BY `logged_at`, `request_id` LIMIT 3"
    )
    body = next(r.json for r in fake.calls("POST", "/api/2.0/sql/statements"))
    assert body["disposition"] == "INLINE" and body["format"] == "JSON_ARRAY"


def test_a_uc_read_resumes_from_its_watermark_with_rows_that_tie_with_it(fake) -> None:
    fake.table_create(TABLE, UC_COLUMNS, [uc_row(n, T0 + timedelta(seconds=n // 2)) for n in range(4)])
    done = uc_read(batch_size=10)
    assert done[-1].watermark == UcWatermark(value="2026-03-01T12:00:01.000Z", key="r003")

    later = [uc_row(4, T0 + timedelta(seconds=1)), uc_row(5, T0 + timedelta(seconds=9))]
    fake.tables[TABLE]["rows"] += later  # r004 ties with the watermark and sorts after its key
    again = uc_read(done[-1].watermark, batch_size=10, metadata_columns=["status_code"])

    assert [r["external_id"] for b in again for r in b.rows] == ["r004", "r005"]
    assert again[0].rows[0]["metadata"] == {"status_code": 200}
    assert uc_read(again[-1].watermark) == []


def test_a_bad_uc_table_name_or_column_is_refused_before_any_statement(fake) -> None:
    fake.table_create(TABLE, UC_COLUMNS, [])
    for bad in ("request_log", "main.apps", "main.apps.t;DROP", "a.b.c.d"):
        with pytest.raises(PermanentPipelineError, match="invalid Unity Catalog table name"):
            uc_read(table=bad)
    with pytest.raises(PermanentPipelineError, match="invalid column name"):
        uc_read(watermark_column="logged`at")
    with pytest.raises(PermanentPipelineError) as caught:
        uc_read(mapping={**UC_MAPPING, "trace_id": "databricks_request_id"})
    assert "no column 'databricks_request_id' (mapped to trace_id)" in caught.value.message
    with pytest.raises(
        PermanentPipelineError, match=r"the watermark column .chunks. of main\.apps\.request_log is ARRAY"
    ):
        uc_read(watermark_column="chunks")
    with pytest.raises(PermanentPipelineError, match="does not exist"):
        uc_read(table="main.apps.absent")
    assert fake.statement_log == []


def test_a_failed_statement_is_permanent_and_a_workspace_answering_503_is_transient(fake, settings) -> None:
    fake.table_create(TABLE, UC_COLUMNS, [uc_row(0, T0)])
    failed = {
        "statement_id": "01ef-failed",
        "status": {
            "state": "FAILED",
            "error": {
                "error_code": "BAD_REQUEST",
                "message": "[INSUFFICIENT_PERMISSIONS] User does not have SELECT on table.",
            },
        },
    }
    fake.fail_next(1, Reply(200, failed), path="/api/2.0/sql/statements")
    with pytest.raises(PermanentPipelineError) as caught:
        uc_read()
    assert "FAILED BAD_REQUEST: [INSUFFICIENT_PERMISSIONS] User does not have SELECT" in caught.value.message

    # A real statement error from the workspace: a parameter that does not cast to the column's type.
    with pytest.raises(PermanentPipelineError, match="INVALID_PARAMETER_MARKER_VALUE"):
        uc_read(UcWatermark(value="yesterday", key="r000"))

    settings.DATABRICKS_TIMEOUT_SECONDS = 1  # the SDK's own retries give up after a second
    unavailable = Reply(503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "The service is overloaded."})
    fake.fail_next(50, unavailable, path="/api/2.0/sql/statements")
    with pytest.raises(TransientPipelineError):
        uc_read()


def test_a_uc_table_can_be_read_by_an_integer_version_column_with_integer_keys(fake) -> None:
    columns = {"seq": "BIGINT", "commit_version": "BIGINT", "question": "STRING"}
    rows = [{"seq": n, "commit_version": n // 3, "question": f"q{n}"} for n in range(8)]
    fake.table_create(TABLE, columns, rows)

    batches = uc_read(
        mapping={"request": "question"}, watermark_column="commit_version", key_column="seq", batch_size=3
    )

    assert [r["request"] for b in batches for r in b.rows] == [f"q{n}" for n in range(8)]
    assert batches[0].watermark == UcWatermark(value="0", key="2")
    assert fake.parameter_log[1] == [
        {"name": "wm", "value": "0", "type": "BIGINT"},
        {"name": "key", "value": "2", "type": "BIGINT"},
    ]
    with pytest.raises(PermanentPipelineError, match="needs a key column"):
        uc_read(mapping={"request": "question"}, watermark_column="commit_version")
