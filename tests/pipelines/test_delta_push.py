"""Pushes of dataset versions to Delta tables, with the real ``deltalake`` on a temporary folder.

Round trip, exactly-once (a replayed batch makes no commit and no file), schema evolution (a new
question adds a column; old rows read null), time travel to a recorded version, storage errors.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from pipelines.adapters import delta
from pipelines.datasets.pushes import delivery_target_create, push_create, push_execute
from pipelines.models import Dataset, DatasetRow, DatasetVersion, DeliveryTarget, Push
from pipelines.wiring import delta_config
from reviewapp.services.projects import question_create

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


# --- builders shared by the push tests ----------------------------------------------------------


def canonical(n: int, **overrides: Any) -> dict[str, Any]:
    """A canonical row (pipelines.datasets.versions docstring) for item ``n``."""
    row: dict[str, Any] = {
        "row_id": f"item-{n}",
        "item_id": n,
        "external_id": f"ext-{n}",
        "trace_id": f"tr-{n}",
        "request_id": f"req-{n}",
        "model_version": "2",
        "source": "test",
        "metadata": {"n": n},
        "request": [{"role": "user", "content": f"How do I reset my password? ({n})"}],
        "response": f"Open Settings. ({n})",
        "retrieved_context": [{"content": "Passwords are reset from Settings.", "doc_uri": "docs/account.md"}],
        "expected_response": f"Go to Settings > Reset password. ({n})",
        "expected_facts": ["Settings", "Reset password"],
        "guidelines": ["Be brief"],
        "feedback": {"correct": n % 2 == 0, "helpfulness": 4, "issue": "none"},
        "provenance": {
            "method": "consensus",
            "decided_by": None,
            "review_ids": [10 * n, 10 * n + 1],
            "reviewers": ["rita", "rob"],
            "agreement": {"correct": {"agreed": True}},
            "schema_version": 1,
            "label_version": 1,
        },
        "item_created_at": "2026-11-01T10:00:00+00:00",
        "curated_at": "2026-11-02T10:00:00+00:00",
    }
    row.update(overrides)
    return row


def row_hash(row: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(row, sort_keys=True).encode()).hexdigest()


def make_version(
    project: Any, rows: list[dict[str, Any]], *, name: str = "golden", keys: list[str] | None = None
) -> DatasetVersion:
    dataset, _ = Dataset.objects.get_or_create(project=project, name=name)
    number = dataset.versions.count() + 1
    version = DatasetVersion.objects.create(
        dataset=dataset,
        number=number,
        row_count=len(rows),
        content_hash=hashlib.sha256("".join(row_hash(r) for r in rows).encode()).hexdigest(),
        question_keys=keys if keys is not None else ["correct", "helpfulness", "issue"],
    )
    DatasetRow.objects.bulk_create(
        DatasetRow(
            version=version, position=i, row_id=r["row_id"], item_id=r["item_id"], content_hash=row_hash(r), data=r
        )
        for i, r in enumerate(rows)
    )
    return version


def run_push(project: Any, version: DatasetVersion, target: DeliveryTarget | None = None) -> Push:
    push = push_create(project=project, dataset_version=version, delivery_target=target, user=None)
    push_execute(push_id=push.pk)
    push.refresh_from_db()
    return push


def files_of(uri: str) -> set[str]:
    return set(DeltaTable(uri).file_uris())


@pytest.fixture
def delta_root(settings: Any, tmp_path: Path) -> Path:
    settings.DELTA_ROOT = str(tmp_path / "delta")
    return tmp_path / "delta"


# --- tests -------------------------------------------------------------------------------------


def test_a_version_is_pushed_to_a_delta_table_with_flat_typed_columns(project, delta_root: Path) -> None:
    version = make_version(project, [canonical(n) for n in range(1, 4)])

    push = run_push(project, version)

    assert push.status == Push.Status.SUCCEEDED, push.error
    assert (push.rows_total, push.rows_written, push.table_version, push.skipped) == (3, 3, 0, False)
    assert push.target == str(delta_root / "support" / "golden") and push.duration_seconds is not None
    table = DeltaTable(push.target)
    rows = {r["row_id"]: r for r in table.to_pyarrow_table().to_pylist()}
    assert set(rows) == {"item-1", "item-2", "item-3"}
    first = rows["item-2"]
    assert first["feedback_correct"] is True and first["feedback_helpfulness"] == 4.0
    assert first["feedback_issue"] == "none" and first["expected_facts"] == ["Settings", "Reset password"]
    assert json.loads(first["request"]) == [{"role": "user", "content": "How do I reset my password? (2)"}]
    assert json.loads(first["retrieved_context"])[0]["doc_uri"] == "docs/account.md"
    assert first["review_ids"] == [20, 21] and first["method"] == "consensus" and first["dataset_version"] == 1
    assert first["batch_id"] == push.batch_id and first["curated_at"].isoformat() == "2026-11-02T10:00:00+00:00"
    schema = pa.schema(table.schema().to_arrow())
    assert schema.field("feedback_correct").type == pa.bool_()
    assert schema.field("review_ids").type == pa.list_(pa.int64())
    # the batch id is recorded in the same commit as the rows
    assert table.transaction_version(push.batch_id) == 1
    assert table.history(limit=1)[0]["reviewdesk.batch_id"] == push.batch_id


def test_re_pushing_the_same_version_writes_nothing(project, delta_root: Path) -> None:
    version = make_version(project, [canonical(n) for n in range(1, 4)])
    first = run_push(project, version)
    files, history = files_of(first.target), DeltaTable(first.target).history()

    again = run_push(project, version)

    assert again.pk != first.pk and again.batch_id == first.batch_id
    assert again.status == Push.Status.SUCCEEDED and again.skipped
    assert (again.rows_written, again.table_version) == (0, first.table_version)
    assert files_of(first.target) == files and DeltaTable(first.target).history() == history
    assert DeltaTable(first.target).to_pyarrow_table().num_rows == 3


def test_a_batch_replayed_after_a_lost_ledger_is_skipped_by_the_delta_transaction(project, delta_root: Path) -> None:
    """The worker committed to Delta, then died before recording it: the retry must write nothing."""
    version = make_version(project, [canonical(n) for n in range(1, 4)])
    first = run_push(project, version)
    Push.objects.filter(pk=first.pk).update(status=Push.Status.FAILED)  # as if the success was never recorded
    files, version_before = files_of(first.target), DeltaTable(first.target).version()

    again = run_push(project, version)

    assert again.status == Push.Status.SUCCEEDED and again.skipped and again.rows_written == 0
    assert again.table_version == first.table_version == 0
    assert DeltaTable(first.target).version() == version_before and files_of(first.target) == files


def test_the_adapter_applies_a_batch_once_and_an_unchanged_batch_makes_no_commit(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    schema = delta.row_schema(feedback_kinds={"correct": "pass_fail"})
    types = {"correct": pa.bool_()}

    def source(batch: str, rows: list[dict[str, Any]]) -> pa.RecordBatchReader:
        flat = [
            delta.flat_row(
                r,
                feedback_types=types,
                content_hash=row_hash(r),
                dataset_version=None,
                batch_id=batch,
                pushed_at=__import__("datetime").datetime.now(tz=__import__("datetime").UTC),
            )
            for r in rows
        ]
        return delta.record_batches(flat, schema=schema)

    rows = [canonical(n) for n in range(5)]
    created = delta.delta_merge_batch(delta_config(), uri=uri, batch_id="b-1", source=source("b-1", rows))
    assert created.created and created.rows_inserted == 5 and created.version == 0
    replay = delta.delta_merge_batch(delta_config(), uri=uri, batch_id="b-1", source=source("b-1", rows))
    assert replay.skipped and replay.version == 0 and DeltaTable(uri).version() == 0
    # another batch id, same content: matched rows are not rewritten, and delta-rs makes no commit
    same = delta.delta_merge_batch(delta_config(), uri=uri, batch_id="b-2", source=source("b-2", rows))
    assert (same.rows_written, same.version, DeltaTable(uri).version()) == (0, 0, 0)
    changed = [canonical(0, response="Changed"), canonical(9)]
    merged = delta.delta_merge_batch(delta_config(), uri=uri, batch_id="b-3", source=source("b-3", changed))
    assert (merged.rows_inserted, merged.rows_updated, merged.version) == (1, 1, 1)
    assert delta.delta_batch_version(delta_config(), uri=uri, batch_id="b-3") == 1
    assert delta.delta_batch_version(delta_config(), uri=uri, batch_id="b-1") == 0
    assert delta.delta_batch_version(delta_config(), uri=uri, batch_id="never") is None
    assert DeltaTable(uri).to_pyarrow_table().num_rows == 6


def test_a_new_question_evolves_the_table_and_time_travel_reads_the_recorded_version(project, delta_root) -> None:
    v1 = make_version(project, [canonical(n) for n in range(1, 4)])
    p1 = run_push(project, v1)
    question_create(project=project, key="tone", title="Tone ok?", kind="pass_fail", required=False)
    changed = canonical(3, feedback={"correct": True, "helpfulness": 5, "issue": "none", "tone": False})
    new = canonical(4, feedback={"correct": True, "helpfulness": 2, "issue": "wrong", "tone": True})
    v2 = make_version(
        project, [canonical(1), canonical(2), changed, new], keys=["correct", "helpfulness", "issue", "tone"]
    )

    p2 = run_push(project, v2)

    assert p2.status == Push.Status.SUCCEEDED, p2.error
    assert (p2.rows_total, p2.rows_written, p2.table_version) == (4, 2, 1)
    rows = {r["row_id"]: r for r in DeltaTable(p2.target).to_pyarrow_table().to_pylist()}
    assert len(rows) == 4
    assert rows["item-1"]["feedback_tone"] is None and rows["item-1"]["dataset_version"] == 1  # unchanged row
    assert rows["item-3"]["feedback_tone"] is False and rows["item-3"]["dataset_version"] == 2
    assert rows["item-4"]["feedback_tone"] is True and rows["item-3"]["feedback_helpfulness"] == 5.0
    # time travel: the version recorded by the first push is the first snapshot
    old = delta.delta_read(delta_config(), uri=p1.target, version=p1.table_version)
    assert old.num_rows == 3 and "feedback_tone" not in old.column_names
    assert {r["row_id"]: r["feedback_helpfulness"] for r in old.to_pylist()}["item-3"] == 4.0
    assert [h["operation"] for h in DeltaTable(p2.target).history()] == ["MERGE", "WRITE"]


def test_an_unwritable_location_fails_the_push_with_a_clear_error(project, settings, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the table folder should be")
    settings.DELTA_ROOT = str(blocker)
    version = make_version(project, [canonical(1)])

    push = run_push(project, version)

    assert push.status == Push.Status.FAILED and push.finished_at is not None
    assert "PermanentPipelineError" in push.error and str(blocker) in push.error
    assert push.rows_written == 0 and push.table_version is None


def test_targets_are_validated_before_anything_is_written(project, delta_root: Path, settings) -> None:
    from reviewapp.errors import ValidationFailed

    settings.DELTA_ALLOWED_ROOTS = ["s3://bucket/"]
    for bad in ("relative/path", "/tmp/../etc", "ftp://host/x", "s3://"):
        with pytest.raises(ValidationFailed) as caught:
            delivery_target_create(project=project, kind="delta", target=bad, user=None)
        assert caught.value.errors[0]["field"] == "target"
    target = delivery_target_create(project=project, kind="delta", target="", user=None)
    assert target.target == str(delta_root / "support" / "curated")
    assert delivery_target_create(project=project, kind="delta", target="s3://bucket/curated", user=None).pk
    assert not delta_root.exists()  # creating targets writes no table
