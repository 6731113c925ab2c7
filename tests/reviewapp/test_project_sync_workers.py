"""A real SIGKILL of a worker half-way through a project sync (reviews per item changed on a live
project): another worker, after the one sweeper, resumes at the committed cursor and the outcome
happened once per item.

The doomed worker reaches PostgreSQL through a delaying TCP proxy (tests/fakes/delay_proxy.py), so
each batch of items takes seconds and the kill lands reliably between batches' commits.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from reviewapp.models import Assignment, AuditEvent, CuratedLabel, Item, Project, ProjectSync
from reviewapp.services.projects import project_set_reviews_per_item
from reviewapp.services.queue import queue_next
from reviewapp.services.reviews import review_submit
from reviewapp.tasks import jobs_sweep as jobs_sweep_task
from tests.factories import make_items
from tests.fakes.delay_proxy import delay_proxy
from tests.workers import Cluster, cluster_running, database_url, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ITEMS = 40
BATCH = 8


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Cluster]:
    with cluster_running(
        tmp_path,
        PROJECT_SYNC_LEASE_SECONDS="3",
        PROJECT_SYNC_BATCH=str(BATCH),
        REVIEWDESK_VAR_DIR=str(tmp_path / "var"),
        # Redis hands a dead worker's unacknowledged message back after this: the sweeper, not that
        # redelivery, gives the sync to the rescuer here.
        CELERY_VISIBILITY_TIMEOUT="3600",
    ) as started:
        yield started


def test_a_sync_killed_half_way_resumes_at_its_cursor_on_another_worker(
    project: Project, reviewer: Any, workers: Cluster
) -> None:
    make_items(project, ITEMS)
    while (lease := queue_next(project=project, user=reviewer)) is not None:
        review_submit(assignment_id=lease.pk, user=reviewer, answers={"correct": True, "helpfulness": 4})
    assert CuratedLabel.objects.filter(item__project=project).count() == ITEMS  # one review is enough at N=1

    db = urlsplit(database_url())
    with delay_proxy(db.hostname or "127.0.0.1", db.port or 5432, delay=0.05) as slow_db:
        doomed = workers.start_worker(
            "doomed", DATABASE_URL=database_url().replace(f":{db.port}/", f":{slow_db.port}/")
        )
        # Two reviews now: every consensus label of one review is withdrawn, and a second slot added.
        sync = project_set_reviews_per_item(project=project, reviews_per_item=2).sync  # type: ignore[attr-defined]
        assert wait_for(lambda: ProjectSync.objects.get(pk=sync.pk).items_done >= BATCH, timeout=90, interval=0.05), (
            doomed.log[-4000:]
        )
        doomed.kill()
    half = ProjectSync.objects.get(pk=sync.pk)
    assert half.status == ProjectSync.Status.RUNNING and BATCH <= half.items_done < ITEMS
    first = list(Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
    assert half.cursor == first[half.items_done - 1]  # the cursor is the last item of a committed batch
    assert CuratedLabel.objects.filter(item__project=project).count() == ITEMS - half.items_done

    rescuer = workers.start_worker("rescuer")

    def finished() -> bool:
        jobs_sweep_task.delay()  # what beat does every 30 s, here every poll
        return ProjectSync.objects.get(pk=sync.pk).status not in ProjectSync.ACTIVE

    assert wait_for(finished, timeout=120, interval=1.0), rescuer.log[-4000:]
    done = ProjectSync.objects.get(pk=sync.pk)
    assert done.status == ProjectSync.Status.DONE, (done.error, rescuer.log[-4000:])
    assert done.attempts == 2 and done.items_done == done.items_total == ITEMS
    assert {Assignment.objects.filter(item_id=pk).count() for pk in first} == {2}
    assert CuratedLabel.objects.filter(item__project=project).count() == 0
    # Each label withdrawn exactly once: the batches before the cursor were not done again.
    withdrawn = AuditEvent.objects.filter(project=project, action="curation.consensus_withdraw")
    assert withdrawn.count() == ITEMS
    assert "reviewapp.jobs_sweep" in rescuer.log and "reviewapp.project_sync[" in rescuer.log
