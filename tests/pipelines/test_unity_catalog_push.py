"""Pushes to Unity Catalog with the real databricks-sdk over HTTP against the local Databricks fake.

Contract: every request the SDK sent (method, path, query, headers, body) and every SQL statement.
Exactly once: a replayed batch adds no row (ledger, COPY INTO's loaded-file memory, MERGE by key).
Faults: 503s on the first calls, wrong credentials, unknown or missing warehouse, invalid names.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipelines.adapters.errors import TransientPipelineError
from pipelines.adapters.unity_catalog import uc_name_validate
from pipelines.datasets.pushes import delivery_target_create, push_create, push_execute
from pipelines.models import Push
from pipelines.wiring import databricks_config, delta_config
from reviewapp.errors import ValidationFailed
from reviewapp.services.projects import question_create
from tests.fakes.databricks_api import FakeDatabricks
from tests.fakes.http import Reply
from tests.pipelines.test_delta_push import canonical, make_version

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
TABLE = "main.reviewdesk.curated_feedback"
VOLUME = "/Volumes/main/reviewdesk/landing"
STATEMENTS = "/api/2.0/sql/statements"


@pytest.fixture(autouse=True)
def no_ambient_databricks_config(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
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
        settings.DATABRICKS_UC_VOLUME = VOLUME
        settings.DATABRICKS_TIMEOUT_SECONDS = 5
        settings.UC_ALLOWED_SCHEMAS_RAW = "*=main.reviewdesk"
        yield server


def uc_push(project: Any, version: Any) -> Push:
    target = delivery_target_create(project=project, kind="unity_catalog", target=TABLE, user=None)
    push = push_create(project=project, dataset_version=version, delivery_target=target, user=None)
    push_execute(push_id=push.pk)
    push.refresh_from_db()
    return push


def api_calls(fake: FakeDatabricks) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in fake.requests if r.path != "/.well-known/databricks-config"]


def test_a_version_is_published_with_the_files_api_copy_into_and_merge(project, fake: FakeDatabricks) -> None:
    version = make_version(project, [canonical(n) for n in range(1, 4)])

    push = uc_push(project, version)

    assert push.status == Push.Status.SUCCEEDED, push.error
    assert (push.rows_total, push.rows_written, push.skipped) == (3, 3, False)
    file_path = f"{VOLUME}/main.reviewdesk.curated_feedback/{push.batch_id}.parquet"
    assert api_calls(fake) == [
        ("GET", "/api/2.0/sql/warehouses/wh-reviewdesk"),
        ("GET", f"/api/2.1/unity-catalog/tables/{TABLE}"),
        ("POST", STATEMENTS),  # CREATE TABLE curated ... COMMENT
        ("POST", STATEMENTS),  # CREATE TABLE landing
        ("PUT", f"/api/2.0/fs/files{file_path}"),
        ("POST", STATEMENTS),  # COPY INTO
        ("POST", STATEMENTS),  # MERGE
        ("GET", f"/api/2.1/unity-catalog/tables/{TABLE}"),
    ]
    for request in fake.requests:
        if request.path != "/.well-known/databricks-config":
            assert request.bearer == fake.token
    upload = fake.calls("PUT")[0]
    assert upload.query == {"overwrite": ["true"]} and upload.headers["content-type"] == "application/octet-stream"
    uploaded = pq.read_table(io.BytesIO(upload.raw))
    assert uploaded.num_rows == 3 and {"row_id", "feedback_correct", "batch_id"} <= set(uploaded.column_names)
    bodies = [r.json for r in fake.calls("POST", STATEMENTS)]
    assert all(b["warehouse_id"] == "wh-reviewdesk" and b["wait_timeout"] == "5s" for b in bodies)
    create, landing, copy, merge = (b["statement"] for b in bodies)
    assert create.startswith("CREATE TABLE IF NOT EXISTS `main`.`reviewdesk`.`curated_feedback` (\n  `row_id` STRING")
    assert "`feedback_correct` BOOLEAN COMMENT 'Final curated answer to question \\'correct\\'.'" in create
    assert "`review_ids` ARRAY<BIGINT>" in create and "`curated_at` TIMESTAMP" in create
    assert create.endswith("COMMENT 'Curated human feedback of Reviewdesk project \\'Support assistant\\' (support).'")
    assert landing.startswith("CREATE TABLE IF NOT EXISTS `main`.`reviewdesk`.`curated_feedback__landing` COMMENT")
    assert copy == (
        "COPY INTO `main`.`reviewdesk`.`curated_feedback__landing` "
        f"FROM '{VOLUME}/main.reviewdesk.curated_feedback' FILEFORMAT = PARQUET "
        f"FILES = ('{push.batch_id}.parquet') COPY_OPTIONS ('mergeSchema' = 'true')"
    )
    assert merge.startswith("MERGE WITH SCHEMA EVOLUTION INTO `main`.`reviewdesk`.`curated_feedback` t")
    assert f"WHERE batch_id = '{push.batch_id}'" in merge
    # what the workspace holds
    rows = {r["row_id"]: r for r in fake.table_rows(TABLE)}
    assert set(rows) == {"item-1", "item-2", "item-3"} and rows["item-2"]["feedback_correct"] is True
    info = fake.tables[TABLE]
    assert info["comment"].startswith("Curated human feedback") and info["version"] == 1
    assert {c["name"]: c["comment"] for c in info["columns"]}["row_id"].startswith("Stable row key")
    assert push.table_version == 1


def test_a_replayed_batch_adds_no_row(project, fake: FakeDatabricks) -> None:
    version = make_version(project, [canonical(n) for n in range(1, 4)])
    first = uc_push(project, version)

    again = uc_push(project, version)  # our ledger: nothing sent at all
    assert again.status == Push.Status.SUCCEEDED and again.skipped and again.rows_written == 0
    assert len(fake.writes()) == 5  # only the first push's 4 statements and 1 upload

    # the ledger was lost (the worker died after MERGE, before recording): the workspace dedups
    Push.objects.filter(batch_id=first.batch_id).update(status=Push.Status.FAILED)
    replay = uc_push(project, version)
    assert replay.status == Push.Status.SUCCEEDED and replay.rows_written == 0
    assert "COPY INTO" in fake.statement_log[-2]  # it did run again, and loaded nothing new
    assert len(fake.table_rows(TABLE)) == 3
    assert len(fake.table_rows(f"{TABLE}__landing")) == 3  # the file was loaded once


def test_a_new_question_evolves_the_uc_table(project, fake: FakeDatabricks) -> None:
    uc_push(project, make_version(project, [canonical(n) for n in range(1, 3)]))
    question_create(project=project, key="tone", title="Tone ok?", kind="pass_fail", required=False)
    new = canonical(3, feedback={"correct": True, "helpfulness": 2, "issue": "none", "tone": True})
    v2 = make_version(project, [canonical(1), canonical(2), new], keys=["correct", "helpfulness", "issue", "tone"])

    push = uc_push(project, v2)

    assert push.status == Push.Status.SUCCEEDED, push.error
    assert push.rows_written == 1 and len([s for s in fake.statement_log if "CREATE TABLE" in s]) == 3
    assert "feedback_tone" in [c["name"] for c in fake.tables[TABLE]["columns"]]
    rows = {r["row_id"]: r for r in fake.table_rows(TABLE)}
    assert rows["item-3"]["feedback_tone"] is True and rows["item-1"].get("feedback_tone") is None


@pytest.mark.slow
def test_503s_on_the_first_calls_are_retried_without_duplicates(project, fake: FakeDatabricks) -> None:
    version = make_version(project, [canonical(n) for n in range(1, 4)])
    unavailable = Reply(503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "The service is overloaded."})
    fake.fail_next(2, unavailable, path=STATEMENTS)  # the SDK retries these itself

    push = uc_push(project, version)

    assert push.status == Push.Status.SUCCEEDED, push.error
    assert len(fake.table_rows(TABLE)) == 3


@pytest.mark.slow
def test_a_workspace_down_longer_than_the_budget_requeues_the_push_and_the_retry_writes_once(
    project, fake: FakeDatabricks
) -> None:
    version = make_version(project, [canonical(n) for n in range(1, 4)])
    target = delivery_target_create(project=project, kind="unity_catalog", target=TABLE, user=None)
    push = push_create(project=project, dataset_version=version, delivery_target=target, user=None)
    # slower than the 5 s budget of the SDK's own retries (DATABRICKS_TIMEOUT_SECONDS)
    down = Reply(503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "down"}, delay=6)
    fake.fail_next(1, down, path=r"/api/2\.0/sql/warehouses/.+")

    with pytest.raises(TransientPipelineError):
        push_execute(push_id=push.pk)  # the task would retry it with backoff

    push.refresh_from_db()
    assert push.status == Push.Status.QUEUED and push.attempts == 1 and "warehouse" in push.error
    push_execute(push_id=push.pk)
    push.refresh_from_db()
    assert push.status == Push.Status.SUCCEEDED and push.attempts == 2
    assert len(fake.table_rows(TABLE)) == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DATABRICKS_WAREHOUSE_ID": ""}, "set DATABRICKS_WAREHOUSE_ID"),
        ({"DATABRICKS_WAREHOUSE_ID": "wh-unknown"}, "SQL warehouse 'wh-unknown' does not exist"),
        ({"DATABRICKS_TOKEN": "dapi-wrong"}, "Unauthenticated"),
        ({"DATABRICKS_HOST": ""}, "Databricks is not configured"),
        ({"DATABRICKS_UC_VOLUME": "/tmp/landing"}, "is not a Volume path"),
    ],
)
def test_configuration_errors_fail_before_any_write(project, fake, settings, change, message) -> None:
    version = make_version(project, [canonical(1)])
    for key, value in change.items():
        setattr(settings, key, value)

    push = uc_push(project, version)

    assert push.status == Push.Status.FAILED and message in push.error, push.error
    assert fake.writes() == [] and fake.volume_files == {} and fake.tables == {}


def test_invalid_table_names_are_rejected_with_a_clear_error(project) -> None:
    for bad in ("curated", "main.curated", "main.re-view.t", "a.b.c.d", "main.`x y`.t", "main.s.t;DROP"):
        assert uc_name_validate(bad), bad
        with pytest.raises(ValidationFailed) as caught:
            delivery_target_create(project=project, kind="unity_catalog", target=bad, user=None)
        assert caught.value.errors[0]["field"] == "target"
    assert uc_name_validate("main.reviewdesk.curated_feedback") is None
    assert uc_name_validate("`main`.`reviewdesk`.`curated`") is None


def test_statements_are_polled_until_they_finish_and_failures_say_why(fake: FakeDatabricks) -> None:
    from pipelines.adapters.databricks import sql_statement_run
    from pipelines.adapters.errors import PermanentPipelineError

    fake.statement_polls = 2  # PENDING, then RUNNING, then the result
    fake.tables["main.reviewdesk.t"] = {"columns": [], "comment": "", "landing": [{"row_id": "a"}], "version": 0}
    result = sql_statement_run(
        databricks_config(), statement="SELECT COUNT(*) FROM `main`.`reviewdesk`.`t`", warehouse_id="wh-reviewdesk"
    )
    assert result["rows"] == [["1"]] and result["columns"] == ["count(1)"]
    statement_id = result["statement_id"]
    assert [r.path for r in fake.calls("GET") if "statements" in r.path] == [f"{STATEMENTS}/{statement_id}"] * 2

    fake.statement_polls = 0
    with pytest.raises(PermanentPipelineError) as caught:
        sql_statement_run(
            databricks_config(),
            statement="SELECT COUNT(*) FROM `main`.`reviewdesk`.`nope`",
            warehouse_id="wh-reviewdesk",
        )
    assert "TABLE_OR_VIEW_NOT_FOUND" in caught.value.message
    with pytest.raises(PermanentPipelineError) as caught:
        sql_statement_run(databricks_config(), statement="DROP TABLE x", warehouse_id="wh-reviewdesk")
    assert "PARSE_SYNTAX_ERROR" in caught.value.message


def test_object_store_credentials_never_appear_in_errors(settings) -> None:
    from pipelines.adapters import delta

    settings.DELTA_STORAGE_OPTIONS = {"AWS_SECRET_ACCESS_KEY": "s3cr3t-value", "AWS_REGION": "eu-west-1"}
    error = delta._error("open Delta table s3://b/t", OSError("denied for key s3cr3t-value"), {"k": "s3cr3t-value"})
    assert "s3cr3t-value" not in error.message and "***" in error.message
    options = delta._storage_options("s3://bucket/t", delta_config())
    assert options == {**options, **settings.DELTA_STORAGE_OPTIONS}  # the configured ones, plus bounded timeouts
    assert (options["timeout"], options["retry_timeout"]) == ("30s", "30s")
    error = delta._error("open s3://b/t", OSError("s3cr3t-value in eu-west-1"), options)
    assert error.message == "open s3://b/t: OSError: *** in eu-west-1"  # the region is no secret
    settings.DELTA_STORAGE_OPTIONS = {"timeout": "120s"}
    assert delta._storage_options("s3://bucket/t", delta_config())["timeout"] == "120s"  # DELTA_STORAGE_OPTIONS wins
    assert delta._storage_options("/var/delta/t", delta_config()) is None  # local folders get no credentials


@pytest.mark.slow
def test_a_later_version_mirrors_its_dataset_in_the_same_merge_and_feed_merges_never_delete(
    project, reviewer, fake: FakeDatabricks
) -> None:
    from django.utils import timezone

    from pipelines.datasets.pushes import feed_push_create
    from reviewapp.models import Item
    from tests.evaluations.conftest import curate
    from tests.factories import make_items

    target = delivery_target_create(project=project, kind="unity_catalog", target=TABLE, user=None)
    make_items(project, 1, start=500)
    fed = Item.objects.get(project=project, external_id="ext-500")
    curate(fed, reviewer, {"correct": True})
    feed = feed_push_create(delivery_target=target, now=timezone.now() + timezone.timedelta(seconds=10))
    assert feed is not None
    push_execute(push_id=feed.pk)
    feed.refresh_from_db()
    assert feed.status == Push.Status.SUCCEEDED and feed.rows_deleted == 0, feed.error
    feed_merge = fake.statement_log[-1]
    assert feed_merge.startswith("MERGE") and "NOT MATCHED BY SOURCE" not in feed_merge
    assert "ON t.row_id = s.row_id AND t.dataset_id IS NULL\n" in feed_merge

    common = fed.pk  # in the feed and in both datasets, under the same row_id
    a1 = make_version(project, [canonical(1001), canonical(1002), canonical(common)], name="alpha")
    b1 = make_version(project, [canonical(common), canonical(1003)], name="beta")
    assert uc_push(project, a1).rows_written == 3 and uc_push(project, b1).rows_written == 2
    merge = fake.statement_log[-1]
    assert merge.endswith(f"\nWHEN NOT MATCHED BY SOURCE AND t.dataset_id = {b1.dataset_id} THEN DELETE")
    before = {(r["row_id"], r["dataset_id"]): dict(r) for r in fake.table_rows(TABLE)}
    assert len(before) == 6 and before[(f"item-{common}", None)]["dataset_version"] is None
    version_before = fake.tables[TABLE]["version"]

    a2 = make_version(project, [canonical(1001), canonical(1002)], name="alpha")
    push = uc_push(project, a2)

    assert push.status == Push.Status.SUCCEEDED, push.error
    assert (push.rows_written, push.rows_deleted, push.table_version) == (0, 1, version_before + 1)
    assert fake.statement_log[-1].endswith(
        f"\nWHEN NOT MATCHED BY SOURCE AND t.dataset_id = {a2.dataset_id} THEN DELETE"
    )
    after = {(r["row_id"], r["dataset_id"]): r for r in fake.table_rows(TABLE)}
    assert set(before) - set(after) == {(f"item-{common}", a2.dataset_id)}
    assert all(after[key] == row for key, row in before.items() if key in after)  # the rest untouched

    Push.objects.filter(batch_id=push.batch_id).update(status=Push.Status.FAILED)  # the ledger was lost
    replay = uc_push(project, a2)
    assert (replay.rows_written, replay.rows_deleted) == (0, 0) and fake.tables[TABLE]["version"] == version_before + 1


def test_a_uc_table_from_before_dataset_id_gets_the_column_and_keeps_one_row_per_item(
    project, fake: FakeDatabricks
) -> None:
    uc_push(project, make_version(project, [canonical(n) for n in range(1, 4)], name="alpha"))
    table = fake.tables[TABLE]  # as a push before this column existed left it
    table["columns"] = [c for c in table["columns"] if c["name"] != "dataset_id"]
    for row in table["rows"]:
        del row["dataset_id"]

    push = uc_push(project, make_version(project, [canonical(1), canonical(2)], name="alpha"))

    assert push.status == Push.Status.SUCCEEDED, push.error
    alter = next(s for s in fake.statement_log if s.startswith("ALTER"))
    assert alter == (
        "ALTER TABLE `main`.`reviewdesk`.`curated_feedback` ADD COLUMNS "
        "(`dataset_id` BIGINT COMMENT 'Reviewdesk dataset the row belongs to (null: live feed); part of the key.')"
    )
    # the old rows are adopted (tagged), not copied; item-3's dataset is unknown, so it stays
    rows = sorted((r["row_id"], r.get("dataset_id")) for r in fake.table_rows(TABLE))
    assert rows == [
        ("item-1", push.dataset_version.dataset_id),
        ("item-2", push.dataset_version.dataset_id),
        ("item-3", None),
    ]
    assert (push.rows_written, push.rows_deleted) == (2, 0)


@pytest.mark.parametrize(
    ("clause", "code"),
    [
        ("WHEN NOT MATCHED BY SOURCE AND s.dataset_id = 7 THEN DELETE", "DELTA_MERGE_UNRESOLVED_EXPRESSION"),
        ("WHEN NOT MATCHED BY SOURCE AND t.no_such_column = 7 THEN DELETE", "UNRESOLVED_COLUMN"),
        ("WHEN NOT MATCHED BY SOURCE AND t.dataset_id = = 7 THEN DELETE", "PARSE_SYNTAX_ERROR"),
        ("WHEN NOT MATCHED BY SOURCE AND (t.dataset_id = 7 THEN DELETE", "PARSE_SYNTAX_ERROR"),
        ("WHEN NOT MATCHED BY SOURCE AND t.dataset_id = 7 THEN INSERT *", "PARSE_SYNTAX_ERROR"),
        ("WHEN NOT MATCHED BY SOURCE t.dataset_id = 7 THEN DELETE", "PARSE_SYNTAX_ERROR"),
    ],
)
def test_the_workspace_rejects_a_malformed_delete_clause_and_changes_nothing(
    project, fake: FakeDatabricks, clause: str, code: str
) -> None:
    from pipelines.adapters.databricks import sql_statement_run
    from pipelines.adapters.errors import PermanentPipelineError
    from pipelines.adapters.unity_catalog import merge_sql

    first = uc_push(project, make_version(project, [canonical(1), canonical(2)], name="alpha"))
    rows, version = fake.table_rows(TABLE), fake.tables[TABLE]["version"]
    good = merge_sql(full_name=TABLE, landing=f"{TABLE}__landing", batch_id=first.batch_id, dataset_id=7)
    assert good.endswith("\nWHEN NOT MATCHED BY SOURCE AND t.dataset_id = 7 THEN DELETE")
    bad = good.rsplit("\n", 1)[0] + "\n" + clause

    with pytest.raises(PermanentPipelineError) as caught:
        sql_statement_run(databricks_config(), statement=bad, warehouse_id="wh-reviewdesk")

    assert code in caught.value.message
    assert fake.table_rows(TABLE) == rows and fake.tables[TABLE]["version"] == version
    # the well-formed clause runs: dataset 7 has no rows here, so nothing is deleted
    result = sql_statement_run(databricks_config(), statement=good, warehouse_id="wh-reviewdesk")
    assert dict(zip(result["columns"], result["rows"][0], strict=True))["num_deleted_rows"] == "0"
    assert fake.table_rows(TABLE) == rows


@pytest.mark.parametrize(
    ("column", "declared", "wrong"),
    [
        ("item_id", "BIGINT", "STRING"),
        ("feedback_correct", "BOOLEAN", "STRING"),
        ("feedback_helpfulness", "DOUBLE", "BIGINT"),
        ("review_ids", "ARRAY<BIGINT>", "ARRAY<STRING>"),
        ("pushed_at", "TIMESTAMP", "TIMESTAMP_NTZ"),
    ],
)
def test_a_table_declared_with_a_type_its_parquet_does_not_read_as_fails_the_push(
    project, fake: FakeDatabricks, column: str, declared: str, wrong: str
) -> None:
    # The fake types columns by its own Parquet table, not by production's mapping: a CREATE TABLE that
    # declares a column as anything but what its Parquet reads as must fail, as Delta's MERGE does.
    from pipelines.adapters.databricks import sql_statement_run

    first = uc_push(project, make_version(project, [canonical(1)], name="alpha"))
    assert first.status == Push.Status.SUCCEEDED, first.error
    create = next(
        s
        for s in fake.statement_log
        if s.startswith("CREATE TABLE IF NOT EXISTS `main`.`reviewdesk`.`curated_feedback` (")
    )
    assert f"`{column}` {declared}" in create  # what production declared, and the fake accepted
    fake.tables.clear()
    fake.volume_files.clear()
    sql_statement_run(
        databricks_config(),
        statement=create.replace(f"`{column}` {declared}", f"`{column}` {wrong}"),
        warehouse_id="wh-reviewdesk",
    )

    push = uc_push(project, make_version(project, [canonical(1), canonical(2)], name="alpha"))

    assert push.status == Push.Status.FAILED, push.error
    assert "DELTA_FAILED_TO_MERGE_FIELDS" in push.error and f"'{column}'" in push.error
    assert fake.table_rows(TABLE) == []


def test_the_fake_reads_parquet_types_from_its_own_table() -> None:
    # The fake's expectations are its own literal table (Databricks' Parquet reading), so they can
    # disagree with production's mapping; types Databricks cannot read are refused, not guessed.
    import pyarrow as pa

    from tests.fakes.databricks_uc import SqlError, parquet_column_type

    assert parquet_column_type(pa.int32()) == "INT"  # not BIGINT: a narrower integer stays narrow
    assert parquet_column_type(pa.float32()) == "FLOAT"
    assert parquet_column_type(pa.timestamp("us")) == "TIMESTAMP_NTZ"  # no time zone: not TIMESTAMP
    assert parquet_column_type(pa.timestamp("us", tz="UTC")) == "TIMESTAMP"
    assert parquet_column_type(pa.list_(pa.int64())) == "ARRAY<BIGINT>"
    with pytest.raises(SqlError):
        parquet_column_type(pa.timestamp("ns", tz="UTC"))
