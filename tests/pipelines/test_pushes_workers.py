"""A push on a real Celery worker, killed with SIGKILL half-way; the sweeper re-queues it, another worker
finishes it, and the Delta table has one commit for it and no duplicate row."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from deltalake import DeltaTable

from pipelines.datasets.pushes import push_create, push_execute
from pipelines.models import Push
from pipelines.tasks.pushes import pushes_sweep as pushes_sweep_task
from tests.pipelines.test_delta_push import canonical, make_version
from tests.workers import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
ROWS = 30_000  # six record batches of 5,000, each followed by a pause on the worker


def test_a_push_killed_half_way_is_finished_once_by_another_worker(project, cluster, settings, tmp_path) -> None:
    root = tmp_path / "delta"
    settings.DELTA_ROOT = str(root)
    env = {"DELTA_ROOT": str(root), "DELIVERY_PUSH_LEASE_SECONDS": "3", "DELIVERY_BATCH_PAUSE_MS": "600"}
    v1 = make_version(project, [canonical(n) for n in range(10)])
    first = push_create(project=project, dataset_version=v1, user=None)
    push_execute(push_id=first.pk)  # here, in-process: the table exists at version 0
    uri = Push.objects.get(pk=first.pk).target
    assert DeltaTable(uri).version() == 0
    v2 = make_version(project, [canonical(n, response=f"v2 answer {n}") for n in range(ROWS)])

    doomed = cluster.start_worker("doomed", **env)
    push = push_create(project=project, dataset_version=v2, user=None)  # sent to the doomed worker
    assert wait_for(lambda: Push.objects.get(pk=push.pk).status == Push.Status.RUNNING, timeout=60), doomed.log
    time.sleep(2.5)  # staging done, the Delta write under way (six batches of 0.6 s)
    assert Push.objects.get(pk=push.pk).status == Push.Status.RUNNING, doomed.log[-3000:]
    doomed.kill()

    assert DeltaTable(uri).version() == 0  # killed before its commit: nothing of v2 is visible
    assert DeltaTable(uri).to_pyarrow_table().num_rows == 10
    rescuer = cluster.start_worker("rescuer", **{**env, "DELIVERY_BATCH_PAUSE_MS": "0"})

    def finished() -> bool:
        pushes_sweep_task.delay()  # what beat does every 30 s, here every poll
        return Push.objects.get(pk=push.pk).is_finished

    assert wait_for(finished, timeout=120, interval=1.0), rescuer.log[-3000:]
    push.refresh_from_db()
    assert push.status == Push.Status.SUCCEEDED, push.error
    assert push.attempts == 2 and push.rows_total == ROWS and push.rows_written == ROWS
    table = DeltaTable(uri)
    assert push.table_version == table.version() == 1
    assert [h["operation"] for h in table.history()] == ["MERGE", "WRITE"]  # one commit for the push
    rows = table.to_pyarrow_table(columns=["row_id", "response"])
    assert rows.num_rows == ROWS and len(set(rows.column("row_id").to_pylist())) == ROWS
    assert set(rows.column("response").to_pylist()) == {f"v2 answer {n}" for n in range(ROWS)}
    # whatever the killed worker wrote is not part of the table (VACUUM removes such files)
    on_disk = {p.name for p in Path(uri).glob("*.parquet")}
    committed = {Path(u).name for u in table.file_uris()}
    assert committed <= on_disk
    assert "pipelines.pushes_sweep" in rescuer.log and "pipelines.push_execute" in rescuer.log
