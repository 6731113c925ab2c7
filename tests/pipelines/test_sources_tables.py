"""Table sources on real Delta tables: a pull maps columns to items, the feedback and error columns feed
the rules, each append is read once (the table version watermark), and a killed pull resumes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from django.utils import timezone

from pipelines.adapters import delta
from pipelines.models import SourcedItem, SourcePull
from pipelines.sources.config import mapping_of
from pipelines.sources.pulls import source_pull_execute, source_pull_request
from pipelines.sources.readers import table_prefilter
from pipelines.sources.sampling import rules_validate
from pipelines.sources.services import source_create
from reviewapp.models import Item
from tests.pipelines.test_table_readers import (  # noqa: F401 (fixtures)
    T0,
    TABLE,
    UC_COLUMNS,
    fake,
    no_ambient_databricks_config,
    uc_row,
)

pytestmark = pytest.mark.django_db


def append(uri: Path, start: int, n: int, *, disliked: tuple[int, ...] = (), failed: tuple[int, ...] = ()) -> None:
    write_deltalake(
        uri,
        pa.table(
            {
                "request_id": [f"req-{i}" for i in range(start, start + n)],
                "question": [f"Question {i}?" for i in range(start, start + n)],
                "answer": [f"Answer {i}." for i in range(start, start + n)],
                "served_version": ["3"] * n,
                "user_feedback": ["thumbs_down" if i in disliked else "" for i in range(start, start + n)],
                "status": [500 if i in failed else 200 for i in range(start, start + n)],
                "region": ["eu"] * n,
            }
        ),
        mode="append",
    )


def delta_source(project, uri: Path, rules: list):  # type: ignore[no-untyped-def]
    return source_create(
        project=project,
        values={
            "name": "inference log",
            "kind": "delta_table",
            "settings": {"uri": str(uri)},
            "column_mapping": {
                "request": "question",
                "response": "answer",
                "model_version": "served_version",
                "external_id": "request_id",
                "feedback": "user_feedback",
                "error": "status",
                "metadata": ["region"],
            },
            "rules": rules,
        },
        actor=None,
    )


def pull_now(source) -> SourcePull:  # type: ignore[no-untyped-def]
    pull = source_pull_request(source=source, actor=None)
    done = source_pull_execute(pull_id=pull.pk)
    assert done is not None
    return done


def test_a_delta_source_takes_rows_by_rules_and_reads_each_append_once(project, tmp_path: Path) -> None:
    uri = tmp_path / "inference_log"
    append(uri, 0, 10, disliked=(3,), failed=(7,))
    source = delta_source(
        project, uri, [{"kind": "thumbs_down"}, {"kind": "error"}, {"kind": "match", "key": "region", "value": "us"}]
    )

    first = pull_now(source)
    assert first.status == "succeeded", first.error
    assert (first.scanned, first.created, first.sampled_out) == (10, 2, 8)
    assert dict(SourcedItem.objects.values_list("item__external_id", "rule")) == {
        "req-3": "thumbs_down",
        "req-7": "error",
    }
    item = Item.objects.get(external_id="req-3")
    assert (item.request, item.response, item.model_version, item.source) == (
        "Question 3?",
        "Answer 3.",
        "3",
        "inference log",
    )
    assert item.metadata == {"region": "eu"}  # the signal columns are not copied into the item

    assert pull_now(source).scanned == 0  # nothing new: nothing read twice
    append(uri, 10, 5, disliked=(12,))
    second = pull_now(source)
    assert (second.scanned, second.created) == (5, 1)
    source.refresh_from_db()
    assert source.watermark["version"] == 1


def test_a_delta_pull_killed_after_a_batch_resumes_from_its_watermark(project, tmp_path: Path, settings) -> None:
    settings.SOURCES_BATCH_SIZE = 4
    uri = tmp_path / "inference_log"
    append(uri, 0, 10)
    source = delta_source(project, uri, [])
    pull = source_pull_request(source=source, actor=None)
    stopped = source_pull_execute(pull_id=pull.pk, batch_limit=1)
    assert stopped is not None and (stopped.created, stopped.watermark_to["offset"]) == (4, 4)
    SourcePull.objects.filter(pk=pull.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    resumed = source_pull_execute(pull_id=pull.pk)
    assert resumed is not None and resumed.status == "succeeded"
    assert (resumed.scanned, resumed.created, resumed.unchanged, resumed.attempts) == (10, 10, 0, 2)
    assert Item.objects.filter(project=project).count() == 10


def varied(uri: Path, start: int, n: int) -> None:
    """Rows that exercise every test the sampling makes before building a row: ids missing (hashed
    content), errors as numbers, text and nulls, a metadata match, empty answers (skipped rows)."""
    r = range(start, start + n)
    write_deltalake(
        uri,
        pa.table(
            {
                "request_id": [None if i % 3 == 0 else f"req-{i}" for i in r],
                "trace": [None if i % 2 == 0 else ("" if i % 13 == 0 else f"tr-{i:06d}") for i in r],
                "question": [
                    None if i % 29 == 0 else (f'{{"messages": [{{"role": "user", "content": "Q{i}"}}]}}') for i in r
                ],
                "answer": [
                    "" if i % 23 == 0 else ('{"choices": [{"message": {"content": ""}}]}' if i % 31 == 0 else f"A{i}")
                    for i in r
                ],
                "status": [[None, "200", "500", "false", " TRUE ", "ok", "0"][i % 7] for i in r],
                "region": [["eu", "us", None][i % 3] for i in r],
                "latency": pa.array([i * 1.5 for i in r], pa.float64()),
            }
        ),
        mode="append",
    )


VARIED_MAPPING = {
    "request": "question",
    "response": "answer",
    "trace_id": "trace",
    "external_id": "request_id",
    "error": "status",
    "metadata": ["region", "latency"],
}


@pytest.mark.parametrize(
    "rules",
    [
        [{"kind": "percent", "percent": 30}],
        [
            {"kind": "error", "max_per_day": 5},
            {"kind": "match", "key": "region", "value": "us"},
            {"kind": "percent", "percent": 10},
        ],
        [{"kind": "match", "key": "latency", "value": "30.0"}, {"kind": "score_below", "name": "x", "threshold": 1}],
    ],
)
def test_rows_no_rule_can_take_are_not_built_and_a_pull_takes_the_same_items(
    project, tmp_path: Path, settings, rules: list
) -> None:
    """The same pull twice: with the rules as given (rows sampled out before they are built) and with a
    canary rule added that takes nothing but makes the reader build every row; same items, same counts."""
    from tests.factories import ProjectFactory

    settings.SOURCES_BATCH_SIZE = 7  # batches end inside record batches and files
    uri = tmp_path / "log"
    for start in (0, 60, 200):
        varied(uri, start, 60 if start < 200 else 45)
    values = {"name": "log", "kind": "delta_table", "settings": {"uri": str(uri)}, "column_mapping": VARIED_MAPPING}
    fast = source_create(project=project, values={**values, "rules": rules}, actor=None)
    other = ProjectFactory(slug="other", name="Other")
    whole = source_create(project=other, values={**values, "rules": [*rules, {"kind": "canary"}]}, actor=None)
    parsed = rules_validate(fast.rules)[0]
    keep = table_prefilter(parsed, mapping_of(fast))
    assert keep is not None and table_prefilter(rules_validate(whole.rules)[0], mapping_of(whole)) is None

    # The adapter: the same batches (table rows covered, watermarks), fewer rows built.
    fields = {k: v for k, v in VARIED_MAPPING.items() if k not in ("error", "metadata")}
    metadata = ["region", "latency", "status"]
    plain = list(
        delta.delta_table_read(
            delta.DeltaConfig(), uri=str(uri), mapping=fields, metadata_columns=metadata, batch_size=7
        )
    )
    sampled = list(
        delta.delta_table_read(
            delta.DeltaConfig(), uri=str(uri), mapping=fields, metadata_columns=metadata, batch_size=7, keep=keep
        )
    )
    assert [(b.watermark, b.scanned) for b in sampled] == [(b.watermark, b.scanned) for b in plain]
    built = sum(len(b.rows) for b in sampled)
    assert 0 < built < sum(len(b.rows) for b in plain) == 165

    a, b = pull_now(fast), pull_now(whole)
    assert a.status == b.status == "succeeded", (a.error, b.error)
    assert a.counters() == b.counters() and a.scanned == 165 and a.taken > 0
    assert a.watermark_to == b.watermark_to
    assert a.skipped_reasons == b.skipped_reasons

    def taken(source) -> list:  # type: ignore[no-untyped-def]
        return sorted(SourcedItem.objects.filter(source=source).values_list("item__external_id", "rule"))

    def fields_of(p) -> list:  # type: ignore[no-untyped-def]
        return sorted(Item.objects.filter(project=p).values_list("external_id", "request", "response", "metadata"))

    assert taken(fast) == taken(whole)
    assert fields_of(project) == fields_of(other)


def test_a_unity_catalog_source_is_read_through_the_sql_statement_api(project, fake) -> None:  # noqa: F811
    rows = [uc_row(n, T0 + timedelta(seconds=n)) for n in range(5)]
    rows[2]["status_code"] = 503
    fake.table_create(TABLE, UC_COLUMNS, rows)
    source = source_create(
        project=project,
        values={
            "name": "uc log",
            "kind": "uc_table",
            "settings": {"table": TABLE, "watermark_column": "logged_at"},
            "column_mapping": {
                "request": "request",
                "response": "response",
                "external_id": "request_id",
                "timestamp": "logged_at",
                "error": "status_code",
            },
            "rules": [{"kind": "error"}, {"kind": "percent", "percent": 0.0001}],
        },
        actor=None,
    )
    first = pull_now(source)
    assert first.status == "succeeded", first.error
    assert (first.scanned, first.created, first.sampled_out) == (5, 1, 4)
    assert SourcedItem.objects.get().item.external_id == "r002"
    source.refresh_from_db()
    assert source.watermark["key"] == "r004"
    assert pull_now(source).scanned == 0
