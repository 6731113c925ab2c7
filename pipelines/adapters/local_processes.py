"""Local serving's plumbing: detached processes, their state files, and short HTTP probes on 127.0.0.1.

What ``pipelines.releases.serving.local`` needs from the operating system, without knowing about
models or environments: start a detached process group with its output in a log, tell whether a pid
still runs, stop a group (SIGTERM, then SIGKILL after 10 s), find a free port, probe a local port
(1 s timeout: a process that does not answer is "not up yet", never an error), read and atomically
write small JSON state files. Standard library only; no app is imported and no settings are read.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

STOP_GRACE_SECONDS = 10.0


def json_read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def json_write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)  # atomic: the proxy never reads half a file


def process_alive(pid: int | None) -> bool:
    """True while ``pid`` runs (a zombie does not count)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, IndexError, OSError):
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True


def process_reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def process_group_stop(pid: int) -> None:
    """Stop the process group ``pid`` leads: SIGTERM, and SIGKILL if it still runs after the grace time."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    end = time.monotonic() + STOP_GRACE_SECONDS
    while process_alive(pid) and time.monotonic() < end:
        process_reap(pid)
        time.sleep(0.1)
    if process_alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process_reap(pid)


def detached_start(argv: list[str], *, log: Path, env: dict[str, str] | None = None, cwd: str | None = None) -> int:
    """Start ``argv`` in a session of its own (it outlives the worker), output appended to ``log``; its pid.

    ``env`` is the child's whole environment (None: this process's): callers that run model code pass
    one without the application's secrets (``outbound.environ_without_secrets``).
    """
    with open(log, "ab") as out:
        process = subprocess.Popen(  # noqa: S603 - argv is built by our callers, never a shell
            argv,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return process.pid


def http_get(port: int, path: str, timeout: float = 1.0) -> tuple[int, bytes] | None:
    """``GET http://127.0.0.1:{port}{path}``: ``(status, body)``, or None when nothing answers in time."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    except OSError:
        return None
    finally:
        conn.close()


def port_free() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def log_tail(path: Path, lines: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except FileNotFoundError:
        return ""
