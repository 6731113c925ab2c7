"""Real Celery workers for tests: a ``celery -A reviewapp worker -P solo`` subprocess on a private
Redis queue, pointed at the pytest-django test database."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from urllib.parse import quote

from django.conf import settings


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
