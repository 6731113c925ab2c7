"""Celery tasks run by a real worker process, over Redis, against the test database."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.conf import settings
from django.utils import timezone
from kombu import Connection, Exchange, Queue

from reviewapp.models import Assignment
from reviewapp.services.queue import queue_next
from reviewapp.tasks import leases_reclaim as leases_reclaim_task
from tests.factories import make_items


def _database_url() -> str:
    """The pytest-django test database (its name is only known once the test database exists)."""
    db = settings.DATABASES["default"]
    auth = quote(db["USER"], safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def _wait_for(condition, timeout: float, interval: float = 0.2) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


class Worker:
    """``celery -A reviewapp worker -P solo`` in a subprocess, consuming one private queue."""

    def __init__(self, broker_url: str) -> None:
        self.queue = f"reviewdesk-test-{uuid.uuid4().hex[:8]}"  # no other worker on this Redis takes our task
        env = {**os.environ, "CELERY_BROKER_URL": broker_url, "DATABASE_URL": _database_url()}
        self.process = subprocess.Popen(
            [
                str(settings.BASE_DIR / ".venv/bin/celery"),
                "-A",
                "reviewapp",
                "worker",
                "-P",
                "solo",
                "-l",
                "INFO",
                "-Q",
                self.queue,
                "-n",
                f"{self.queue}@%h",
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def worker() -> Iterator[Worker]:
    broker_url = os.environ["REVIEWDESK_TEST_REDIS_URL"]
    started = Worker(broker_url)
    try:
        yield started
    finally:
        started.stop()  # always, or the worker would outlive the test database


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_frees_an_expired_lease(project, reviewer, worker):
    make_items(project, 2)
    expired = queue_next(project=project, user=reviewer)
    Assignment.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=5))
    live = Assignment.objects.exclude(pk=expired.pk).get()
    Assignment.objects.filter(pk=live.pk).update(
        reviewer=reviewer, leased_at=timezone.now(), expires_at=timezone.now() + timedelta(minutes=5)
    )
    assert _wait_for(lambda: "ready." in worker.log, timeout=60), worker.log

    queue = Queue(worker.queue, Exchange(worker.queue), routing_key=worker.queue)
    with Connection(os.environ["REVIEWDESK_TEST_REDIS_URL"]) as conn:
        queue(conn.default_channel).declare()
        leases_reclaim_task.apply_async(connection=conn, queue=queue)

    def freed() -> bool:
        return Assignment.objects.get(pk=expired.pk).reviewer_id is None

    assert _wait_for(freed, timeout=60), worker.log
    assert "reviewapp.leases_reclaim" in worker.log and "succeeded" in worker.log
    unexpired = Assignment.objects.get(pk=live.pk)
    assert unexpired.reviewer_id == reviewer.pk  # a live lease is left alone
    assert worker.process.poll() is None  # still running; the fixture stops it
