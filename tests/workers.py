"""Real Celery workers for tests: a ``celery -A reviewapp worker -P solo`` subprocess on a private
Redis queue, pointed at the pytest-django test database; a Cluster of them with this process's
producer pointed at the same queue (the ``cluster`` fixture in tests/conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings

from reviewapp.celery import app


def database_url() -> str:
    """The pytest-django test database (its name is only known once the test database exists)."""
    db = settings.DATABASES["default"]
    auth = quote(db["USER"], safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_for(condition: Callable[[], object], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


class CeleryWorker:
    """A worker subprocess consuming ``queue`` only, so no other worker on this Redis takes our tasks."""

    def __init__(self, name: str, *, queue: str, env: dict[str, str]) -> None:
        self.name = name
        self.queue = queue
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
                queue,
                "-n",
                f"{name}@%h",
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
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

    def succeeded(self, task: str) -> int:
        return sum(1 for line in self.lines if task in line and "succeeded" in line)

    def ready(self, timeout: float = 90) -> bool:
        return wait_for(lambda: "ready." in self.log, timeout=timeout)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


class Cluster:
    """Workers on a private Redis queue, and this process's Celery producer pointed at it."""

    def __init__(self, tmp_path: Path, **env_defaults: str) -> None:
        self.env_defaults = env_defaults  # for every worker of this cluster
        self.broker_url = os.environ["REVIEWDESK_TEST_REDIS_URL"]
        self.queue = f"reviewdesk-test-{uuid.uuid4().hex[:8]}"
        self.mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        self.artifacts = str(tmp_path / "mlartifacts")
        self.workers: list[CeleryWorker] = []
        self._saved: dict[str, Any] = {}

    def env(self, **overrides: str) -> dict[str, str]:
        return {
            **os.environ,
            "CELERY_BROKER_URL": self.broker_url,
            "CELERY_TASK_DEFAULT_QUEUE": self.queue,
            "CELERY_VISIBILITY_TIMEOUT": "10",
            "DATABASE_URL": database_url(),
            "MLFLOW_TRACKING_URI": self.mlflow_uri,
            "MLFLOW_ARTIFACT_ROOT": self.artifacts,
            **self.env_defaults,
            **overrides,
        }

    def start_worker(self, name: str, **env: str) -> CeleryWorker:
        worker = CeleryWorker(f"{name}-{self.queue}", queue=self.queue, env=self.env(**env))
        self.workers.append(worker)
        assert worker.ready(), worker.log
        return worker

    def point_producer(self) -> None:
        """Send this process's tasks to Redis and the private queue (Celery caches both)."""
        conf = app.conf
        self._saved = {k: conf[k] for k in ("broker_url", "broker_transport_options", "task_default_queue")}
        conf.update(
            broker_url=self.broker_url,
            broker_transport_options={"visibility_timeout": 10},
            task_default_queue=self.queue,
        )
        self._reset_producer()

    def restore_producer(self) -> None:
        if self._saved:
            app.conf.update(**self._saved)
            self._reset_producer()

    @staticmethod
    def _reset_producer() -> None:
        for cached in ("queues", "default_queue", "router"):
            app.amqp.__dict__.pop(cached, None)
        app.amqp._rtable = None
        app.amqp._producer_pool = None
        app._pool = None

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()  # always, or a worker would outlive the test database
        self.restore_producer()


@contextmanager
def cluster_running(tmp_path: Path, **env_defaults: str) -> Iterator[Cluster]:
    """A Cluster with this process's producer pointed at it, stopped (and the producer restored) on exit."""
    started = Cluster(tmp_path, **env_defaults)
    started.point_producer()
    try:
        yield started
    finally:
        started.stop()
