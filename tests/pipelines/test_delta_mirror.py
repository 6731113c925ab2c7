"""A dataset version's push mirrors the version in a shared Delta table (real ``deltalake``, temporary folder).

Several datasets and the feed can share one table: rows carry ``dataset_id`` (null for the feed) and
the key is ``(row_id, dataset_id)``. Pushing version N of dataset D deletes, in the same commit as the
upsert, D's rows that N no longer holds; other datasets' rows and feed rows are never touched, feed
batches never delete, and a replayed batch makes no commit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from django.test import Client
from django.utils import timezone

from pipelines.adapters import delta
from pipelines.datasets.pushes import delivery_target_create, feed_push_create, push_execute
from pipelines.models import Dataset, DeliveryTarget, Push
from pipelines.wiring import delta_config
from reviewapp.models import Item
from tests.evaluations.conftest import curate
from tests.factories import make_items
from tests.pipelines.test_delta_push import canonical, make_version, row_hash, run_push

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
SOON = timedelta(seconds=10)  # past the feed's settle delay


@pytest.fixture
def shared(project: Any, settings: Any, tmp_path: Path) -> DeliveryTarget:
    settings.DELTA_ROOT = str(tmp_path / "delta")
    settings.DELTA_ALLOWED_ROOTS = [str(tmp_path)]
    return delivery_target_create(project=project, kind="delta", target=str(tmp_path / "shared"), user=None)


def feed_push(target: DeliveryTarget) -> Push:
    push = feed_push_create(delivery_target=target, now=timezone.now() + SOON)
    assert push is not None
    push_execute(push_id=push.pk)
    push.refresh_from_db()
    return push


def curated_item(project: Any, reviewer: Any, n: int) -> Item:
    make_items(project, 1, start=n)
    item = Item.objects.get(project=project, external_id=f"ext-{n}")
    curate(item, reviewer, {"correct": True})
    return item


def rows_by_owner(uri: str) -> dict[int | None, dict[str, dict[str, Any]]]:
    """dataset_id -> row_id -> row."""
    owners: dict[int | None, dict[str, dict[str, Any]]] = {}
    for row in DeltaTable(uri).to_pyarrow_table().to_pylist():
        owners.setdefault(row["dataset_id"], {})[row["row_id"]] = row
    return owners


def test_a_later_version_mirrors_its_dataset_and_leaves_other_datasets_and_the_feed_alone(
    project, reviewer, shared: DeliveryTarget
) -> None:
    fed = curated_item(project, reviewer, 500)  # the feed holds this item ...
    feed = feed_push(shared)
    assert feed.status == Push.Status.SUCCEEDED, feed.error
    common = fed.pk  # ... and both datasets hold it too, under the same row_id (others: 1001+)
    a1 = make_version(project, [canonical(1001), canonical(1002), canonical(common)], name="alpha")
    b1 = make_version(project, [canonical(common), canonical(1003)], name="beta")
    pa1, pb1 = run_push(project, a1, shared), run_push(project, b1, shared)
    assert (pa1.rows_written, pb1.rows_written, pa1.rows_deleted, pb1.rows_deleted) == (3, 2, 0, 0), pb1.error
    before = rows_by_owner(shared.target)
    alpha, beta = a1.dataset_id, b1.dataset_id
    assert {k: sorted(v) for k, v in before.items()} == {
        None: [f"item-{common}"],
        alpha: sorted(["item-1001", "item-1002", f"item-{common}"]),
        beta: sorted([f"item-{common}", "item-1003"]),
    }
    version_before = DeltaTable(shared.target).version()

    a2 = make_version(project, [canonical(1001), canonical(1002)], name="alpha")  # the common item left alpha
    pa2 = run_push(project, a2, shared)

    assert pa2.status == Push.Status.SUCCEEDED, pa2.error
    assert (pa2.rows_total, pa2.rows_written, pa2.rows_deleted) == (2, 0, 1)
    assert pa2.table_version == version_before + 1 == DeltaTable(shared.target).version()  # one commit
    history = DeltaTable(shared.target).history(limit=1)[0]
    assert history["operation"] == "MERGE" and history["reviewdesk.batch_id"] == pa2.batch_id
    after = rows_by_owner(shared.target)
    assert sorted(after[alpha]) == ["item-1001", "item-1002"]
    assert after[beta] == before[beta] and after[None] == before[None]  # untouched, to the last column
    # time travel still reads the table as alpha v1 left it
    assert delta.delta_read(delta_config(), uri=shared.target, version=pa1.table_version).num_rows == 4

    # a replay, with and without our ledger, deletes nothing and makes no commit
    again = run_push(project, a2, shared)
    Push.objects.filter(batch_id=pa2.batch_id).update(status=Push.Status.FAILED)
    replayed = run_push(project, a2, shared)
    for later in (again, replayed):
        assert later.status == Push.Status.SUCCEEDED and later.skipped, later.error
        assert (later.rows_written, later.rows_deleted, later.table_version) == (0, 0, pa2.table_version)
    assert DeltaTable(shared.target).version() == pa2.table_version

    # a feed batch never deletes: every dataset row is still there
    curated_item(project, reviewer, 501)
    feed2 = feed_push(shared)
    assert feed2.status == Push.Status.SUCCEEDED and feed2.rows_deleted == 0, feed2.error
    final = rows_by_owner(shared.target)
    assert final[alpha] == after[alpha] and final[beta] == after[beta] and len(final[None]) == 2


def test_an_emptied_version_deletes_all_its_rows_and_the_count_reaches_the_page_and_the_api(
    project, curator, shared: DeliveryTarget
) -> None:
    run_push(project, make_version(project, [canonical(1), canonical(2)], name="alpha"), shared)
    run_push(project, make_version(project, [canonical(1)], name="beta"), shared)

    push = run_push(project, make_version(project, [], name="alpha"), shared)

    assert push.status == Push.Status.SUCCEEDED and push.rows_deleted == 2, push.error
    beta = Dataset.objects.get(project=project, name="beta").pk
    assert [(r["row_id"], r["dataset_id"]) for r in DeltaTable(shared.target).to_pyarrow_table().to_pylist()] == [
        ("item-1", beta)
    ]
    client = Client()
    client.force_login(curator)
    page = client.get("/projects/support/deliveries/").content.decode()
    assert f"<span data-rows-deleted>· {push.rows_deleted} deleted</span>" in page
    assert client.get(f"/api/v1/pushes/{push.pk}/").json()["rows_deleted"] == 2


def test_a_table_from_before_dataset_id_gets_the_column_and_its_rows_are_adopted(
    project, shared: DeliveryTarget
) -> None:
    """Old rows read null: the first version push after the upgrade tags those it holds (no duplicates)."""
    old_schema = delta.row_schema(feedback_kinds={"correct": "pass_fail", "helpfulness": "rating", "issue": "choice"})
    old_schema = old_schema.remove(old_schema.get_field_index("dataset_id"))
    types = {"correct": pa.bool_(), "helpfulness": pa.float64(), "issue": pa.string()}
    old_rows = [
        {
            k: v
            for k, v in delta.flat_row(
                canonical(n),
                feedback_types=types,
                content_hash=row_hash(canonical(n)),
                dataset_version=1,
                batch_id="legacy",
                pushed_at=datetime.now(tz=UTC),
            ).items()
            if k != "dataset_id"
        }
        for n in (1, 2, 3)
    ]
    delta.delta_merge_batch(
        delta_config(), uri=shared.target, batch_id="legacy", source=delta.record_batches(old_rows, schema=old_schema)
    )
    assert "dataset_id" not in DeltaTable(shared.target).schema().to_arrow().names  # type: ignore[attr-defined]

    make_version(project, [canonical(1), canonical(2), canonical(3)], name="alpha")  # v1, pushed long ago
    v2 = make_version(project, [canonical(1), canonical(2)], name="alpha")
    push = run_push(project, v2, shared)

    assert push.status == Push.Status.SUCCEEDED, push.error
    # item-3's dataset is unknown (null), so it stays; item-1 and item-2 are tagged, not copied
    assert (push.rows_written, push.rows_deleted) == (2, 0)
    operations = [h["operation"] for h in DeltaTable(shared.target).history()]
    assert operations == ["MERGE", "ADD COLUMN", "WRITE"]
    rows = {r["row_id"]: r["dataset_id"] for r in DeltaTable(shared.target).to_pyarrow_table().to_pylist()}
    assert rows == {"item-1": v2.dataset_id, "item-2": v2.dataset_id, "item-3": None}

    v3 = make_version(project, [canonical(1)], name="alpha")
    assert run_push(project, v3, shared).rows_deleted == 1  # item-2 is alpha's now, so it can leave
    rows = {r["row_id"]: r["dataset_id"] for r in DeltaTable(shared.target).to_pyarrow_table().to_pylist()}
    assert rows == {"item-1": v2.dataset_id, "item-3": None}
