"""Celery tasks run by a real worker process, over Redis, against the test database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone
from kombu import Connection, Exchange, Queue

from reviewapp.models import Assignment
from reviewapp.services.queue import queue_next
from reviewapp.tasks import leases_reclaim as leases_reclaim_task
from tests.factories import make_items
from tests.workers import CeleryWorker, database_url, wait_for


@pytest.fixture
def worker() -> Iterator[CeleryWorker]:
    queue = f"reviewdesk-test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "CELERY_BROKER_URL": os.environ["REVIEWDESK_TEST_REDIS_URL"], "DATABASE_URL": database_url()}
    started = CeleryWorker(queue, queue=queue, env=env)
    try:
        yield started
    finally:
        started.stop()  # always, or the worker would outlive the test database


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_real_worker_frees_an_expired_lease(project, reviewer, worker):
    make_items(project, 2)
    expired = queue_next(project=project, user=reviewer)
    Assignment.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=5))
    live = Assignment.objects.exclude(pk=expired.pk).get()
    Assignment.objects.filter(pk=live.pk).update(
        reviewer=reviewer, leased_at=timezone.now(), expires_at=timezone.now() + timedelta(minutes=5)
    )
    assert wait_for(lambda: "ready." in worker.log, timeout=60), worker.log

    queue = Queue(worker.queue, Exchange(worker.queue), routing_key=worker.queue)
    with Connection(os.environ["REVIEWDESK_TEST_REDIS_URL"]) as conn:
        queue(conn.default_channel).declare()
        leases_reclaim_task.apply_async(connection=conn, queue=queue)

    def freed() -> bool:
        return Assignment.objects.get(pk=expired.pk).reviewer_id is None

    assert wait_for(freed, timeout=60), worker.log
    assert "reviewapp.leases_reclaim" in worker.log and "succeeded" in worker.log
    unexpired = Assignment.objects.get(pk=live.pk)
    assert unexpired.reviewer_id == reviewer.pk  # a live lease is left alone
    assert worker.process.poll() is None  # still running; the fixture stops it
