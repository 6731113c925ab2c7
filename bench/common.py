"""Shared helpers for the benchmarks: a bench database, a real server, HTTP clients, figures.

Benchmarks print figures; they never assert. They run against PostgreSQL (the production shape)
in a database of their own, ``reviewdesk_bench``, and a gunicorn server started here.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://reviewdesk@127.0.0.1:5432/reviewdesk_bench")
VENV_BIN = Path(sys.executable).parent


def bench_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=BENCH_DB_URL,
        REVIEWDESK_TESTING="true",
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        REVIEWDESK_VAR_DIR=str(ROOT / "var" / "bench"),
        PYTHONPATH=str(ROOT),
        LOG_LEVEL="WARNING",
        # One cache for the bench process and every gunicorn worker, as in production.
        CACHE_URL=os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/12"),
    )
    return env


def setup_django() -> None:
    os.environ.update(bench_env())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviewapp.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def ensure_database() -> None:
    """Create the bench database if needed and migrate it."""
    import psycopg

    admin = BENCH_DB_URL.rsplit("/", 1)[0] + "/postgres"
    name = BENCH_DB_URL.rsplit("/", 1)[1]
    with psycopg.connect(admin.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    for command in (["migrate", "--noinput", "-v0"], ["collectstatic", "--noinput", "-v0"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=bench_env(), check=True)


def celery_worker_argv(*, queue: str, name: str, loglevel: str = "INFO") -> list[str]:
    """``celery worker -P solo`` consuming ``queue`` only: one process per core, no cluster chatter."""
    return [
        str(VENV_BIN / "celery"),
        "-A",
        "reviewapp",
        "worker",
        "-P",
        "solo",
        "-l",
        loglevel,
        "-Q",
        queue,
        "-n",
        f"{name}@%h",
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(workers: int = 3, threads: int = 4) -> Iterator[tuple[int, int]]:
    """A gunicorn server on a free port; yields (port, pid)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "gunicorn"),
            "reviewapp.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(workers),
            "--threads",
            str(threads),
            "--worker-class",
            "gthread",
            "--graceful-timeout",
            "3",
            "--timeout",
            "300",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=bench_env(),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError("gunicorn did not start")
        yield port, proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB (from /proc)."""
    total = 0
    pids = [pid]
    try:
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class Client:
    """A keep-alive HTTP client with a bearer token or a session cookie."""

    def __init__(self, port: int, token: str | None = None, cookie: str | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers: dict[str, str] = {}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        if cookie:
            self.headers["Cookie"] = cookie

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json", raw: bytes | None = None
    ) -> tuple[int, bytes]:
        headers = dict(self.headers)
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = content_type
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        return response.status, response.read()


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    if not samples_ms:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    qs = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return {"p50": statistics.median(samples_ms), "p95": qs[94], "p99": qs[98]}


WORDS = (
    "account billing invoice refund workspace member admin export import sync offline note page "
    "share link permission token limit plan seat trial cancel upgrade downgrade calendar search "
    "tag folder archive restore delete backup region retention policy single sign on saml okta "
    "the a to of and in is for with on that your you can will be from by this are it or as"
).split()


def make_item(n: int, rnd: random.Random, size_words: int = 360) -> dict[str, Any]:
    """A synthetic RAG output of about 2.4 KB of JSON."""

    def text(k: int) -> str:
        return " ".join(rnd.choice(WORDS) for _ in range(k))

    return {
        "external_id": f"bench-{n}",
        "request": text(18) + "?",
        "response": text(size_words // 3),
        "retrieved_context": [
            {"doc_uri": f"kb/article-{rnd.randrange(200)}.md", "content": text(size_words // 5)} for _ in range(3)
        ],
        "model_name": "support-assistant",
        "model_version": str(1 + n % 2),
        "trace_id": f"tr-{n:08d}",
        "source": "bench",
        "metadata": {"channel": "chat", "n": n},
    }


def print_table(title: str, rows: list[tuple[str, str, str]]) -> None:
    print(f"\n== {title}")
    width = max(len(r[0]) for r in rows)
    for name, value, target in rows:
        print(f"  {name:<{width}}  {value:>16}   {target}")
