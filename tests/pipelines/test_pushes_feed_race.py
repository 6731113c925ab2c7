"""The feed does not skip a label whose transaction committed late, on PostgreSQL with two connections.

A curation transaction stamps ``updated_at`` and stays open (a lock wait, a slow request) while a feed
batch runs and moves the watermark past that stamp; then it commits. The next batch re-reads the
overlap before the watermark, so the label reaches the Delta table, once.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from django.db import connection, transaction
from django.utils import timezone

from pipelines.datasets.pushes import delivery_target_create, feed_push_create, push_execute
from pipelines.models import DeliveryTarget, Push
from reviewapp.models import CuratedLabel, Item
from tests.evaluations.conftest import curate
from tests.factories import make_items

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
SOON = timedelta(seconds=10)  # past the feed's settle delay, as the next beat would be
WAIT = 30  # seconds any step of the other connection may take before the test gives up


class LateCuration(threading.Thread):
    """Curates one item in its own connection and keeps the transaction open until released."""

    def __init__(self, item_id: int, reviewer: Any) -> None:
        super().__init__(daemon=True)
        self.item_id, self.reviewer = item_id, reviewer
        self.stamped, self.release = threading.Event(), threading.Event()
        self.label: CuratedLabel | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with transaction.atomic():
                self.label = curate(Item.objects.get(pk=self.item_id), self.reviewer, {"correct": False})
                self.stamped.set()
                if not self.release.wait(WAIT):
                    raise TimeoutError("never released")
        except BaseException as exc:  # reported by the test
            self.error = exc
            self.stamped.set()
        finally:
            connection.close()


def feed_batch(target: DeliveryTarget) -> Push | None:
    push = feed_push_create(delivery_target=target, now=timezone.now() + SOON)
    if push is not None:
        push_execute(push_id=push.pk)
        push.refresh_from_db()
    return push


@pytest.mark.slow
def test_a_label_committed_after_the_watermark_passed_it_is_delivered_by_the_next_batch(
    project, reviewer, settings: Any, tmp_path: Path
) -> None:
    settings.DELTA_ROOT = str(tmp_path / "delta")
    target = delivery_target_create(project=project, kind="delta", target="", feed_enabled=True, user=None)
    make_items(project, 4)
    first, late, other, last = Item.objects.filter(project=project).order_by("id")
    curate(first, reviewer, {"correct": True})

    slow = LateCuration(late.pk, reviewer)
    slow.start()
    try:
        assert slow.stamped.wait(WAIT) and slow.error is None, slow.error
        assert slow.label is not None
        stamp = (slow.label.updated_at, slow.label.pk)
        # curated and committed after the late label was stamped, while its transaction is still open
        curate(other, reviewer, {"correct": True})
        assert not CuratedLabel.objects.filter(pk=slow.label.pk).exists()  # not visible here yet

        batch = feed_batch(target)

        assert batch is not None and batch.status == Push.Status.SUCCEEDED, batch and batch.error
        target.refresh_from_db()
        assert (target.watermark_at, target.watermark_id) > stamp  # the watermark passed the late label
    finally:
        slow.release.set()
        slow.join(WAIT)
    assert not slow.is_alive() and slow.error is None, slow.error
    assert CuratedLabel.objects.filter(pk=slow.label.pk).exists()  # committed now, stamped before the watermark
    rows = DeltaTable(target.target).to_pyarrow_table().to_pylist()
    assert {r["item_id"] for r in rows} == {first.pk, other.pk}

    # nothing was curated after the watermark: no batch (the late label waits for the next one)
    assert feed_batch(target) is None
    curate(last, reviewer, {"correct": True})
    following = feed_batch(target)

    assert following is not None and following.status == Push.Status.SUCCEEDED, following and following.error
    # four labels read (three in the overlap), two written: the late one and the new one
    assert (following.rows_total, following.rows_written, following.table_version) == (4, 2, 1)
    table = DeltaTable(target.target)
    rows = table.to_pyarrow_table().to_pylist()
    assert sorted(r["item_id"] for r in rows) == sorted([first.pk, late.pk, other.pk, last.pk])  # no duplicates
    by_item = {r["item_id"]: r for r in rows}
    assert by_item[late.pk]["feedback_correct"] is False and by_item[late.pk]["batch_id"] == following.batch_id
    assert by_item[first.pk]["batch_id"] == batch.batch_id  # re-read in the overlap, not rewritten
    assert [h["operation"] for h in table.history()] == ["MERGE", "WRITE"]
